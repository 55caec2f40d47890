"""The codebase's shape: dependencies run app -> gta_core only; short functions, files of a readable size.

Read with `ast` (and once by importing every gta_core module), never by running the code under test.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GTA_CORE = sorted((REPO / "gta_core").rglob("*.py"))
CHECKED = GTA_CORE + sorted((REPO / "app").rglob("*.py"))
MAX_FUNCTION_LINES = 100
MAX_FILE_LINES = 600
IMPORT_CALLS = {"import_module", "__import__", "find_spec", "spec_from_file_location", "run_module", "run_path"}
APP_MODULE = re.compile(r"app(\.\w+)*")


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def _app_imports(path: Path) -> list[str]:
    """Every way `path` names the app package: import statements, and module names given as strings
    (to importlib, __import__, runpy, or kept in a constant such as __main__'s command table)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if APP_MODULE.fullmatch(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and APP_MODULE.fullmatch(node.module or ""):
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and APP_MODULE.fullmatch(node.value):
            found.append(f"the module name {node.value!r}")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in IMPORT_CALLS and any(s == "app" or s.startswith(("app.", "app/")) or "/app/" in s for s in strings):
                found.append(f"{name}({', '.join(map(repr, strings))})")
    return [f"{_rel(path)}:{item}" for item in found]


def test_gta_core_never_imports_app():
    assert len(GTA_CORE) > 30
    assert sum((_app_imports(path) for path in GTA_CORE), []) == []
    # The same by text, for anything ast would not call an import.
    pattern = re.compile(r"^\s*(from\s+app(\.\w+)*\s+import|import\s+app\b)", re.MULTILINE)
    assert [_rel(p) for p in GTA_CORE if pattern.search(p.read_text())] == []
    # gta_core does not reach the app through sys.path either.
    assert [_rel(p) for p in GTA_CORE if re.search(r"sys\.path\.(insert|append)|sys\.path\s*=", p.read_text())] == []


def test_the_checks_see_an_app_import(tmp_path):
    """The ast check is not blind: each way of naming the app package is reported."""
    sample = tmp_path / "sample.py"
    sample.write_text("import app.engine\nfrom app import ui\nimport importlib\n"
                      "importlib.import_module('app.views')\nMODULES = ('app.ui',)\nimport application\n")
    assert sorted(item.split(":", 1)[1] for item in _app_imports(sample)) == [
        "from app import ...", "import app.engine", "import_module('app.views')", "the module name 'app.ui'",
        "the module name 'app.views'",
    ]


def test_importing_every_gta_core_module_loads_no_app_module():
    code = (
        "import importlib, pkgutil, sys\n"
        "import gta_core\n"
        "for module in pkgutil.walk_packages(gta_core.__path__, 'gta_core.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(sorted(m for m in sys.modules if m == 'app' or m.startswith('app.')))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"


def _functions(path: Path) -> list[tuple[int, str]]:
    """(lines, "file:line name") of every function and method, nested ones too."""
    tree = ast.parse(path.read_text(), str(path))
    return [(node.end_lineno - node.lineno + 1, f"{_rel(path)}:{node.lineno} {node.name}")
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_over_100_lines_and_no_file_over_600_in_gta_core_and_app():
    functions = sorted((f for path in CHECKED for f in _functions(path)), reverse=True)
    files = sorted(((len(p.read_text().splitlines()), _rel(p)) for p in CHECKED), reverse=True)
    print(f"longest function: {functions[0][1]}, {functions[0][0]} lines; largest file: {files[0][1]}, "
          f"{files[0][0]} lines")
    assert [f for f in functions if f[0] > MAX_FUNCTION_LINES] == []
    assert [f for f in files if f[0] > MAX_FILE_LINES] == []

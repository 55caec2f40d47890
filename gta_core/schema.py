"""Validating untrusted JSON against our dataclasses: pydantic v2 reads the bounds declared on the fields.

The dataclasses (`VideoNetConfig`, `CheckpointConfig`) stay plain dataclasses;
their fields carry `Annotated[..., Field(ge=.., le=..)]` bounds, `Literal`
choices and JSON-value types, which stdlib dataclasses ignore and pydantic's
`TypeAdapter` enforces: types, bounds and nesting in one pass, with the path of
the offending value in the message (`architecture.block_positions.0.1.0`). A field
added later with such an annotation is checked with no other change.

Validation is strict JSON mode: "8" is not an int, 8.0 is not an int, true is not
a number; JSON arrays are accepted for tuples. Untrusted text goes through
`parse_json` first, which refuses nesting deeper than MAX_JSON_DEPTH before
`json.loads` (recursive in CPython) can reach the recursion limit.
"""
from __future__ import annotations

import functools
import json
import re

from pydantic import TypeAdapter, ValidationError

MAX_JSON_DEPTH = 32      # our deepest config (provenance.train_config...) is ~5 levels
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (brackets inside strings not counted)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_json(text: str, max_depth: int = MAX_JSON_DEPTH):
    """json.loads after a depth check; ValueError (one line) for bad JSON or too deep nesting."""
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"JSON nested {depth} levels deep (at most {max_depth})")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not valid JSON ({error})") from None


@functools.cache
def _adapter(cls) -> TypeAdapter:
    return TypeAdapter(cls)


def one_line(error: ValidationError, limit: int = 3) -> str:
    """'field.path: message; ...' for the first `limit` problems."""
    parts = []
    for problem in error.errors()[:limit]:
        where = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        value = repr(problem.get("input"))[:60] if where else ""
        parts.append(f"{where}: {message} (got {value})" if where else message)
    more = error.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate(cls, values: dict):
    """An instance of dataclass `cls` from JSON-compatible `values`; ValueError with one line when they do not fit."""
    try:
        text = json.dumps(values)
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"not JSON-compatible ({error})") from None
    try:
        return _adapter(cls).validate_json(text, strict=True)
    except ValidationError as error:
        raise ValueError(one_line(error)) from None

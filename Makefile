# Two entry points: `make run` (the app on the bundled checkpoints and videos)
# and `make test`. Both build .venv on first use and install the project into it
# (`pip install -e .`, with the extras each needs; the lists are the requirements files).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: run test docs bench chromium clean-venv

$(VENV)/.stamp-runtime: pyproject.toml requirements.txt requirements-app.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -e '.[app]'
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-runtime requirements-dev.txt requirements-peers.txt requirements-peers-nodeps.txt
	$(PY) -m pip install -q -e '.[app,dev,peers]'
	$(PY) -m pip install -q --no-deps -r requirements-peers-nodeps.txt
	# torchvision's own video ResNets, the oracle of `import torchvision` (tests/peers/torchvision.py): off
	# sys.path, because PyPI's wheel is a CUDA build whose C ops cannot load beside torch 2.13.0+cpu.
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/peers/torchvision torchvision==0.28.0
	touch $@

run: $(VENV)/.stamp-runtime
	$(VENV)/bin/gta-lens app --address $(ADDRESS) --port $(PORT)

# The browser tests and PNG export drive Debian's Chromium: installed here when missing
# (as root, with apt-get), else one line says how.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium (browser tests, PNG export)"; \
	    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install chromium' (the browser and PNG-export tests need it)"; \
	  fi; }

# Two pytest workers (the CI machine has 2 cores), one torch thread each.
test: $(VENV)/.stamp-dev chromium
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 tests

docs: $(VENV)/.stamp-dev
	$(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.stamp-runtime
	for f in bench/bench_*.py; do $(PY) $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)

# Two entry points: `make run` (the app on the bundled checkpoints and videos)
# and `make test`. Both build .venv from the requirements files on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: run test bench clean-venv

$(VENV)/.stamp-runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-runtime requirements-dev.txt requirements-peers.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-peers.txt
	# torchvision's own video ResNets, the oracle of `import torchvision` (tests/peers/torchvision.py): off
	# sys.path, because PyPI's wheel is a CUDA build whose C ops cannot load beside torch 2.13.0+cpu.
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/peers/torchvision torchvision==0.28.0
	touch $@

run: $(VENV)/.stamp-runtime
	$(PY) -m streamlit run app/main.py --server.address $(ADDRESS) --server.port $(PORT)

test: $(VENV)/.stamp-dev
	$(PY) -m pytest -q tests

bench: $(VENV)/.stamp-runtime
	for f in bench/bench_*.py; do $(PY) $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)

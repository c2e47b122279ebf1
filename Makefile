# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tuiexport

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

# Each prints ratios against baselines measured in the same run; catalogs are cached in bench/out.
bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/server_bench.py
	$(PY) bench/tui_bench.py --products 1000000 --home bench/out/tui-home --size 80x24
	$(PY) bench/tui_bench.py --products 1000000 --home bench/out/tui-home --size 160x48

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

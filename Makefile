# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint format docs bench clean cluster-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tuiexport

# The gates: formatting, lint rules, types, and the import contracts (pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Rewrites the tree the way `ruff format --check` wants it (and applies ruff's safe fixes).
format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The documentation site; --strict turns a broken link or a missing page into a failure.
# Not --quiet: it drops the warnings before --strict counts them, and the build passes anyway.
# NO_MKDOCS_2_WARNING silences mkdocs-material's release banner (not a build warning).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

test: lint docs
	$(PY) -m pytest -q -n 2 --dist loadfile

# Each prints ratios against baselines measured in the same run; catalogs are cached in bench/out.
bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/selection_bench.py
	$(PY) bench/startup_bench.py
	$(PY) bench/server_bench.py
	$(PY) bench/import_bench.py
	$(PY) bench/tui_bench.py --products 1000000 --home bench/out/tui-home --size 80x24
	$(PY) bench/tui_bench.py --products 1000000 --home bench/out/tui-home --size 160x48

# Issue 13 on one machine: a throw-away PostgreSQL, two share servers and a worker behind nginx
# (docs/operations/deployment.md); S3=1: the artifacts in a throw-away radosgw instead of a
# shared folder. Ctrl+C stops and removes it all.
cluster-demo: $(STAMP)
	$(PY) -m tests.cluster $(if $(filter 1,$(S3)),--s3)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache

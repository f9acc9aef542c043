# Two entry points (README): `make claims` verifies the paper's claims and writes the report;
# `make test` runs the unit, property and pipeline tests. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
PROFILE ?= mini
WORKERS ?= 2
ARGS    ?=

.PHONY: claims test bench bench-grid clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[collect,slurm]"
	touch $(STAMP)

# Chromium renders the HTML report in tests/test_report_browser.py.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
	  else sudo apt-get install -y -qq chromium >/dev/null; fi; }

claims: $(STAMP)
	$(PY) -m dtcore claims --profile $(PROFILE) --workers $(WORKERS) $(ARGS)

test: $(STAMP) chromium
	$(PY) -m pytest tests/ -n $(WORKERS) $(ARGS)

# every benchmark at its defaults (minutes) except the grid build (bench-grid: 40 min to 1.5 h, by VM)
bench: $(STAMP)
	for f in bench/*.py; do [ $$f = bench/grid.py ] || $(PY) $$f || exit 1; done

bench-grid: $(STAMP)
	$(PY) bench/grid.py --envs hopper --seeds 0-4 --claims $(ARGS)

clean-venv:
	rm -rf $(VENV)

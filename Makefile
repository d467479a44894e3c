# Set-up and the two everyday jobs. `make run` and `make test` create .venv and install everything first.
#
#   TORCH   the torch requirement installed before the package. Default: torch==2.13.0.
#           GPU users: make run TORCH="torch"   (or any pip spec / wheel path for your CUDA version)
#   TORCH_INDEX  an index to take torch from, e.g. the CPU-only wheels on Linux (PyPI's Linux torch bundles CUDA):
#           make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
#   PYTHON  interpreter used to create the venv (>= 3.10)
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= data,serve,export,viz,parquet,hub,dev
PYTEST_ARGS ?=
BIN := $(VENV)/bin

.PHONY: install run test test-slow test-avx2 test-timm lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

run: install  ## the quickstart: NIN-MNIST on the embedded digits, prints the test accuracy
	$(BIN)/nin train --out runs/quickstart

test: install  ## the default suite (minutes on 2 cores)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: install  ## the long checks
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

# The precision-sensitive tests again with oneDNN held to AVX2: on a CPU with native bf16 (AVX512-BF16, AMX) this
# exercises the code paths of an AVX2-only CPU (emulated bf16, no fused bf16 kernels) too. A no-op change elsewhere.
AVX2_TESTS ?= tests/test_bf16.py tests/test_inference_model.py tests/test_predictor.py tests/test_export.py
test-avx2: install
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest -q $(AVX2_TESTS) $(PYTEST_ARGS)

# The timm integration in a second venv: timm imports torchvision at import time, and PyPI's torchvision does not
# load beside the default CPU torch, so timm gets its own matching torch + torchvision pair (a CUDA build; it runs on
# the CPU too). The main venv never has timm: its timm tests skip and say why. Re-runs reuse the venv (its stamp).
#   TIMM_TORCH  the torch/torchvision requirements of that venv. Default: torch==2.14.1 torchvision==0.29.1
#   TIMM_VENV   where it lives. Default: .venv-timm
TIMM_VENV  ?= .venv-timm
TIMM_TORCH ?= torch==2.14.1 torchvision==0.29.1
TIMM_BIN := $(TIMM_VENV)/bin

$(TIMM_VENV)/.installed: pyproject.toml Makefile
	test -x $(TIMM_BIN)/python || $(PYTHON) -m venv $(TIMM_VENV)
	$(TIMM_BIN)/python -m pip install -q --upgrade pip
	$(TIMM_BIN)/python -m pip install -q $(TIMM_TORCH) $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(TIMM_BIN)/python -m pip install -q -e ".[timm,dev]"
	touch $@

test-timm: $(TIMM_VENV)/.installed  ## NIN in timm's registry and timm's model checks over every NIN model
	$(TIMM_BIN)/python -m pytest -q -p no:cacheprovider tests/test_timm*.py $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: install
	$(BIN)/nin bench

clean:
	rm -rf $(VENV) $(TIMM_VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

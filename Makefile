# Two commands for a new user: `make demo` and `make test`. Both create ./.venv first when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cotbal-setup
# torch / torchvision / torchaudio set that LLaMA-Factory 0.9.5 imports on a CPU-only machine (see README).
# Every package is installed through a wheelhouse outside the clone (.ci/wheelhouse.sh): a second `make setup`
# (a new clone, CI) downloads nothing.
TORCH_PKGS ?= torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0
DEEPSPEED ?= deepspeed==0.19.8
PYTEST_ARGS ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup test test-wheel demo demo-quick demo-docs lint bench clean

setup: $(STAMP)

$(STAMP): setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; run 'make PYTHON=/path/to/python3.11 setup'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" "setuptools>=69" wheel
	bash .ci/wheelhouse.sh $(BIN)/python $(TORCH_PKGS)
	DS_BUILD_OPS=0 bash .ci/wheelhouse.sh $(BIN)/python --no-build-isolation $(DEEPSPEED)
	bash .ci/wheelhouse.sh $(BIN)/python --no-build-isolation -e ".[test]"
	$(BIN)/python -c "import cotbal_plugin, llamafactory, deepspeed; print('cotbal_plugin', cotbal_plugin.__version__, 'ready')"
	touch $(STAMP)

test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# Release path: build sdist + wheel, install the wheel into a fresh venv, train with `loss: cotbal` through its .pth.
test-wheel: setup
	PYTHON=$(PYTHON) BUILD_PYTHON=$(BIN)/python TORCH_PKGS="$(TORCH_PKGS)" bash .ci/test_wheel.sh

demo: setup
	$(BIN)/python -m cotbal_plugin.demo $(DEMO_ARGS)

demo-quick: setup
	$(BIN)/python -m cotbal_plugin.demo --quick $(DEMO_ARGS)

# full demo, then its results block and figures into docs/demo.md and docs/img (numbers are never typed by hand)
demo-docs: demo
	$(BIN)/python -m cotbal_plugin.demo.results demo_out docs/demo.md docs/img

lint: setup
	$(BIN)/ruff check cotbal_plugin tests benchmarks setup.py

bench: setup
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_loss.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache demo_out

# Every target installs what it needs into .venv/ first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2
# The tests run many small processes at once: OpenMP threads that spin while waiting would slow them down many
# times over, so the test targets set PASSIVE. The demo and the benchmarks run as the product ships (unset).
TEST_ENV := OMP_WAIT_POLICY=$(or $(OMP_WAIT_POLICY),PASSIVE)
export MXNET_SUBGRAPH_VERBOSE := 0

.PHONY: install test test-system demo bench-recordio bench-train bench-quality bench-serve bench-soak image image-test image-gpu-check clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

test: install browser
	$(TEST_ENV) $(PY) -m pytest -q tests

# Debian's chromium and chromium-driver, for the model page's browser test (tests/integration/
# test_model_page_browser.py) and its screenshot (demo.model_page_screenshot). Without apt-get it says so,
# and that test is skipped with the reason.
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	    echo "make browser: installing chromium and chromium-driver"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
	    echo "make browser: no apt-get on this machine: the model page's browser test will be skipped" >&2; \
	fi

test-system: install
	$(TEST_ENV) $(PY) -m pytest -q -m system tests/system tests/unit tests/integration

demo: install
	$(PY) -m demo.run_demo

bench-recordio: install
	$(PY) -m bench.bench_recordio

bench-train: install
	$(PY) -m bench.bench_train

bench-quality: install
	$(PY) -m bench.bench_quality

bench-serve: install
	$(PY) -m bench.bench_serve

# 16 clients, 5 minutes of mixed requests (SOAK_ARGS=--quick for a 20 s smoke run)
bench-soak: install
	$(PY) -m bench.bench_soak $(SOAK_ARGS)

image:
	bash container/build_image.sh cpu

image-test: install
	bash container/image_test.sh

image-gpu-check:
	bash container/build_image.sh gpu && bash container/gpu_ldd_check.sh

# On a machine with an NVIDIA GPU and driver: its own venv (build/gpu-venv), the gpu tests, 200-update
# fp32/fp16 training, decoding and a served request; without a GPU it says so and exits 0.
.PHONY: gpu-smoke
gpu-smoke:
	$(PYTHON) -m bench.gpu_smoke

clean:
	rm -rf $(VENV) build demo_run

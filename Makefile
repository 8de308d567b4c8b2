# mmlab: two commands do everything on a fresh machine.
#   make lab    JupyterLab on notebooks/ with the embedded model ready (no API key needed)
#   make test   unit + integration tests, notebooks under nbval, the browser test
#   make test-fast   everything but notebooks, the browser and the slow tests, on 2 workers
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8888
# llama.cpp is compiled by pip (about 6 min on 2 cores, then cached). A portable x86-64 build:
# -march=native builds have crashed here with "Illegal instruction" (AVX-512/AMX advertised
# by the CPU but not usable in the sandbox). Only what mmlab uses is built: no multimodal
# library (LLAVA_BUILD=OFF: mtmd, which llama-cpp-python loads only for image chat); its
# examples, tests and tools are already off when llama.cpp is built as a subproject.
LLAMA_TRIM := -DLLAVA_BUILD=OFF
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON $(LLAMA_TRIM)
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF $(LLAMA_TRIM)
endif
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test test-fast install lint record bench browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mmlab needs Python >= 3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -e ".[local,test,dev]"
	touch $(STAMP)

install: $(STAMP)

lab: install
	mkdir -p -m 700 .mmlab  # the project's own cache and usage log (.mmlab/mmlab.db, not committed)
	$(PY) -m mmlab doctor
	$(VENV)/bin/jupyter lab notebooks/ --port=$(PORT) $(ROOT_FLAG)

# tests/test_notebooks.py replays every notebook under nbval (in a fresh copy, sockets
# forbidden), so the notebooks are not run a second time here.
test: install browser
	$(PY) -m ruff check mmlab tests bench notebooks
	$(PY) -m pytest tests

# Everything but the notebooks, the browser and the slow tests (markers in pyproject.toml),
# on FAST_WORKERS processes: under 90 s on 2 cores. The embedded model's tests share one worker
# (loadgroup) and its server decodes on one thread there (tests/conftest.py): a llama.cpp server
# spinning a thread per core next to a busy worker runs 5-25x slower.
FAST_WORKERS ?= 2
test-fast: install
	$(PY) -m ruff check mmlab tests bench notebooks
	$(PY) -m pytest tests -n $(FAST_WORKERS) --dist loadgroup -m "not slow and not notebook and not browser"

# The browser test drives JupyterLab in Debian's chromium (never a downloaded browser), and
# `mmlab record` draws the figures' static images in it.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	  else \
	    echo "the browser test needs Debian's chromium: sudo apt-get install chromium"; exit 1; \
	  fi; }

lint: install
	$(PY) -m ruff check mmlab tests bench notebooks

# Each figure's static image (for GitHub and nbviewer) is drawn by kaleido in Debian's chromium.
record: install browser
	$(PY) -m mmlab record notebooks/0*.ipynb

bench: install
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build .pytest_cache

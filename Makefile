# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each step leaves a stamp, so a second run skips what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# No pip cache: each package is installed once per venv, and a cached copy of torch and the
# models' parts would take gigabytes of a disk that CI machines do not always have.
export PIP_NO_CACHE_DIR := 1
# A fresh machine may be upgrading packages as it boots: wait for dpkg's lock, not fail on it.
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get) -o DPkg::Lock::Timeout=600
PORT ?= 8501
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
LLAMA_VERSION := $(shell sed -n 's/^llama-cpp-python[^=]*==//p' requirements.txt)
LLAMA_TOOLS := models/.tools/llama.cpp-$(LLAMA_VERSION)

.PHONY: run test test-fast lint setup models test-setup test-models clean-models

run: setup
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

test: setup test-setup lint
	$(PY) -m pytest

test-fast: setup test-setup lint
	$(PY) -m pytest -m "not slow and not browser"

# CI runs these before any test: lint, import order and types must be clean.
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

setup: $(VENV)/.installed models $(LLAMA_TOOLS)/.extracted

# torch first and pinned: any other torch request pulls gigabytes of CUDA wheels.
$(VENV)/.installed: requirements.txt models/requirements.txt pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	# llama.cpp for this machine's CPU, but without AMX: some VMs report AMX tiles that the
	# hypervisor then traps (invalid opcode in tileloadd). No wheel cache: its key ignores
	# CMAKE_ARGS, so a wheel built elsewhere could come back.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q --no-cache-dir $$(grep '^llama-cpp-python' requirements.txt)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -r models/requirements.txt
	# The Studio itself, editable: `studio` on PATH, `import core` from anywhere (bench/).
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

models: $(VENV)/.installed
	$(PY) -m core models prepare

# GGUF export: llama.cpp's converters from the llama-cpp-python sdist of the pinned version, so
# the files they write are ones the installed llama.cpp reads. sentencepiece is imported by the
# converter even for BPE tokenizers; it goes beside the converters, not into the Studio's venv.
$(LLAMA_TOOLS)/.extracted: requirements.txt | $(VENV)/.installed
	rm -rf $(LLAMA_TOOLS) $(LLAMA_TOOLS).download && mkdir -p $(LLAMA_TOOLS).download
	$(PIP) download -q --no-deps --no-binary llama-cpp-python -d $(LLAMA_TOOLS).download \
		llama-cpp-python==$(LLAMA_VERSION)
	mkdir -p $(LLAMA_TOOLS)
	tar xzf $(LLAMA_TOOLS).download/llama_cpp_python-$(LLAMA_VERSION).tar.gz -C $(LLAMA_TOOLS) \
		--strip-components=3 $(addprefix llama_cpp_python-$(LLAMA_VERSION)/vendor/llama.cpp/, \
		convert_hf_to_gguf.py convert_lora_to_gguf.py conversion gguf-py)
	$(PIP) install -q --target $(LLAMA_TOOLS)/site sentencepiece==0.2.1
	rm -rf $(LLAMA_TOOLS).download
	touch $@

test-setup: $(VENV)/.installed-dev /usr/bin/chromium /usr/bin/tesseract test-models

# The optional models, so that their tests run: a chat browser test asks with the 1.5B model, as
# a user does for better answers, and a collection keeps mpnet's 768-d vectors beside MiniLM's
# (1.5 GB from PyPI, 2 GB on disk; a second run finds them installed). Where they would leave
# less than 2 GB for the tests' own files, this says so and leaves them out: the two tests that
# use them skip, naming the model.
INSTALL_FOR_TESTS := $(PY) -m core models install --skip-if-no-room --leave-free-mb 2048
test-models: $(VENV)/.installed
	$(INSTALL_FOR_TESTS) qwen2.5-coder-1.5b-instruct
	$(INSTALL_FOR_TESTS) all-mpnet-base-v2

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PIP) install -q -r requirements-dev.txt
	touch $@

# Debian packages for the tests: a real browser, and tesseract for the OCR path.
/usr/bin/chromium /usr/bin/tesseract &:
	# update does not wait for its lock as install does: try again for up to 5 minutes
	n=0; until $(APT) update -qq; do [ $$((n += 1)) -lt 30 ] || exit 1; sleep 10; done
	DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium tesseract-ocr tesseract-ocr-eng

clean-models:
	rm -rf models/base models/gguf models/.state

# The two commands of the README: `make run` (install, then start the app) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama.cpp's native build crashed on these CPUs in the AMX kernels; this portable build works.
export CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF

.PHONY: run test install browser

run: install
	$(BIN)/rag build
	$(BIN)/streamlit run app.py

test: install browser
	$(BIN)/python -m pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test,local-llm]'
	touch $@

# Headless Chromium for the browser test (Debian packages; needs root, as on our machines and CI).
browser:
	@dpkg -s chromium chromium-driver fonts-wqy-microhei >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei)

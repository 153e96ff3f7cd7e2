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
# open3d's wheel links libusb-1.0, a system library: installed from Debian when missing (as root).
$(VENV)/.installed: pyproject.toml
	@ldconfig -p | grep -q libusb-1.0 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null; } || echo "warning: install libusb-1.0-0 (Debian/Ubuntu) for open3d"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV) demo_output

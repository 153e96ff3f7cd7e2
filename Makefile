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
# The export tests read our files with Assimp (Debian assimp-utils) and the Khronos glTF validator
# (npm); both are installed here when possible, and their tests skip with a reason otherwise.
$(VENV)/.installed: pyproject.toml tools/gltf_validator/package-lock.json
	@ldconfig -p | grep -q libusb-1.0 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null; } || echo "warning: install libusb-1.0-0 (Debian/Ubuntu) for open3d"
	@command -v assimp >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq assimp-utils >/dev/null; } || echo "warning: install assimp-utils (Debian/Ubuntu) for the FBX tests"
	@command -v npm >/dev/null && npm ci --prefix tools/gltf_validator --no-audit --no-fund --loglevel=error >/dev/null || echo "warning: npm not found: the glTF validator tests will be skipped"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV) demo_output

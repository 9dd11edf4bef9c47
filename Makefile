# Two things a newcomer runs: `make demo` and `make test` (README). Both create .venv and install first.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test system-deps clean

# pip's "Location ... is ignored" warnings come from local mirror folders in this machine's pip config.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -c "import monailabel, torch, models"
	touch $(STAMP)

# Debian packages the tests use: Orthanc (PACS test), Mesa EGL (Slicer render), Java (METEOR).
system-deps:
	bash scripts/install-system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/gazelabel serve

# The suite runs its files in reverse order: every file must pass alone and in any order (tests/conftest.py).
test: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider --file-order reverse

clean:
	rm -rf $(VENV) .gazelabel

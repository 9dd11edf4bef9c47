# Two things a newcomer runs: `make demo` and `make test` (README). Both create .venv and install first.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The web annotator's own venv: trame-slicer pins slicer-core 5.11, the project's .venv has 5.13.
WEB_VENV ?= .venv-web
WEB_STAMP := $(WEB_VENV)/.installed
WEB_PORT ?= 8080

.PHONY: demo test system-deps web-venv clean

# pip's "Location ... is ignored" warnings come from local mirror folders in this machine's pip config.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -c "import monailabel, torch, models"
	touch $(STAMP)

# `gazelabel web` (about 1.1 GB). Without it the web annotator says how to make it and its browser tests skip;
# a failed build does not stop `make test` or `make demo`, and is tried again on the next run.
$(WEB_STAMP): web_annotator/requirements.txt scripts/web-venv.sh
	if bash scripts/web-venv.sh $(WEB_VENV); then touch $(WEB_STAMP); \
	else echo "web-venv: could not build $(WEB_VENV); gazelabel web and its browser tests are unavailable" >&2; fi

web-venv: $(WEB_STAMP)

# Debian packages the tests use: Orthanc (PACS test), Mesa EGL (Slicer render), Java (METEOR), Chromium (web).
system-deps:
	bash scripts/install-system-deps.sh

# The server, and the web annotator on http://127.0.0.1:$(WEB_PORT) (both URLs in the banner).
demo: $(STAMP) $(WEB_STAMP)
	$(VENV)/bin/gazelabel serve --web-port $(WEB_PORT)

# The suite runs its files in reverse order: every file must pass alone and in any order (tests/conftest.py).
test: $(STAMP) $(WEB_STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider --file-order reverse

clean:
	rm -rf $(VENV) $(WEB_VENV) .gazelabel

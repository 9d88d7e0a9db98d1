# Two front-door commands; both build .venv from scratch when it is missing.
#   make demo   generate the demo corpus, train ResNet-18 and GRNN on it, print dev/eval EER
#   make test   run the test suite
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo demo-sources test install install-test clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Optional: more real speech for the demo corpus (Debian's codec2 recordings); skipped when not root or offline.
demo-sources:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg -s codec2-examples >/dev/null 2>&1; then \
	  (apt-get update -qq && apt-get install -y -qq codec2-examples) >/dev/null 2>&1 \
	    || echo "codec2-examples not installed; the demo corpus uses the ARCTIC samples only"; fi

demo: $(VENV)/.installed demo-sources
	$(PY) run.py --config=configs/demo.py:resnet18 --workdir=runs/demo_resnet18
	$(PY) run.py --config=configs/demo.py:grnn --workdir=runs/demo_grnn
	$(PY) -m jaxplastic.summarize runs/demo_resnet18 runs/demo_grnn

test: $(VENV)/.installed-test
	$(PY) -m pytest -q -n auto --maxprocesses 4 tests

clean:
	rm -rf $(VENV) runs

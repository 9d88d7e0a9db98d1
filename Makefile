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

$(VENV)/.installed-demo: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[demo]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Optional: more real speech for the demo corpus, ~90 MB (Debian's codec2 recordings and Asterisk voice prompts:
# ~2.7 h of studio prompts by seven voices, four of them wideband G.722). Installed when root and online; otherwise
# the corpus is built from what is there (docs/demo_corpus.md says what that changes, and how to unpack the
# packages without root).
DEMO_DEBS := codec2-examples asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722 \
  asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722 asterisk-prompt-it-menardi-wav asterisk-prompt-es-co \
  asterisk-prompt-fr-armelle
demo-sources:
	@missing=; for p in $(DEMO_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq >/dev/null 2>&1; \
	  apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || for p in $$missing; do \
	    apt-get install -y -qq --no-install-recommends $$p >/dev/null 2>&1 || echo "$$p not installed"; done; \
	elif [ -n "$$missing" ]; then \
	  echo "not installed (needs root and apt):$$missing; the demo corpus uses the speech that is installed"; fi

demo: $(VENV)/.installed-demo demo-sources
	$(PY) run.py --config=configs/demo.py:resnet18 --workdir=runs/demo_resnet18
	$(PY) run.py --config=configs/demo.py:grnn --workdir=runs/demo_grnn
	$(PY) -m jaxplastic.summarize runs/demo_resnet18 runs/demo_grnn

test: $(VENV)/.installed-test
	$(PY) -m pytest -q -n auto --maxprocesses 4 tests

clean:
	rm -rf $(VENV) runs

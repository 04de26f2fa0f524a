# One command to run the dashboard, one to run the tests; both set up .venv first.
# `make run` installs the runtime (requirements.txt) only; `make test` adds requirements-dev.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-$(shell cksum requirements.txt | cut -d' ' -f1)
DEV_STAMP := $(VENV)/.dev-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
# The FinOps Foundation's focus-validator needs pandas 2 and pandera 0.17 (which imports multimethod's
# `overload`, gone in multimethod 2): a venv of its own, used by tests/e2e/test_focus_validator.py.
FOCUS_VENV ?= .venv-focus
FOCUS_STAMP := $(FOCUS_VENV)/.focus-validator-1.0.0

.PHONY: install install-dev run test lint screenshots bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.run-*
	touch $(RUN_STAMP)

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.dev-* $(VENV)/.run-*
	touch $(DEV_STAMP) $(RUN_STAMP)

install: $(RUN_STAMP)

$(FOCUS_STAMP):
	$(PYTHON) -m venv $(FOCUS_VENV)
	$(FOCUS_VENV)/bin/pip install --quiet focus-validator==1.0.0 multimethod==1.12
	touch $(FOCUS_STAMP)

install-dev: $(DEV_STAMP) $(FOCUS_STAMP)

run: install
	$(PY) -m core init
	$(PY) -m streamlit run server.py

lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m mypy core
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -n auto --dist loadfile

# Refresh the README's pictures (the browser tests write theirs to test-artifacts/ otherwise).
screenshots: install-dev
	SPENDBOARD_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/e2e/test_browser.py -k every_page_loads

bench: install-dev
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(FOCUS_VENV) .pytest_cache .mypy_cache .ruff_cache

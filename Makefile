# One command to run the dashboard, one to run the tests; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: install run test lint screenshots bench clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m core init
	$(PY) -m streamlit run server.py

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy core

test: lint
	$(PY) -m pytest

# Refresh the README's pictures (the browser tests write theirs to test-artifacts/ otherwise).
screenshots: install
	SPENDBOARD_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/test_browser.py -k every_page_loads

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# make demo   set up .venv, start the sandbox, run db_performance against it, print the findings
# make test   set up .venv with the test extras, run every test and every notebook (what CI runs)
# make lint   ruff check + ruff format --check

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint system-deps clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)

# One stamp per extras set, rebuilt when pyproject.toml changes.
$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[sandbox]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e '.[test,sandbox]'
	touch $@

system-deps:
	@scripts/system-deps

demo: system-deps $(VENV)/.demo-installed
	$(VENV)/bin/imsnb demo

test: system-deps $(VENV)/.test-installed
	$(VENV)/bin/pytest

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache

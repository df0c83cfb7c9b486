# make demo       set up .venv, start the sandbox, run every notebook against it, print the findings
# make test       set up .venv with the test extras (and .venv-airflow), run every test and notebook, build the
#                 docs strictly (tests/test_docs.py): what CI runs
# make test-fast  set up .venv with the test extras, run the tests that need no server, kernel or imsnb process
#                 (`pytest -m "not servers"`: findings, parameters, charts, report, config...); no sandbox starts,
#                 no system package is needed
# make lint       ruff check + ruff format --check
# make lab        JupyterLab on fresh copies of the notebooks in outputs/.lab/<time>/ (the tracked notebooks/ stay
#                 untouched), with this shell's targets; SCENARIO=db-degradation starts a sandbox for the session
# make docs       the documentation site (mkdocs.yml, docs/) built with --strict into site/

VENV ?= .venv
PY := $(VENV)/bin/python
# uv installs (pip's own resolver and downloads took 4.5 min for the two venvs of a clean clone). It is installed
# into .venv by pip, and installs into either venv. --compile-bytecode, as pip does: this machine sets
# PYTHONDONTWRITEBYTECODE, so without .pyc files every kernel and process compiled pandas, botocore, Airflow... from
# source again (a clean-clone `make test` took 35 min of CPU instead of 16).
UV := $(VENV)/bin/uv
INSTALL := $(UV) pip install -q --compile-bytecode --python
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_VERSION ?= 3.3.2

.PHONY: demo test test-fast lint lab docs system-deps test-system-deps clean FORCE

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(UV): | $(VENV)/bin/python
	$(PY) -m pip --disable-pip-version-check -q install uv

# One stamp per extras set, rebuilt when pyproject.toml changes.
$(VENV)/.demo-installed: pyproject.toml | $(UV)
	$(INSTALL) $(PY) -e '.[sandbox]'
	touch $@

# JupyterLab for the tests that open a real lab (tests/test_reports_offline.py, tests/faults/test_fault_hostile_text.py,
# tests/faults/test_fault_lab_session.py), in a folder of its own, put on the lab's PYTHONPATH by those tests only:
# the test venv stays without it (~1 min cold, 220 MB).
$(VENV)/.test-installed: pyproject.toml | $(UV)
	$(INSTALL) $(PY) -e '.[test,sandbox]'
	$(INSTALL) $(PY) --upgrade --target $(VENV)/jupyterlab 'jupyterlab>=4'
	touch $@

$(VENV)/.lab-installed: pyproject.toml | $(UV)
	$(INSTALL) $(PY) -e '.[lab,sandbox]'
	touch $@

$(VENV)/.docs-installed: pyproject.toml | $(UV)
	$(INSTALL) $(PY) -e '.[docs]'
	touch $@

# Apache Airflow in a venv of its own (its pins never move .venv's), with imsnb installed into it as a worker
# would have it (`-e '.[airflow]'`): the DAG file imports imsnb, and the notebook kernels start from this
# interpreter, so imsnb's own dependencies must be there too. tests/test_airflow.py runs `airflow dags test` in it;
# tests/test_airflow_celery.py runs the CeleryExecutor (the Celery provider) with two workers.
# The stamp is rebuilt when pyproject.toml or AIRFLOW_PACKAGES change (.packages holds the list last installed).
AIRFLOW_PACKAGES := 'apache-airflow==$(AIRFLOW_VERSION)' apache-airflow-providers-celery 'celery<5.7'
$(AIRFLOW_VENV)/.packages: FORCE
	@mkdir -p $(AIRFLOW_VENV)
	@echo "$(AIRFLOW_PACKAGES)" | cmp -s - $@ || echo "$(AIRFLOW_PACKAGES)" > $@

$(AIRFLOW_VENV)/.installed: pyproject.toml $(AIRFLOW_VENV)/.packages | $(UV)
	python3 -m venv $(AIRFLOW_VENV)
	$(INSTALL) $(AIRFLOW_VENV)/bin/python $(AIRFLOW_PACKAGES) -e '.[airflow]'
	touch $@

FORCE:

system-deps:
	@scripts/system-deps

test-system-deps:
	@scripts/system-deps --test

demo: system-deps $(VENV)/.demo-installed
	$(VENV)/bin/imsnb demo

# Five workers (pytest-xdist), a test file each at a time: most tests wait on servers, kernels and samples, so five
# share two cores (measured on a quiet machine: 12.6 min against 15.3 with three).
test: test-system-deps $(VENV)/.test-installed $(AIRFLOW_VENV)/.installed
	$(VENV)/bin/pytest -n 5 --dist loadfile

# The tests marked `servers` at collection (conftest.py: a sandbox fixture, a notebook, tests/faults/, a module's
# `pytestmark`) are deselected, so no sandbox starts (one that tries fails, naming the marker). One process: each
# xdist worker would repeat the imports and collection, ~10 s of CPU of the lane's ~35.
test-fast: $(VENV)/.test-installed
	$(VENV)/bin/pytest -m "not servers"

SCENARIO ?=
lab: system-deps $(VENV)/.lab-installed
	$(VENV)/bin/imsnb lab $(if $(SCENARIO),--sandbox $(SCENARIO))

# NO_MKDOCS_2_WARNING: no banner about Material's successor on every build.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) .pytest_cache site

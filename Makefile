# make run   - install what is missing, start the embedded database, run the main job on the sample
# make test  - the same set-up, then ruff, mypy, the whole test suite and the multi-host test
# make mypy  - the type check alone
# run and test are idempotent: stamps in .stamps/ skip steps whose inputs did not change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RENDERER := $(VENV)/bin/renderer
STAMPS := .stamps
PYTEST_ARGS ?=

.PHONY: run test test-hosts lint mypy bench bench-queue bench-binning bench-traffic bench-sensors bench-maptiles clean-stamps

$(STAMPS):
	@mkdir -p $(STAMPS)

$(STAMPS)/system: scripts/install-system-deps | $(STAMPS)
	scripts/install-system-deps
	@touch $@

$(STAMPS)/system-test: scripts/install-system-deps | $(STAMPS)
	scripts/install-system-deps --test
	@touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

# Editable install: sql/ and migrations/ are read from the checkout; the C extension is
# rebuilt in place whenever its sources change.
$(STAMPS)/install: $(PY) pyproject.toml setup.py $(wildcard ext/*.c ext/*.h) | $(STAMPS)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) setup.py -q build_ext --inplace
	@touch $@

$(STAMPS)/bench-deps: $(STAMPS)/install | $(STAMPS)
	$(PY) -m pip install -q -e '.[test,bench]'
	@touch $@

run: $(STAMPS)/system $(STAMPS)/install
	scripts/run-sample

# One pytest run; its last lines count passed/failed/skipped per tier (unit, db, acceptance;
# tests/README.md). One tier alone: make test PYTEST_ARGS='-m unit'.
test: $(STAMPS)/system-test $(STAMPS)/install
	$(VENV)/bin/ruff check renderer tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_ARGS)
	$(PY) scripts/hosts/run.py

lint: $(STAMPS)/install
	$(VENV)/bin/ruff check renderer tests benchmarks scripts

# Type check (settings in pyproject.toml: strict on the engine and the connector).
mypy: $(STAMPS)/install
	$(VENV)/bin/mypy

bench: bench-binning bench-queue bench-traffic bench-sensors bench-maptiles

bench-queue: $(STAMPS)/system $(STAMPS)/bench-deps
	$(PY) benchmarks/queue_throughput.py

bench-binning: $(STAMPS)/install
	$(PY) benchmarks/binning.py

bench-traffic: $(STAMPS)/system $(STAMPS)/bench-deps
	$(PY) benchmarks/traffic.py

bench-sensors: $(STAMPS)/system $(STAMPS)/bench-deps
	$(PY) benchmarks/sensors.py

bench-maptiles: $(STAMPS)/system $(STAMPS)/bench-deps
	$(PY) benchmarks/maptiles.py

clean-stamps:
	rm -rf $(STAMPS)

# The multi-host acceptance test (root: network namespaces): three worker hosts reaching one
# PostgreSQL through PgBouncer and the store through S3, with faults; scripts/hosts/run.py.
# Cost: 62-82 s wall on this 2-core machine (five runs in a row); make test runs it last.
test-hosts: $(STAMPS)/system-test $(STAMPS)/install
	$(PY) scripts/hosts/run.py

# launchprov: `make run` serves the sandbox, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Bytecode and pytest's rewritten test modules are cached (__pycache__/, git-ignored) even where
# the environment says not to: without the cache each pytest worker and each service process
# compiles launchprov and the tests again (collecting the suite: 22 s of CPU instead of 15 s).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast test-cluster mutate lint format docs bench bench-reference bench-scale \
	bench-listing soak clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "launchprov needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A stamp per extra: reinstall when setup.py changes.
$(VENV)/.installed-sandbox: setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[sandbox,client]'
	@touch $@

$(VENV)/.installed-testing: setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[testing]'
	@touch $@ $(VENV)/.installed-sandbox

$(VENV)/.installed-docs: setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	@touch $@

# The sandbox, and the command line (launchprov) to try it with.
run: $(VENV)/.installed-sandbox
	$(BIN)/pserve development.ini

# The suite on one worker per core (pytest-xdist); `$(BIN)/pytest tests/...` runs part of it in
# one process, as usual. loadgroup: the tests of an e2e module run on one worker, which starts
# its module's services once (tests/conftest.py); the rest are spread one by one.
test: $(VENV)/.installed-testing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/pytest -n auto --dist loadgroup

# The inner loop: the unit layer only (schemas, adapters against Stubber and the dummy driver).
test-fast: $(VENV)/.installed-testing
	$(BIN)/pytest -q -n auto tests/unit

# HAProxy (deploy/haproxy.cfg) in front of three waitress processes, redis-server and a moto
# server: needs the Debian packages haproxy and redis-server (the tests skip without them).
test-cluster: $(VENV)/.installed-testing
	$(BIN)/pytest -m cluster tests/cluster

# Mutation testing (mutmut; setup.cfg lists the core modules): every core module (the first run
# takes hours on 2 cores; later runs re-check only what changed), or one module, all of its
# mutants again: `make mutate MODULE=launchprov/leases.py`. Writes the table of docs/testing.rst
# and fails when a module it ran is below 90% of its mutants killed.
mutate: $(VENV)/.installed-testing
	$(BIN)/python -m tools.mutation $(MODULE)

$(VENV)/.installed-bench: setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@

# QUICK=1: every benchmark with tiny counts (about a minute; CI runs it): does each still run?
# Its figures go to benchmarks/raw/quick/, not to the committed ones; a failed part fails make.
BENCH_FLAGS := $(if $(QUICK),--quick)

# The benchmarks of benchmarks/README.md (5-6 minutes): launchprov beside the bare reference in
# one run first (fails when launchprov's throughput at concurrency 8 is below 0.75x the
# reference's: QUICK=1 as well, about ten seconds), then benchmarks/RESULTS.md and plots, the
# scale figures (bench-scale) and the listing figures (bench-listing).
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.reference $(BENCH_FLAGS)
	$(BIN)/python -m benchmarks.run $(BENCH_FLAGS)
	$(BIN)/python -m benchmarks.lending $(BENCH_FLAGS)
	$(MAKE) --no-print-directory bench-scale
	$(MAKE) --no-print-directory bench-listing

# Only launchprov beside the bare reference (benchmarks/reference.py, with a py-spy profile; about
# a minute; QUICK=1: about ten seconds). Writes its section of benchmarks/RESULTS.md.
bench-reference: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.reference $(BENCH_FLAGS)

# Only the listing figures of benchmarks/listing.py: paging through 1,000 and 4,000 instances of
# a moto server against boto3's paginator (about 15 minutes, most of it launching the
# instances in moto; QUICK=1: about a minute). Writes its section of benchmarks/RESULTS.md.
bench-listing: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.listing $(BENCH_FLAGS)

# Only the scale figures of benchmarks/scale.py (batching, HAProxy): about 2 minutes; needs the
# Debian package haproxy. Writes its section of benchmarks/RESULTS.md.
bench-scale: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.scale $(BENCH_FLAGS)

# The soak of benchmarks/soak.py: 16 callers with 4 tokens for SECONDS (default 60) against one
# launchprov process as production.ini serves it, over moto behind a proxy holding each
# RunInstances 1-3 s. Prints the report (benchmarks/raw/soak/); fails on any 5xx or 503, a
# traceback in the service's log, or an instance lost, leaked or given to the wrong caller.
# RECORD=1 writes it into benchmarks/RESULTS.md; IGNORE_RETRY_AFTER=1: callers do not wait.
SECONDS ?= 60
SOAK_FLAGS := $(if $(RECORD),--record) $(if $(IGNORE_RETRY_AFTER),--ignore-retry-after)

soak: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.soak --seconds $(SECONDS) $(SOAK_FLAGS)

# The Sphinx documentation, warnings as errors: docs/_build/html/index.html
docs: $(VENV)/.installed-docs
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# ruff, and import-linter's contracts (setup.cfg; docs/architecture.rst): what may import what.
lint: $(VENV)/.installed-testing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

format: $(VENV)/.installed-testing
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache docs/_build mutants .import_linter_cache .grimp_cache

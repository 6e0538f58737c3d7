# Two commands for a newcomer: `make demo` and `make test`. Each sets up its own environment.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_INGEST := .venv-ingest
PY := $(VENV)/bin/python
# The test modules whose ingest_env tests need nothing beyond the ingest Lambda's packages.
INGEST_TESTS := tests/ingest tests/journal tests/ledger/test_ledger_parser.py tests/buffer \
	tests/contract/test_buffer_contract.py tests/export
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test test-main test-ingest lint bench chaos synth clean lock postgresql-server

$(VENV)/.ready: requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-color --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-color -r requirements/dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-color --no-deps -e .
	$(VENV)/bin/pip check
	touch $@

# The ingest Lambda ships amazon.ion 0.15 with its C extension: its tests run there too.
$(VENV_INGEST)/.ready: requirements/ingest.txt pyproject.toml
	$(PYTHON) -m venv $(VENV_INGEST)
	$(VENV_INGEST)/bin/pip install -q --disable-pip-version-check --no-color --upgrade pip
	$(VENV_INGEST)/bin/pip install -q --disable-pip-version-check --no-color -r requirements/ingest.txt
	$(VENV_INGEST)/bin/pip install -q --disable-pip-version-check --no-color --no-deps -e .
	touch $@

demo: $(VENV)/.ready
	$(VENV)/bin/qldb-settle demo

test: test-main test-ingest

test-main: $(VENV)/.ready $(VENV_INGEST)/.ready postgresql-server
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

test-ingest: $(VENV_INGEST)/.ready
	$(VENV_INGEST)/bin/python -c "import amazon.ion, sys; print('ingest env: amazon.ion', amazon.ion.__version__ if hasattr(amazon.ion, '__version__') else '?')"
	$(VENV_INGEST)/bin/python -m pytest -q -m ingest_env -p no:cacheprovider $(INGEST_TESTS)

# The PostgreSQL destination's tests start a throwaway server (destination/postgres_local.py) from
# Debian's postgresql package: installed here when missing (as root, as on CI). Without it, and
# outside CI, those tests skip and say how to get it.
postgresql-server:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's postgresql (the PostgreSQL destination's tests need a server)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "no PostgreSQL server and not root: the PostgreSQL tests will skip (apt-get install postgresql)"; fi

lint: $(VENV)/.ready
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.ready $(VENV_INGEST)/.ready postgresql-server
	$(PY) -m bench

chaos: $(VENV)/.ready postgresql-server
	$(PY) -m tests.reliability.chaos

synth: $(VENV)/.ready
	$(PY) -m infra.app

lock:
	$(PYTHON) -m venv /tmp/qldb-settle-lock && /tmp/qldb-settle-lock/bin/pip install -q -r requirements/dev.in && /tmp/qldb-settle-lock/bin/pip freeze > requirements/dev.txt

clean:
	rm -rf $(VENV) $(VENV_INGEST) cdk.out .pytest_cache .mypy_cache .ruff_cache

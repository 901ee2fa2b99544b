# The entry points the README names. `make test` works on a fresh clone.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help deps test test-fast check lint fmt types imports bench serve quickstart clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps:  ## install everything the tests need (uv, .venv, PostgreSQL binaries)
	@scripts/bootstrap.sh

test: deps  ## the whole suite, on SQLite and a real PostgreSQL
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: deps  ## the suite on SQLite only
	$(BIN)/pytest -m "not postgres" $(PYTEST_ARGS)

lint: deps  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: deps  ## format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

types: deps  ## mypy, strict on the package
	$(BIN)/mypy

imports: deps  ## the layering contracts
	$(BIN)/lint-imports

check: lint types imports test  ## everything CI should hold: lint, types, import contracts, tests

bench: deps  ## registry load benchmark (SQLite and PostgreSQL), prints latency and throughput
	$(BIN)/python -m benchmarks.registry_load

quickstart: deps  ## serve the API on SQLite and register a model and two versions with the CLI
	@scripts/quickstart.sh

serve: deps  ## run the API on ./controlplane.db in dev mode (admin token: dev-admin-token)
	CONTROLPLANE_DEV_MODE=true $(BIN)/controlplane serve

clean:  ## remove the virtualenv, caches and local databases
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache controlplane.db*

# The entry points the README names. `make test` works on a fresh clone.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help demo chaos deps test-latest ui-test bench-judge bench-adapters bench-evals bench-scale helm-build helm-lint helm-test cluster-build cluster-up cluster-down cluster-status test test-fast check lint fmt types imports bench serve quickstart manifests clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

demo: deps cluster-build  ## a real rollout end to end: local cluster, Prometheus, simulated vLLM, SQLite
	$(BIN)/python scripts/demo.py

deps:  ## install everything the tests need (uv, .venv, PostgreSQL binaries)
	@scripts/bootstrap.sh

cluster-build:  ## build etcd, kube-apiserver & co. and kwok from the Go module proxy (cached)
	@hack/cluster/build.sh

cluster-up:  ## start the local Kubernetes cluster (fake GPU nodes); prints the kubeconfig path last
	@hack/cluster/cluster.sh up

cluster-down:  ## stop the local cluster and everything it started
	@hack/cluster/cluster.sh down

cluster-status:  ## processes, readiness and nodes of the local cluster
	@hack/cluster/cluster.sh status

helm-build:  ## build helm from the Go module proxy (cached in ~/.cache/controlplane/helm-<version>)
	@hack/helm/build.sh

helm-lint: helm-build  ## lint the chart (its values schema included)
	"$$(hack/helm/build.sh)" lint --strict helm/controlplane --set adminToken=lint

helm-test: deps cluster-build helm-build  ## the chart's tests: rendering, and RBAC against a real API server
	$(BIN)/pytest tests/helm $(PYTEST_ARGS)

test: deps cluster-build helm-build  ## the whole suite: SQLite, PostgreSQL, a real Kubernetes API server, helm
	$(BIN)/pytest $(PYTEST_ARGS)

test-latest: deps cluster-build helm-build  ## the whole suite on the newest dependency versions pyproject allows (not uv.lock)
	@scripts/latest-venv.sh
	.venv-latest/bin/pytest $(PYTEST_ARGS)

test-fast: deps  ## unit and API tests on SQLite only (no PostgreSQL, cluster, helm, Prometheus, browser)
	$(BIN)/pytest -m "not postgres and not cluster and not helm and not prometheus and not browser" $(PYTEST_ARGS)

ui-test: deps  ## the history page in headless Chromium; screenshots in .artifacts/ui/
	$(BIN)/pytest tests/ui $(PYTEST_ARGS)

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

bench: deps  ## registry load beside MLflow's (installed on first use), SQLite, then ours on PostgreSQL
	$(BIN)/python -m benchmarks.registry_load

bench-judge: deps  ## whole rollouts judged three ways (sequential, fixed, Kayenta-like) on a noisy simulated fleet
	$(BIN)/python -m benchmarks.judge_rollouts $(BENCH_ARGS)

bench-evals: deps  ## the evaluation step's gate on noisy simulated versions: false failures and power
	$(BIN)/python -m benchmarks.eval_gate $(BENCH_ARGS)

bench-adapters: deps cluster-build  ## adapter and full-weights rollouts on the local cluster: time to traffic, breach to stable
	$(BIN)/python -m benchmarks.adapter_rollouts $(BENCH_ARGS)

chaos: deps cluster-build  ## several replicas on one PostgreSQL under kill -9 and restarts of PostgreSQL, the API server and Prometheus (not in make test)
	$(BIN)/python -m benchmarks.chaos $(BENCH_ARGS)

bench-scale: deps cluster-build  ## one replica, 100/300/1,000 concurrent rollouts, before and after the watch cache (PostgreSQL, local cluster)
	$(BIN)/python -m benchmarks.scale $(BENCH_ARGS)

quickstart: deps  ## serve the API on SQLite and register a model and two versions with the CLI
	@scripts/quickstart.sh

manifests: deps  ## regenerate manifests/examples from the renderer
	$(BIN)/python scripts/render_manifests.py

serve: deps  ## run the API on ./controlplane.db in dev mode (admin token: dev-admin-token)
	CONTROLPLANE_DEV_MODE=true $(BIN)/controlplane serve

clean:  ## remove the virtualenv, caches and local databases
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache controlplane.db*
	@echo "(the cluster binaries stay cached in ~/.cache/controlplane; make cluster-down stops the cluster)"

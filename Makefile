# relayshop: thin wrappers. `make run` and `make test` are the two commands of the README.
SHELL := /bin/sh
UV := $(shell sh scripts/uv.sh)
# Never download an interpreter: use the machine's Python >= 3.11.
export UV_PYTHON_DOWNLOADS := never
VENV := .venv/bin
# Bytecode goes to var/pycache, never next to the sources, and is written even where the
# environment says PYTHONDONTWRITEBYTECODE=1 (as on CI): each of the many processes that `make
# run`, the tests and the benchmarks start then skips compiling every module from source (seconds).
export PYTHONPYCACHEPREFIX := $(CURDIR)/var/pycache
export PYTHONDONTWRITEBYTECODE :=
RELAYSHOP_DATA_DIR ?= var
# The gateway of `make run`, for the tools that use it (load, demo, bench). Each service's port is
# its catalogue entry's (shared/src/relayshop_platform/catalogue.py), or RELAYSHOP_<NAME>_PORT.
RELAYSHOP_GATEWAY_PORT ?= 8000
RELAYSHOP_GATEWAY_URL ?= http://127.0.0.1:$(RELAYSHOP_GATEWAY_PORT)
RELAYSHOP_REDIS_PORT ?= 6390
REDIS_URL ?= redis://127.0.0.1:$(RELAYSHOP_REDIS_PORT)/0
export RELAYSHOP_DATA_DIR RELAYSHOP_GATEWAY_PORT RELAYSHOP_GATEWAY_URL RELAYSHOP_REDIS_PORT REDIS_URL

.PHONY: help sync run test lint generate compose-check compose-smoke new-service bench bench-revocation bench-tracing load demo trace clean

help:
	@echo "make run            start the whole system (gateway http://127.0.0.1:8000)"
	@echo "make run-idp        the same, plus an OpenID Provider the gateway trusts (port 9090)"
	@echo "make test           every test: unit, integration, end-to-end, deploy checks"
	@echo "make lint           ruff and mypy"
	@echo "make compose-check  validate docker-compose, Dockerfiles and Kubernetes manifests"
	@echo "make compose-smoke  build the images, docker compose up, use it, down (root, Debian; CI)"
	@echo "make new-service NAME=<name>   add a service in the house shape (docs/adding-a-service.md)"
	@echo "make generate       rewrite the files derived from the service catalogue (compose, k8s, ...)"
	@echo "make demo           scripted walk-through against a running stack (make run)"
	@echo "make trace ID=...   print one request as a waterfall tree"
	@echo "make load           Locust, headless, with failure and p95 thresholds"
	@echo "make bench          gateway vs direct, place order in relay and exchange mode, exchange cost, memory"
	@echo "make bench-revocation / bench-tracing   revocation propagation, tracing overhead"

sync:
	@$(UV) sync --frozen --all-packages --quiet

# honcho over a Procfile written from the service catalogue (relayshop_devtools/run.py;
# `.venv/bin/python -m relayshop_devtools.run --print` shows it).
run: sync
	exec $(VENV)/python -m relayshop_devtools.run

# Two pytest workers (pytest-xdist, one file per worker at a time: a module's stack and fixtures
# stay in one process), then the security suite on its own (it tallies its attack cases across
# the whole run). tools/idp's npm packages first, where npm exists: the identity-provider tests
# need them, and two workers must not install them at once.
test: sync
	$(VENV)/python tools/compose_check.py
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory idp-deps; fi
	$(VENV)/python -m pytest -n 2 --dist loadfile --ignore=tests/security
	$(VENV)/python -m pytest tests/security

compose-check: sync
	$(VENV)/python tools/compose_check.py

# A new service from tools/service_template/, wired into the catalogue, compose and Kubernetes.
# The files derived from the service catalogue (relayshop_devtools/generate): compose's service
# blocks and secrets, the Kubernetes manifests, the PostgreSQL init script, .env.example. The
# lockfile and the venv first, so a service folder added by hand is installed and read.
generate:
	$(UV) lock --quiet
	@$(UV) sync --frozen --all-packages --quiet
	$(VENV)/python -m relayshop_devtools.generate

new-service: sync
	@test -n "$(NAME)" || { echo "usage: make new-service NAME=<name>" >&2; exit 2; }
	$(VENV)/python tools/new_service.py $(NAME)

# The real thing: images built, `docker compose up --wait`, used through the gateway, then down -v.
# Needs root on Debian or Ubuntu (it installs docker.io and starts dockerd when none runs).
compose-smoke: sync
	$(VENV)/python tools/compose_smoke.py

lint: sync
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy shared/src devtools/src services/*/src

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

# Revocation propagation: logout at auth -> 401 at each service, p50/p99.
bench-revocation: sync
	$(VENV)/python tools/bench_revocation.py

# Locust headless against the running stack (or one it starts); reports in var/load.
load: sync
	$(VENV)/python tools/load.py

# One table: gateway/direct read ratio, place-order rate, token verification, memory, start.
bench: sync
	$(VENV)/python tools/bench.py

# Observability: a request as a waterfall tree, the live demo, the cost of tracing.
trace: sync
	@$(VENV)/python tools/trace.py $(ID)

demo: sync
	$(VENV)/python tools/demo.py

bench-tracing: sync
	$(VENV)/python tools/bench_tracing.py

# The OpenID Provider of tools/idp (npm oidc-provider, pinned by its package-lock.json) that the
# tests of tests/idp run as a real identity provider. Needs Node.js and npm.
.PHONY: idp-deps
idp-deps: tools/idp/node_modules/.package-lock.json

# npm writes this file on every install: reinstall only when the lockfile is newer.
tools/idp/node_modules/.package-lock.json: tools/idp/package-lock.json
	cd tools/idp && npm ci --no-audit --no-fund

# `make run` with that provider beside it (port RELAYSHOP_IDP_PORT, default 9090), already trusted
# by the gateway and auth: its users shop through the gateway (docs/identity-providers.md).
.PHONY: run-idp
run-idp: sync
	exec $(VENV)/python -m relayshop_devtools.run --idp

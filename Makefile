# Gatekeeper: `make up` runs the whole system, `make test` runs the tests.
# Both install what they need on first use (see scripts/bootstrap.sh).

PYTHON := .venv/bin/python
STACK := $(PYTHON) -m scripts.stack
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help bootstrap up down status logs test register-schemas lint format clean \
	lint-contracts check-compat check-compat-online contracts-doc bench bench-gateway \
	bench-worker replay

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-20s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

bootstrap: ## install system packages, .venv and the servers' jars when missing
	@scripts/bootstrap.sh

up: bootstrap ## start PostgreSQL, Kafka, the registry, gateway and worker
	@$(STACK) up

down: ## stop everything `make up` started (data stays in .stack)
	@if [ -x $(PYTHON) ]; then $(STACK) down; fi

status: ## show what runs where
	@$(STACK) status

logs: ## follow the logs of every service
	@tail -n 20 -F .stack/logs/*.log

test: ## run every test against servers started on free ports
	@scripts/bootstrap.sh --test
	@scripts/run-tests.sh $(PYTEST_ARGS)

register-schemas: bootstrap ## register every contract with the registry
	@set -a; [ -f .stack/env ] && . ./.stack/env; set +a; \
		$(PYTHON) -m scripts.register_schemas

lint-contracts: bootstrap ## check every contract file against the contract rules
	@$(PYTHON) -m scripts.lint_contracts

check-compat: bootstrap ## check changed contracts against git history (AGAINST=ref)
	@$(PYTHON) -m scripts.check_compat $(if $(AGAINST),--against $(AGAINST))

check-compat-online: bootstrap ## check every contract against the running registry
	@set -a; [ -f .stack/env ] && . ./.stack/env; set +a; \
		$(PYTHON) -m scripts.check_compat --online

contracts-doc: bootstrap ## write docs/contracts.md from the contracts
	@$(PYTHON) -m scripts.contracts_doc

bench: bench-gateway bench-worker ## every benchmark, each against its own baseline

bench-gateway: bootstrap ## gateway under gunicorn against a bare Flask endpoint
	@$(PYTHON) -m scripts.bench.bench_gateway

bench-worker: bootstrap ## worker apply methods, decoding and end to end
	@$(PYTHON) -m scripts.bench.bench_worker

replay: bootstrap ## apply rejects again after a fix, e.g. ARGS="--table orders --dry-run"
	@set -a; [ -f .stack/env ] && . ./.stack/env; set +a; \
		$(PYTHON) -m worker replay $(ARGS)

lint: bootstrap ## ruff check and format check
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .

format: bootstrap ## format the code with ruff
	@.venv/bin/ruff format .

clean: down ## stop and remove the stack's data and logs (keeps downloads)
	rm -rf .stack

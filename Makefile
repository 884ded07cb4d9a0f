# The front door: `make up` runs the platform, `make test` proves it.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
DATA_DIR ?= var

.PHONY: help install up status test test-unit lint docs format typecheck clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

install: ## system packages, uv, and the Python dependencies (from uv.lock)
	@./scripts/system-deps.sh --runtime
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv
	@$(UV) sync --frozen --quiet

up: install ## start the embedded platform (NATS + every service); Ctrl-C stops it
	@$(UV) run swctl up --data-dir $(DATA_DIR)

status: ## show what runs and whether it is ready
	@$(UV) run swctl status --data-dir $(DATA_DIR)

test: install ## lint, type-check, then every test against real servers (SQLite and PostgreSQL)
	@./scripts/system-deps.sh
	@$(MAKE) --no-print-directory lint typecheck
	@SW_TEST_POSTGRES_URL=$$(./scripts/postgres.sh) $(UV) run pytest

test-unit: install ## the fast tests only (no real servers)
	@$(UV) run pytest -m "not integration"

lint: ## ruff (lint and formatting); the AsyncAPI documents and event catalogue match the code
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .
	@$(UV) run python scripts/asyncapi.py --check

docs: ## regenerate docs/asyncapi/*.json, docs/events.md and the NATS permission files
	@$(UV) run python scripts/asyncapi.py
	@$(UV) run python deploy/nats/generate.py

format: ## apply ruff's formatting and fixes
	@$(UV) run ruff format .
	@$(UV) run ruff check --fix .

typecheck: ## mypy --strict over every package and the tests
	@$(UV) run mypy shared/contracts/src shared/runtime/src shared/cardcrypto/src services/*/src swctl/src virtual-card/src tests

clean: ## remove the embedded platform's data
	rm -rf $(DATA_DIR)

# forestops developer commands. `make help` lists them.
SHELL := /bin/bash
# No usage telemetry from anything make starts (tests, local stack, benchmarks, CI).
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install test test-unit lint typecheck lock bench demo reset down status up down-docker check preflight ps-docker logs browser wrk promtool .env

help: ## List the commands
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv with the pinned dependencies and the package

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "forestops needs Python 3.11, found " + sys.version' \
		|| { echo "Set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

test: install browser promtool ## Run the whole test suite (unit, integration, e2e) against real servers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

promtool: ## Debian's prometheus (promtool for the config test; the local stack's Prometheus), apt-get when root
	@if command -v promtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's prometheus for promtool (the Prometheus configuration test)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }; \
	else \
		echo "The Prometheus configuration test needs promtool; install it with: sudo apt-get install -y prometheus"; \
	fi

CHROMIUM := /usr/bin/chromium

browser: ## Debian's Chromium for the UI's browser test (apt-get install when missing and root)
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the UI's browser test"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }; \
	else \
		echo "The UI's browser test needs Debian's Chromium at $(CHROMIUM); install it with: sudo apt-get install -y chromium"; \
	fi

test-unit: install ## Only the fast tests that need no server
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

lint: install ## Ruff lint and format check, mypy type check of src/ and dags/
	$(BIN)/ruff check src tests dags benchmarks
	$(BIN)/ruff format --check src tests dags benchmarks
	$(BIN)/mypy

typecheck: install ## Only the type check (mypy over src/ and dags/, settings in pyproject.toml)
	$(BIN)/mypy

lock: ## Re-resolve requirements.lock from pyproject.toml (needs uv)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements.lock

bench: install wrk ## Run the benchmarks and print ratios against their anchors
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

wrk: ## Debian's wrk, the serving benchmark's load generator (apt-get install when missing and root)
	@if command -v wrk >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's wrk for the serving benchmark"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk; }; \
	else \
		echo "The serving benchmark needs wrk; install it with: sudo apt-get install -y wrk"; \
	fi

demo: install ## Start the local stack in the background (embedded storage, short demo windows); FRESH=1 resets first
	$(if $(FRESH),$(BIN)/forestops stack reset &&) $(BIN)/forestops stack up --demo

reset: install ## Remove the local stack's state (rows, registry, Airflow runs, data API progress) after asking
	$(BIN)/forestops stack reset

down: ## Stop exactly the processes `make demo` started
	@if test -x $(BIN)/forestops; then $(BIN)/forestops stack down; else echo "no .venv: nothing was started"; fi

status: ## Show each local-stack service: pid, health, URL, log
	@$(BIN)/forestops stack status

# -- Docker Compose deployment (needs only Docker; python3 is optional) ------------------
# MySQL, MinIO, MLflow and the data API answer on 127.0.0.1 only (FORESTOPS_BIND_INTERNAL in .env).
# CELERY=1 adds docker-compose.celery.yml (Celery executor; WORKERS=N airflow-worker containers).
# METRICS=1 adds docker-compose.metrics.yml (Prometheus on 127.0.0.1:9090, Grafana on :3000).
COMPOSE_FILES := -f docker-compose.yml $(if $(CELERY),-f docker-compose.celery.yml) $(if $(METRICS),-f docker-compose.metrics.yml)
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose) $(COMPOSE_FILES)
ENV_IMAGE := python:3.11.14-slim-bookworm

.env: ## (file) Created from .env.example with fresh secrets; later runs only append keys it lacks
	@if command -v python3 >/dev/null 2>&1; then \
		python3 src/forestops/deploy/envfile.py .env.example .env; \
	else \
		docker run --rm --user "$$(id -u):$$(id -g)" -v "$$PWD:/work" -w /work $(ENV_IMAGE) \
			python src/forestops/deploy/envfile.py .env.example .env; \
	fi

# Host ports the stack publishes (contract ports; see docker-compose.yml).
PUBLISHED_PORTS := 8080 8000 8501 5000 3306 9000 9001 8090 $(if $(METRICS),9090 3000)

preflight: ## Check Docker Engine, Compose >= 2.24, buildx >= 0.17, free disk and ports (make up runs it first)
	@bash docker/host/preflight.sh $(PUBLISHED_PORTS)

up: preflight .env ## Build and start the compose stack in the background (CELERY=1 WORKERS=N for Celery workers)
	@mkdir -p data
	$(COMPOSE) up -d --build $(if $(and $(CELERY),$(WORKERS)),--scale airflow-worker=$(WORKERS))
	@echo "Starting; \`make ps-docker\` shows health. Airflow http://localhost:8080  MLflow http://localhost:5000"
	@echo "UI http://localhost:8501  inference http://localhost:8000/docs  data API http://localhost:8090/docs  MinIO http://localhost:9001"

down-docker: ## Stop the compose stack (data stays in its volumes; CELERY=1 if it was started so)
	$(COMPOSE) down --remove-orphans

check: ## Verify the running compose stack end to end: one line per check, with the fix when one fails
	$(COMPOSE) run --rm --no-deps check

ps-docker: ## Compose services and their health
	$(COMPOSE) ps --all

logs: ## Follow the compose logs (SERVICE=name for one service)
	$(COMPOSE) logs --follow --tail=200 $(SERVICE)

# `make run` sets everything up and starts every process role; `make test` runs every test.
# Each step is skipped when its work is already done (stamps in .make/).
SHELL := /bin/bash
.DEFAULT_GOAL := run

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .make
# Debian packages: headers to build mysqlclient; Chromium for the browser tests.
SYSTEM_PACKAGES := libmariadb-dev pkg-config chromium fonts-liberation
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Local use and the demo: debug pages, static files from the source folders, the development
# SECRET_KEY. Production sets DEBUG off and a real SECRET_KEY (see README "Security").
export DEBUG ?= 1

.PHONY: run test setup system venv services migrate seed node lint bench clean-stamps

$(STAMPS):
	@mkdir -p $(STAMPS)

$(STAMPS)/system: | $(STAMPS)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@touch $@

$(VENV)/.installed: requirements.txt $(STAMPS)/system
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

# Front-end libraries come from npm (nothing of theirs is committed), copied into static/vendor/.
$(STAMPS)/node: package.json package-lock.json $(VENV)/.installed | $(STAMPS)
	npm install --no-audit --no-fund --loglevel=error
	$(PY) manage.py vendor_static
	@touch $@

system: $(STAMPS)/system
venv: $(VENV)/.installed
node: $(STAMPS)/node

# A local machine's .env turns DEBUG on, so `.venv/bin/python manage.py ...` works here as it does
# under make; production sets its own environment (DEBUG off, a real SECRET_KEY) and has no .env.
.env:
	@printf '# Written by make for local use; production sets DEBUG off and a real SECRET_KEY.\nDEBUG=1\n' > $@

services: venv .env
	@$(PY) -m exchange_site.services_check

migrate: services
	@$(PY) manage.py migrate --noinput -v 0

seed: migrate
	@$(PY) manage.py seed_demo

setup: seed node

# Demo deposits are confirmed at once up to these amounts per user and day (see .env.example).
run: export FUNDING_DEMO_DEPOSIT_LIMIT ?= USD=100000,BTC=10,ETH=100
# Every role under supervisord (deploy/supervisord.conf): a process that dies is started again.
run: setup
	@$(PY) manage.py collectstatic --noinput -v 0
	@echo "Starting web ($${WEB_PROCESSES:-3} daphne processes), matching shard 0 and its standby, worker, beat and demo bots on http://127.0.0.1:$${WEB_PORT:-8000} (Ctrl-C stops them all)"
	deploy/supervise

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

bench: setup
	$(PY) manage.py bench_engine
	$(PY) manage.py bench_pipeline

clean-stamps:
	rm -rf $(STAMPS)

# The seeded random stream with SIGKILLs and a Redis flush, long, checked against the reference
# model and the ledger at the end; prints its figures. SOAK_ARGS="--stream-seed 7 --stream-seconds 3600".
SOAK_ORDERS ?= 200000
.PHONY: soak
soak: setup
	$(PY) -m pytest orders/tests/test_random_stream.py -q -s --stream-orders $(SOAK_ORDERS) --stream-markets 6 --stream-users 40 $(SOAK_ARGS)

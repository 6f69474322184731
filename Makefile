# earshot: two commands for a newcomer.
#   make run    install everything, start Kafka + Elasticsearch + worker + API, replay the demo corpus
#   make test   install everything, start the services, run unit, integration and end-to-end tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv up down status reset run worker spikes api replay test test-unit test-contention test-cluster bench-pipeline bench-connectors bench-faults bench-cluster bench-scale bench-profile bench-api bench-models models eval-models eval-spikes lock clean

help:
	@sed -n '2,3p' Makefile; echo "other targets: up down status reset worker spikes api replay test-unit test-contention bench-pipeline bench-connectors bench-faults bench-scale bench-api bench-models models eval-models eval-spikes lock"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

up:
	@bash deploy/local/services.sh up

down:
	@bash deploy/local/services.sh down

status:
	@bash deploy/local/services.sh status

reset:
	@bash deploy/local/services.sh reset

run: venv
	@bash deploy/local/run.sh

worker: venv
	$(BIN)/earshot worker

spikes: venv
	$(BIN)/earshot spikes

api: venv
	$(BIN)/earshot api

replay: venv
	$(BIN)/earshot replay $(ARGS)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The short cluster drills (3 Kafka brokers + 3 ES nodes, a member killed with -9), about 5 minutes.
test-cluster: venv
	EARSHOT_TEST_CLUSTER=1 $(BIN)/python -m pytest tests/e2e/test_cluster.py $(PYTEST_ARGS)

# The end-to-end tests with every core kept busy by a CPU burner (a user's machine is not idle).
test-contention: venv
	$(BIN)/python -m pytest tests/e2e --contention $(PYTEST_ARGS)

bench-pipeline: venv
	$(BIN)/python -m bench.pipeline $(ARGS)

bench-connectors: venv
	$(BIN)/python -m bench.connectors $(ARGS)

# Fault drills (crash, ES outage, Kafka restart, poison input) on a private Kafka + ES pair
# -> bench/results/faults.json. About 10 minutes; the development services are left alone.
bench-faults: venv
	$(BIN)/python -m bench.faults $(ARGS)

# Cluster drills (broker kill -9, ES node kill -9, rolling restart, two workers and two watchers with
# one of each killed) on 3 Kafka brokers + 3 ES nodes (deploy/local/cluster.sh, ports 19191-19203)
# -> bench/results/cluster.json. About 30 minutes; ARGS=--short for a quick pass.
bench-cluster: venv
	$(BIN)/python -m bench.cluster $(ARGS)

# End-to-end mentions/s with 1 and 2 workers (one inference thread each) -> bench/results/scale.json
bench-scale: venv
	$(BIN)/python -m bench.scale $(ARGS)

# Where one single-thread worker's CPU goes, per stage (py-spy samples on a real replay), now and at
# the revision before the fused agent, and the model alone -> bench/results/worker-profile.json
bench-profile: venv
	$(BIN)/python -m bench.profile $(ARGS)

# API latency and requests/s (search, trend, reputation, share of voice) over 1,000,000 loaded mentions,
# 10 concurrent clients (locust) -> bench/results/api.json. Indices bench-api-*; reused by later runs.
bench-api: venv
	$(BIN)/python -m bench.api $(ARGS)

bench-models: venv
	$(BIN)/python -m bench.models $(ARGS)

# Retrain the shipped model from ../shared/data (fixed seed; tens of minutes on 2 cores).
# Users never need this: the trained weights ship in models/weights/.
MODEL_VARIANT ?= minilm-l6
MODEL_LAYERS ?= 6
MODEL_STEPS ?= 3000
models: venv
	$(BIN)/python -m models.train --layers $(MODEL_LAYERS) --steps $(MODEL_STEPS) --out .earshot/train/$(MODEL_VARIANT) $(ARGS)
	$(BIN)/python -m models.build --variant $(MODEL_VARIANT)

eval-models: venv
	$(BIN)/python -m models.evaluate $(ARGS)

# The spike detector (earshot detect) on NAB's labelled tweet-volume series -> bench/results/spikes.json
eval-spikes: venv
	$(BIN)/python -m bench.spikes $(ARGS)

lock: venv
	{ sed -n '1,2p' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | sort -f; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache

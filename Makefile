# rewardgate — see README.md. `make run` and `make test` install what they need themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
STAGE ?= prod

.PHONY: run test lint deps java dynamodb-local bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e . || $(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# DynamoDB Local needs Java 17+; install a headless runtime with apt-get when none is present.
java:
	@if ! java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then \
	  echo "Installing a Java 17 runtime for DynamoDB Local (apt-get)..."; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; \
	fi

dynamodb-local: $(STAMP) java
	@$(BIN)/python -c "from rewardgate_ops.services import ensure_dynamodb_local as e; print('DynamoDB Local:', e())"

deps: $(STAMP) java dynamodb-local

## The main job on the embedded local stack: DynamoDB Local, moto, chalice local, workers, schedules.
run: deps
	$(BIN)/rewardgate local up

## The whole suite (lint, unit, functional, integration) on its own DynamoDB Local and moto server.
test: deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache

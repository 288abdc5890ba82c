# rewardgate — see README.md. `make run` and `make test` install what they need themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
STAGE ?= prod

.PHONY: run test check lint deps system dynamodb-local redoc bench bench-runs bench-report clean package iac-check deploy openapi soak docs

# Deploy packaging and IaC checks (docs/how-to/deploy.md). checkov has a heavy, conflicting
# dependency tree, so it lives in its own venv; cfn-lint and the SAM translator are in requirements-dev.txt.
PACKAGE_DIR := build/package
IAC_VENV := .venv-iac
CHECKOV_VERSION := 3.3.30
IAC_STAMP := $(IAC_VENV)/.installed-checkov-$(CHECKOV_VERSION)
STACK ?= rewardgate-$(STAGE)
ALARM_EMAIL ?=

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e . || $(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# What a fresh Debian/Ubuntu machine may lack: venv for Python, npm to fetch DynamoDB Local (and the API
# reference's Redoc bundle), a Java 17+ runtime to run it, and chromium with its driver for the headless-browser
# test of the API reference page. Installed with apt-get only when missing.
system:
	@need=""; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || need="$$need python3-venv"; \
	command -v npm >/dev/null || need="$$need nodejs npm"; \
	java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])' || need="$$need openjdk-17-jre-headless"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	command -v chromedriver >/dev/null || need="$$need chromium-driver"; \
	if [ -n "$$need" ]; then \
	  echo "Installing with apt-get:$$need"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$need; \
	fi

dynamodb-local: $(STAMP) system
	@$(BIN)/python -c "from rewardgate_ops.services import ensure_dynamodb_local as e; print('DynamoDB Local:', e())"

## The API reference page's Redoc bundle (npm package redoc) in chalicelib/vendor/ (git-ignored), served at /docs.
redoc: $(STAMP)
	@$(BIN)/python -m rewardgate_ops.vendor

deps: $(STAMP) system dynamodb-local redoc

## The main job on the embedded local stack: DynamoDB Local, moto, chalice local, workers, schedules.
run: deps
	$(BIN)/rewardgate local up

## The whole suite (lint, import contracts, IaC checks, unit, functional, integration) on its own DynamoDB Local
## and moto server, Hypothesis on its `ci` profile (tests/hypothesis_profiles.py); prints the 25 slowest steps.
test: deps iac-check
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict  # not --quiet: it hides the warnings --strict counts
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest --durations=25

## The documentation site (docs/, mkdocs.yml) on http://127.0.0.1:8001; `make test` builds it with --strict.
## The local stack's DynamoDB Local also defaults to 8001: beside `make run`, use DOCS_ADDR=127.0.0.1:8004.
DOCS_ADDR ?= 127.0.0.1:8001
docs: $(STAMP)
	$(BIN)/mkdocs serve -a $(DOCS_ADDR)

## The inner loop: lint, import contracts, unit tests and the fast functional tier (tests not marked `slow`),
## Hypothesis on its `dev` profile. CHECK_WORKERS=2 spreads the files over two pytest-xdist processes (each starts its
## own DynamoDB Local and moto server, so they share no table or queue); 0, the default, runs in this process: on
## this shared 2-core machine two workers were not faster and their DynamoDB Local timed out more often.
CHECK_WORKERS ?= 0
check: deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	HYPOTHESIS_PROFILE=dev $(BIN)/python -m pytest -n $(CHECK_WORKERS) --dist loadfile -m "not slow" --durations=10 \
	  tests/unit tests/functional

## Every Hypothesis property on its `thorough` profile, then the money-path simulation for minutes
## (docs/development/simulation.md): seeds SEED, SEED+1, ... of STEPS steps each, at least SEEDS of them, and new
## ones until MINUTES have passed. A failing seed prints its replay command.
SEED ?= 1
SEEDS ?= 4
STEPS ?= 400
MINUTES ?=
soak: deps
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -m hypothesis --durations=10
	$(BIN)/python -m tests.simulation --seed $(SEED) --seeds $(SEEDS) --steps $(STEPS) $(if $(MINUTES),--minutes $(MINUTES))

## Small benchmark runs with --json into bench/runs/ (docs/development/benchmarks.md#charts; ~15 min on 2 cores).
bench-runs: deps
	for b in 1 5 25 50; do $(BIN)/python bench/play.py --threads 2 --events 100 --danmaku 20 --batch $$b \
	  --json bench/runs/play-batch-$$b.json || exit 1; done
	for t in 1 4; do $(BIN)/python bench/play.py --threads $$t --events 100 --danmaku 20 --batch 25 \
	  --json bench/runs/play-threads-$$t.json || exit 1; done
	$(BIN)/python bench/rain.py --users 100 --rounds 2 --json bench/runs/rain.json
	$(BIN)/python bench/callbacks.py --n 500 --warmup 100 --json bench/runs/callbacks.json
	$(BIN)/python bench/live.py --connections 1 10 --events 100 --json bench/runs/live.json

## The charts of docs/development/benchmarks.md (PNG, matplotlib) from the runs in bench/runs/.
bench-report: $(STAMP)
	$(BIN)/python bench/report.py --runs bench/runs --out docs/development/img

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## docs/openapi.json (HTTP API) and docs/asyncapi.json (live push), generated from the code (tests fail when stale).
openapi: $(STAMP)
	$(BIN)/python -m chalicelib.edge

## build/package/sam.json + deployment.zip for STAGE (default prod), checked (python -m infra.package).
package: $(STAMP)
	$(BIN)/python -m infra.package build --stage $(STAGE) --out $(PACKAGE_DIR)

$(IAC_STAMP): | system
	$(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/pip install --quiet --upgrade pip
	$(IAC_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(IAC_STAMP)

## cfn-lint and checkov on the packaged template and on its SAM expansion; every finding fixed or
## justified inline (Metadata.checkov in the template, written by infra/template.py).
iac-check: package $(IAC_STAMP)
	rm -f $(PACKAGE_DIR)/cfn-lint.passed
	$(BIN)/cfn-lint $(PACKAGE_DIR)/sam.json $(PACKAGE_DIR)/transformed.json
	@# the deploy tests read this package and do not lint these exact bytes again (tests/deploy_support.py)
	sha256sum $(PACKAGE_DIR)/sam.json $(PACKAGE_DIR)/transformed.json > $(PACKAGE_DIR)/cfn-lint.passed
	$(IAC_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	  -f $(PACKAGE_DIR)/sam.json -f $(PACKAGE_DIR)/transformed.json

## Deploy STAGE to the AWS account of the current credentials (not run in CI):
##   make deploy STAGE=prod BUCKET=<s3 bucket for code> [ALARM_EMAIL=ops@example.com]
deploy: package
	@test -n "$(BUCKET)" || { echo "BUCKET=<an S3 bucket in the target region for the code> is required"; exit 2; }
	aws cloudformation package --template-file $(PACKAGE_DIR)/sam.json --s3-bucket $(BUCKET) \
	  --s3-prefix rewardgate/$(STAGE) --output-template-file $(PACKAGE_DIR)/packaged-$(STAGE).yaml
	aws cloudformation deploy --template-file $(PACKAGE_DIR)/packaged-$(STAGE).yaml --stack-name $(STACK) \
	  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
	  --parameter-overrides AlarmEmail=$(ALARM_EMAIL)
	aws cloudformation describe-stacks --stack-name $(STACK) --query 'Stacks[0].Outputs' --output table

clean:
	rm -rf $(VENV) $(IAC_VENV) build .pytest_cache .ruff_cache

# taskrunner - serverless asynchronous task API.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
PORT ?= 8000
STAGE ?= dev
ENDPOINT ?= http://127.0.0.1:4566
# the functions' architecture: the template's Architecture parameter and the wheels built for it
ARCH ?= arm64

.DEFAULT_GOAL := help
.PHONY: help install browser run test keys test-unit test-integration test-e2e lint format typecheck validate build build-local bench deploy deploy-localstack deploy-local stop-local smoke clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(BIN)/.installed: functions/requirements.txt functions/requirements/*.txt requirements-dev.txt constraints.txt cli/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -r functions/requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ./cli
	@touch $@

install: $(BIN)/.installed ## Create .venv and install the pinned dependencies

run: install ## Start the whole stack locally on http://127.0.0.1:8000 (ARGS="--set KEY=VALUE ..." for more)
	$(BIN)/python -m infra.local --port $(PORT) $(ARGS)

browser: ## Install Debian's headless Chromium for the browser test, if missing
	@bash infra/tools/ensure-browser.sh

test: install browser ## Run the whole test suite (unit, integration, end-to-end)
	$(BIN)/python -m pytest

test-unit: install ## Unit tests only (no network)
	$(BIN)/python -m pytest tests/unit

test-integration: install ## Integration tests (moto)
	$(BIN)/python -m pytest tests/integration

test-e2e: install browser ## End-to-end tests against the local runner
	$(BIN)/python -m pytest tests/e2e

lint: install ## ruff lint and format check
	$(BIN)/ruff check functions cli infra tests bench examples
	$(BIN)/ruff format --check functions cli infra tests bench examples

format: install ## Format the code
	$(BIN)/ruff format functions cli infra tests bench examples
	$(BIN)/ruff check --fix functions cli infra tests bench examples

typecheck: install ## mypy --strict on functions/, cli/, infra/, bench/ and examples/
	$(BIN)/mypy

validate: install ## cfn-lint template.yaml
	$(BIN)/cfn-lint template.yaml

$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==1.170.0

# $(call SAM_BUILD,architecture[,build dir]): the template's parameter and functions/Makefile's wheels agree
SAM_BUILD = PATH="$$(pyenv root 2>/dev/null)/versions/3.13.0/bin:$$PATH" PYENV_VERSION=3.13.0 ARCHITECTURE=$(1) \
	$(SAM_VENV)/bin/sam build --parallel --cached --parameter-overrides Architecture=$(1) \
	$(if $(2),--build-dir $(2)/build --cache-dir $(2)/cache)

build: validate $(SAM_VENV)/bin/sam ## sam build: deployable artifacts in .aws-sam/ (offline; needs python3.13 on PATH; ARCH=arm64|x86_64)
	$(call SAM_BUILD,$(ARCH))

# ---- the real template deployed into a local emulator (MiniStack; README "Deploying into a local emulator")
MINISTACK_VENV := .venv-ministack
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
PYTHON313 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13) $(shell command -v python3.13))
LOCAL_STATE ?= .local/ministack
# ENDPOINT=... on the command line deploys there instead of a MiniStack started here
LOCAL_TARGET = $(if $(filter command line environment,$(origin ENDPOINT)),--endpoint $(ENDPOINT),$(if $(MINISTACK_PORT),--port $(MINISTACK_PORT)))

$(MINISTACK_VENV)/.installed: infra/ministack/requirements.txt
	@test -n "$(PYTHON313)" || { echo "MiniStack runs the python3.13 functions in its own interpreter: install python3.13" >&2; exit 2; }
	@test -x $(MINISTACK_VENV)/bin/python || $(PYTHON313) -m venv $(MINISTACK_VENV)
	$(MINISTACK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/ministack/requirements.txt
	@touch $@

# sam build --cached reruns every makefile build (SAM caches python functions by their manifest,
# which a makefile build has not): make rebuilds only when the template or functions/ changed.
LOCAL_BUILD := .aws-sam/local/build/template.yaml
FUNCTION_SOURCES := $(shell find functions -type f -not -path '*/__pycache__/*' -not -name '*.pyc')
$(LOCAL_BUILD): template.yaml $(FUNCTION_SOURCES) | $(SAM_VENV)/bin/sam
	$(call SAM_BUILD,$(HOST_ARCH),.aws-sam/local)
	@touch $@

build-local: $(LOCAL_BUILD) ## sam build for this machine's architecture into .aws-sam/local (for deploy-local)

deploy-local: install build-local $(MINISTACK_VENV)/.installed ## Deploy template.yaml into MiniStack on 127.0.0.1 (or ENDPOINT=...), check it, write .local/ministack/outputs.json
	$(BIN)/python -m infra.ministack --state-dir $(LOCAL_STATE) deploy --arch $(HOST_ARCH) $(LOCAL_TARGET) $(ARGS)

stop-local: ## Stop the MiniStack that deploy-local started
	@test ! -x $(BIN)/python || $(BIN)/python -m infra.ministack --state-dir $(LOCAL_STATE) stop

keys: install ## Manage API keys: make keys ARGS="create --owner alice" (list, revoke ID, secret --owner X)
	$(BIN)/python -m infra.keys $(ARGS)

bench: install ## Benchmarks of DESIGN.md's budgets; writes bench-results.json
	$(BIN)/python -m bench

deploy: build ## sam deploy to AWS: STAGE=dev (default) or STAGE=prod, samconfig.toml's [dev] or [prod]
	@grep -q '^\[$(STAGE)\.deploy\.parameters\]' samconfig.toml || { echo "no [$(STAGE)] environment in samconfig.toml" >&2; exit 2; }
	@test "$(ARCH)" = arm64 || { echo "make deploy ships arm64 (the template's Architecture default); ARCH=$(ARCH) is for deploy-local" >&2; exit 2; }
	$(SAM_VENV)/bin/sam deploy --config-env $(STAGE)

deploy-localstack: build ## sam deploy to LocalStack only (ENDPOINT=http://127.0.0.1:4566; samconfig.toml [localstack])
	env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ENDPOINT_URL=$(ENDPOINT) AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
	  $(SAM_VENV)/bin/sam deploy --config-env localstack

# URL, KEY and CALLBACK of `make smoke`; without URL, the local stack (make run) and its development key.
# URL is taken as given (an emulator's API URL may hold a '$', e.g. .../$default).
LOCAL_KEY := tr_dev00000_local-development-key
smoke: install ## Smoke-test a deployed stack: make smoke URL=<ApiUrl> KEY=tr_... [CALLBACK=<url>] (no URL: the local stack)
	@TASKRUNNER_API_KEY="$(or $(KEY),$(if $(URL),,$(LOCAL_KEY)))" $(BIN)/python -m infra.smoke \
	  --url '$(or $(value URL),http://127.0.0.1:$(PORT))' $(if $(CALLBACK),--callback '$(value CALLBACK)') $(ARGS)

clean: ## Remove build outputs and caches (keeps .venv)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .local bench-results.json

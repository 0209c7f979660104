# litellm-salt: the two commands are `make demo` and `make test`.
# Both do their own set-up (Debian packages, .venv, the local systemd host).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
VERSION ?= 1.108.7

.PHONY: bootstrap demo demo-down test test-unit lock clean-state

bootstrap:
	@bash scripts/bootstrap.sh

## demo: build a local systemd host (systemd-nspawn), start two stand-in Ollama
## servers, deploy the formula with salt-ssh, and print the gateway URL.
demo: bootstrap
	$(PY) scripts/demo.py up

demo-down: bootstrap
	$(PY) scripts/demo.py down

## test: every test layer (unit, functional, integration on a real systemd host).
test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: bootstrap
	$(PY) -m pytest tests/unit tests/functional $(PYTEST_ARGS)

## lock: regenerate the hashed lock of a LiteLLM version (make lock VERSION=x.y.z)
lock: bootstrap
	bash scripts/lock.sh $(VERSION)

clean-state:
	rm -rf .state

# litellm-salt: the two commands are `make demo` and `make test`.
# Both do their own set-up (Debian packages, .venv, the local systemd host).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
VERSION ?= 1.108.7

.PHONY: bootstrap demo demo-down lint test test-unit bench lock lock-dev clean-state

bootstrap:
	@bash scripts/bootstrap.sh

## demo: build a local systemd host (systemd-nspawn), start two stand-in Ollama
## servers, deploy the formula with salt-ssh, and print the gateway URL.
## On a fresh machine the host's rootfs is built while bootstrap builds .venv.
demo:
	@BOOTSTRAP_ROOTFS=1 bash scripts/bootstrap.sh
	$(PY) scripts/demo.py up

demo-down: bootstrap
	$(PY) scripts/demo.py down

## lint: ruff, salt-lint on every SLS, yamllint on pillar and parameters.
lint: bootstrap
	@bash scripts/lint.sh

## test: lint first (fails fast), then every test layer (unit, functional,
## integration on a real systemd host), on two pytest-xdist workers: one test
## module a worker at a time (--dist loadfile), the slowest first (tests/conftest.py).
## TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: lint
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-unit: lint
	$(PY) -m pytest $(XDIST) tests/unit tests/functional $(PYTEST_ARGS)

## bench: benchmarks on local systemd hosts (baseline and formula side by side,
## tables with ratios and goals): cold deploy, no-op re-apply, gateway under load,
## HTTPS and metrics against plain http (edge), bursts beyond capacity (overload),
## changes under a client load (reload).
## Each script builds and stops its own host; all run even when one misses a goal.
bench: bootstrap
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	@rc=0; for b in deploy noop gateway edge overload reload; do $(PY) bench/$$b.py || rc=1; done; exit $$rc

## lock: regenerate the hashed lock of a LiteLLM version (make lock VERSION=x.y.z)
lock: bootstrap
	bash scripts/lock.sh $(VERSION)

## lock-dev: regenerate requirements-dev.txt from requirements-dev.in
lock-dev: bootstrap
	$(VENV)/bin/uv pip compile --python-version 3.11 --override requirements-dev.overrides.txt requirements-dev.in -o requirements-dev.txt

clean-state:
	rm -rf .state

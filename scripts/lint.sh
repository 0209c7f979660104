#!/usr/bin/env bash
# Lint, run by `make test` (and so by .ci/run) before any test, failing fast:
# ruff on every Python file (Salt's loader dunders declared as builtins in
# pyproject.toml), salt-lint on every SLS, yamllint on pillar and parameters.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
mapfile -t sls < <(git ls-files --cached --others --exclude-standard '*.sls')
"$BIN/ruff" check --quiet .
"$BIN/salt-lint" "${sls[@]}"
"$BIN/yamllint" --strict pillar salt/litellm/parameters pillar.example
echo "lint: ruff, salt-lint (${#sls[@]} SLS files) and yamllint are clean"

# -*- coding: utf-8 -*-
# vim: ft=sls
# Bare host to a running, verified LiteLLM proxy. Order matters: pillar is
# validated, a takeover refused and what the run creates recorded as the
# formula's, and the host checked (read-only) before anything changes; the
# run ends with the smoke test of the deployed gateway.
include:
  - .validate
  - .owner
  - .preflight
  - .package
  - .config
  - .service
  - .metrics
  - .smoke

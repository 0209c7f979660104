# -*- coding: utf-8 -*-
# vim: ft=sls
# Bare host to a running, verified LiteLLM proxy. Order matters: pillar is
# validated and the host checked (read-only) before anything changes; the run
# ends with the smoke test of the deployed gateway.
include:
  - .validate
  - .preflight
  - .package
  - .config
  - .service
  - .smoke

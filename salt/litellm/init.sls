# -*- coding: utf-8 -*-
# vim: ft=sls
# Bare host to a running, verified LiteLLM proxy. Order matters: pillar is
# validated before anything on the host changes.
include:
  - .validate
  - .package
  - .config
  - .service

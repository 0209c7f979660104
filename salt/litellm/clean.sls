# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes everything the formula added, in reverse order. Debian's
# python3-venv stays: other software may use it.
include:
  - .service.clean
  - .config.clean
  - .package.clean

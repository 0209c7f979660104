# -*- coding: utf-8 -*-
# vim: ft=sls
# Removes what the formula created, in reverse order: exactly what its record
# on the host lists (/var/lib/litellm-salt/owned.json), whatever pillar says
# now; a host without a record changes nothing. Bad pillar stops it first, as
# it stops a deploy. Debian's python3-venv stays: other software may use it.
include:
  - .validate
  - .service.clean
  - .config.clean
  - .package.clean
  - .owner.clean

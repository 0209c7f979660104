# -*- coding: utf-8 -*-
# vim: ft=sls
{#- What the formula's record lists for the package job: the venv symlink and
    its releases, systemd's state and cache directories of the service, the
    installer cache, the site CAs it installed (then update-ca-certificates),
    the service user and group. #}
{%- set tplroot = tpldir.split('/')[0] %}

include:
  - {{ tplroot }}.config.clean

litellm-package-clean-owned-removed:
  litellm_owner.removed:
    - name: litellm
    - jobs: [package]
    - require:
      - sls: {{ tplroot }}.config.clean

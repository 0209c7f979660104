# -*- coding: utf-8 -*-
# vim: ft=sls
{#- The config directory the formula's record lists (config.yaml, litellm.env). #}
{%- set tplroot = tpldir.split('/')[0] %}

include:
  - {{ tplroot }}.service.clean

litellm-config-clean-owned-removed:
  litellm_owner.removed:
    - name: litellm
    - jobs: [config]
    - require:
      - sls: {{ tplroot }}.service.clean

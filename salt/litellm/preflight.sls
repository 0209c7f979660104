# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Go/no-go before any change: read-only checks of the host (DNS, backends
    and their models, bind port, runtime, resources, trust, package index,
    systemd). A failed check stops the whole run (failhard). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}

include:
  - {{ tplroot }}.validate

{%- if litellm.preflight.enabled %}
litellm-preflight-go:
  litellm_preflight.go:
    - name: litellm
    - settings: {{ litellm | json }}
    - evidence_dir: {{ litellm.preflight.evidence_dir or None | json }}
    - order: 3
    - failhard: True
    - require:
      - sls: {{ tplroot }}.validate
{%- endif %}

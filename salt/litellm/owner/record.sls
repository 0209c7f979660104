# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Gate: before anything is created, refuse a takeover (a path, unit, user or
    group that exists on the host and is not in the formula's record), naming
    the pillar key (read-only, before the preflight); after the preflight,
    record what this run will create. litellm.clean removes only what the
    record lists. failhard: nothing changes on a refusal. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{#- What the formula creates needs no secret: none goes into these states. #}
{%- set public = litellm.copy() %}
{%- for secret in ['master_key', 'keys', 'redis'] %}
{%-   do public.pop(secret, None) %}
{%- endfor %}
{%- set public_tls = (litellm.get('tls') or {}).copy() %}
{%- do public_tls.pop('key', None) %}
{%- do public.update({'tls': public_tls}) %}

include:
  - {{ tplroot }}.validate

litellm-owner-record-checked:
  litellm_owner.checked:
    - name: litellm
    - settings: {{ public | json }}
    - order: 2
    - failhard: True
    - require:
      - sls: {{ tplroot }}.validate

litellm-owner-record-claimed:
  litellm_owner.claimed:
    - name: litellm
    - settings: {{ public | json }}
    - order: 4
    - failhard: True
    - require:
      - litellm_owner: litellm-owner-record-checked

# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Gate: bad pillar stops the whole run (failhard) before any other state. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm, pillar_is_mapping with context %}

litellm-validate-pillar-validated:
  litellm_config.validated:
    - name: litellm
    - settings: {{ litellm | json }}
    - pillar_is_mapping: {{ pillar_is_mapping | json }}
    - lock_source: salt://{{ tplroot }}/files/locks/litellm-{{ litellm.version }}.txt
    - compile_list_source: salt://{{ tplroot }}/files/locks/litellm-{{ litellm.version }}.compile.txt
    - order: 1
    - failhard: True

# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Last step of litellm.clean: what the record lists for no other job (the
    formula's known-good releases and evidence), then the record itself and
    the directories made on the way to the formula's paths, when empty. #}
{%- set tplroot = tpldir.split('/')[0] %}

include:
  - {{ tplroot }}.package.clean

litellm-owner-clean-record-removed:
  litellm_owner.removed:
    - name: litellm
    - jobs: [owner]
    - require:
      - sls: {{ tplroot }}.package.clean

# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}

include:
  - {{ tplroot }}.service.clean

litellm-config-clean-directory-absent:
  file.absent:
    - name: {{ litellm.config_dir }}
    - require:
      - sls: {{ tplroot }}.service.clean

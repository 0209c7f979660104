# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}

include:
  - {{ tplroot }}.config.clean

{#- The venv, its lock, and what systemd made for the service. #}
{%- for path in [litellm.venv,
                 '/var/lib/' ~ svc.name, '/var/cache/' ~ svc.name,
                 '/var/lib/private/' ~ svc.name, '/var/cache/private/' ~ svc.name] %}
litellm-package-clean-{{ path }}-absent:
  file.absent:
    - name: {{ path }}
    - require:
      - sls: {{ tplroot }}.config.clean
{%- endfor %}

litellm-package-clean-user-absent:
  user.absent:
    - name: {{ svc.user }}
    - require:
      - sls: {{ tplroot }}.config.clean

litellm-package-clean-group-absent:
  group.absent:
    - name: {{ svc.group }}
    - require:
      - user: litellm-package-clean-user-absent

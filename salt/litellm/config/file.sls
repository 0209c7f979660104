# -*- coding: utf-8 -*-
# vim: ft=sls
{#- /etc/litellm/config.yaml (no secret: the key is read from the environment)
    and /etc/litellm/litellm.env (the secret; never diffed). The config is
    checked by the installed LiteLLM before it replaces the live one. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}
{#- The config template never needs the secret. #}
{%- set public = litellm.copy() %}
{%- do public.pop('master_key', None) %}
{%- set public_redis = (litellm.get('redis') or {}).copy() %}
{%- do public_redis.pop('password', None) %}
{%- do public.update({'redis': public_redis}) %}

include:
  - {{ tplroot }}.package

litellm-config-file-directory:
  file.directory:
    - name: {{ litellm.config_dir }}
    - user: root
    - group: {{ svc.group }}
    - mode: '0750'
    - require:
      - sls: {{ tplroot }}.package

litellm-config-file-check-script-managed:
  file.managed:
    - name: {{ litellm.venv }}/bin/litellm-check-config
    - source: salt://{{ tplroot }}/files/check-config.sh
    - user: root
    - group: root
    - mode: '0755'
    - require:
      - sls: {{ tplroot }}.package

litellm-config-file-config-managed:
  file.managed:
    - name: {{ litellm.config_dir }}/config.yaml
    - source: salt://{{ tplroot }}/files/config.yaml.jinja
    - template: jinja
    - context:
        litellm: {{ public | json }}
    - user: root
    - group: {{ svc.group }}
    - mode: '0640'
    # A config LiteLLM rejects never replaces the live one.
    - check_cmd: {{ litellm.venv }}/bin/litellm-check-config
    - tmp_ext: .yaml
    - require:
      - file: litellm-config-file-directory
      - file: litellm-config-file-check-script-managed

litellm-config-file-env-managed:
  file.managed:
    - name: {{ litellm.config_dir }}/litellm.env
    - source: salt://{{ tplroot }}/files/litellm.env.jinja
    - template: jinja
    - context:
        litellm: {{ litellm | json }}
    - user: root
    - group: {{ svc.group }}
    - mode: '0640'
    # Holds the master key: never print a diff of it.
    - show_changes: False
    - require:
      - file: litellm-config-file-directory

# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Unit file, daemon-reload only when it changed, the service enabled and
    running (restarted only when config, env, unit or venv changed), and the
    run succeeds only once /health/readiness answers. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}
{%- set unit_path = litellm.lookup.systemd_unit_dir ~ '/' ~ svc.name ~ '.service' %}
{%- set public = litellm.copy() %}
{%- do public.pop('master_key', None) %}
{%- set public_redis = (litellm.get('redis') or {}).copy() %}
{%- do public_redis.pop('password', None) %}
{%- do public.update({'redis': public_redis}) %}
{%- set public_tls = (litellm.get('tls') or {}).copy() %}
{%- do public_tls.pop('key', None) %}
{%- do public.update({'tls': public_tls}) %}
{%- do public.pop('keys', None) %}

include:
  - {{ tplroot }}.package
  - {{ tplroot }}.config

litellm-service-running-unit-file-managed:
  file.managed:
    - name: {{ unit_path }}
    - source: salt://{{ tplroot }}/files/litellm.service.jinja
    - template: jinja
    - context:
        litellm: {{ public | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - sls: {{ tplroot }}.package

litellm-service-running-daemon-reload:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: litellm-service-running-unit-file-managed

litellm-service-running-service-running:
  service.running:
    - name: {{ svc.name }}
    - enable: True
    - require:
      - module: litellm-service-running-daemon-reload
    - watch:
      - file: litellm-service-running-unit-file-managed
      - litellm_venv: litellm-package-install-venv-installed
      # Not the whole config SLS: a change of the client key table
      # (litellm-config-file-keys-managed) restarts nothing, the hook re-reads it.
      - file: litellm-config-file-config-managed
      - file: litellm-config-file-env-managed
      - file: litellm-config-file-auth-hook-managed
{%- if litellm.tls.enabled %}
      # a renewed certificate or key is a change like any other: one restart
      - file: litellm-config-file-tls-certificate-managed
      - file: litellm-config-file-tls-key-managed
{%- endif %}

litellm-service-running-ready:
  litellm_service.ready:
    - name: {{ svc.name }}
    - host: {{ litellm.bind_host | json }}
    - port: {{ litellm.bind_port | json }}
    - timeout: {{ svc.ready_timeout }}
    - require:
      - service: litellm-service-running-service-running

{#- A failed config check, restart or readiness wait after a change: go back
    to the last known-good config, env and venv (the run still fails). #}
{%- if litellm.rollback.enabled %}
litellm-service-running-rolled-back:
  litellm_release.rolled_back:
    - name: {{ svc.name }}
    - config_dir: {{ litellm.config_dir | json }}
    - venv: {{ litellm.venv | json }}
    - group: {{ svc.group | json }}
    - host: {{ litellm.bind_host | json }}
    - port: {{ litellm.bind_port | json }}
    - ready_timeout: {{ svc.ready_timeout }}
    - onfail:
      - file: litellm-config-file-config-managed
      - file: litellm-config-file-env-managed
      - service: litellm-service-running-service-running
      - litellm_service: litellm-service-running-ready
{%- endif %}

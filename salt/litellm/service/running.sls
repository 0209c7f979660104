# -*- coding: utf-8 -*-
# vim: ft=sls
{#- The launcher, the socket and service units (daemon-reload only when one
    changed), both enabled and running, and a change put live along the
    cheapest safe path (litellm_service.running): a reload (rolling workers)
    when only the config, env or hook changed, a restart behind the held
    socket when the venv or the service unit changed, a relisten when the
    socket unit changed. The run succeeds only once /health/readiness answers. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}
{%- set unit_path = litellm.lookup.systemd_unit_dir ~ '/' ~ svc.name ~ '.service' %}
{%- set socket_path = litellm.lookup.systemd_unit_dir ~ '/' ~ svc.name ~ '.socket' %}
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

litellm-service-running-launcher-managed:
  file.managed:
    - name: {{ litellm.config_dir }}/litellm_gateway.py
    - source: salt://{{ tplroot }}/files/litellm_gateway.py
    - user: root
    - group: {{ svc.group }}
    - mode: '0640'
    - require:
      - file: litellm-config-file-directory

litellm-service-running-socket-file-managed:
  file.managed:
    - name: {{ socket_path }}
    - source: salt://{{ tplroot }}/files/litellm.socket.jinja
    - template: jinja
    - context:
        litellm: {{ public | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - sls: {{ tplroot }}.package

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
      - file: litellm-service-running-socket-file-managed

litellm-service-running-service-running:
  litellm_service.running:
    - name: {{ svc.name }}
    - workers: {{ svc.workers }}
    - host: {{ litellm.bind_host | json }}
    - port: {{ litellm.bind_port | json }}
    - timeout: {{ svc.ready_timeout }}
    # a restart first lets in-flight requests finish (TimeoutStopSec)
    - drain: {{ salt['litellm_service.drain_seconds'](public) | json }}
{%- if litellm.tls.enabled %}
    # litellm:tls: readiness over https, the certificate verified for the base_url host
    - url: {{ litellm.base_url | json }}
{%- endif %}
    # What puts a change live (not a watch: salt-ssh compiles requisites on
    # the controller, without custom mod_watch). Not the client key table
    # (litellm-config-file-keys-managed): the hook re-reads it.
    - watched:
      - litellm-service-running-socket-file-managed
      - litellm-service-running-unit-file-managed
      - litellm-service-running-launcher-managed
      - litellm-package-install-venv-installed
      - litellm-config-file-config-managed
      - litellm-config-file-env-managed
      - litellm-config-file-auth-hook-managed
{%- if litellm.tls.enabled %}
      # a renewed certificate or key: a rolling reload, like any other change
      - litellm-config-file-tls-certificate-managed
      - litellm-config-file-tls-key-managed
{%- endif %}
    # A new supervisor (behind the held socket) for a new venv, unit or
    # launcher; a new listener for a new socket unit; else a rolling reload.
    - restart_on:
      - litellm-service-running-unit-file-managed
      - litellm-package-install-venv-installed
      - litellm-service-running-launcher-managed
    - relisten_on:
      - litellm-service-running-socket-file-managed
    - require:
      - module: litellm-service-running-daemon-reload
      - file: litellm-service-running-socket-file-managed
      - file: litellm-service-running-unit-file-managed
      - file: litellm-service-running-launcher-managed
      - litellm_venv: litellm-package-install-venv-installed
      - file: litellm-config-file-config-managed
      - file: litellm-config-file-env-managed
      - file: litellm-config-file-auth-hook-managed
{%- if litellm.tls.enabled %}
      - file: litellm-config-file-tls-certificate-managed
      - file: litellm-config-file-tls-key-managed
{%- endif %}

litellm-service-running-ready:
  litellm_service.ready:
    - name: {{ svc.name }}
    - host: {{ litellm.bind_host | json }}
    - port: {{ litellm.bind_port | json }}
    - timeout: {{ svc.ready_timeout }}
{%- if litellm.tls.enabled %}
    - url: {{ litellm.base_url | json }}
{%- endif %}
    - require:
      - litellm_service: litellm-service-running-service-running

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
{%- if litellm.tls.enabled %}
    # readiness after the rollback over https, like the running state's
    - url: {{ litellm.base_url | json }}
{%- endif %}
    - onfail:
      - file: litellm-config-file-config-managed
      - file: litellm-config-file-env-managed
      - litellm_service: litellm-service-running-service-running
      - litellm_service: litellm-service-running-ready
{%- endif %}

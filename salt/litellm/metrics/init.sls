# -*- coding: utf-8 -*-
# vim: ft=sls
{#- litellm:metrics: the scrape endpoint as a unit of its own
    (<service name>-metrics), started after the service and restarted with
    it; without metrics, nothing (clean removes a unit the record lists). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}
{%- set unit_name = svc.name ~ '-metrics' %}
{%- set public = {'service': svc, 'venv': litellm.venv, 'version': litellm.version,
                  'metrics': litellm.metrics} %}

include:
  - {{ tplroot }}.service

{%- if litellm.metrics.enabled %}
litellm-metrics-unit-file-managed:
  file.managed:
    - name: {{ litellm.lookup.systemd_unit_dir }}/{{ unit_name }}.service
    - source: salt://{{ tplroot }}/files/litellm-metrics.service.jinja
    - template: jinja
    - context:
        litellm: {{ public | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - sls: {{ tplroot }}.service

litellm-metrics-daemon-reload:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: litellm-metrics-unit-file-managed

litellm-metrics-service-running:
  service.running:
    - name: {{ unit_name }}
    - enable: True
    - require:
      - module: litellm-metrics-daemon-reload
    - watch:
      - file: litellm-metrics-unit-file-managed
      - litellm_venv: litellm-package-install-venv-installed
{%- endif %}

# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}

litellm-service-clean-service-dead:
  service.dead:
    - name: {{ svc.name }}
    - enable: False

litellm-service-clean-unit-file-absent:
  file.absent:
    - name: {{ litellm.lookup.systemd_unit_dir }}/{{ svc.name }}.service
    - require:
      - service: litellm-service-clean-service-dead

litellm-service-clean-daemon-reload:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: litellm-service-clean-unit-file-absent

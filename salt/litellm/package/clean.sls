# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}
{%- set venv_parent = salt['file.dirname'](litellm.venv) %}

include:
  - {{ tplroot }}.config.clean

{#- The venv symlink and its releases (with their locks), the installer cache, the smoke test's known-good
    config and env (/var/lib/litellm-salt), and what systemd made for
    the service (StateDirectory/CacheDirectory, also their DynamicUser twins). #}
{%- for path in [litellm.venv, litellm.venv ~ '-releases', '/var/cache/litellm-salt', '/var/lib/litellm-salt',
                 '/var/lib/' ~ svc.name, '/var/cache/' ~ svc.name,
                 '/var/lib/private/' ~ svc.name, '/var/cache/private/' ~ svc.name] %}
litellm-package-clean-{{ path }}-absent:
  file.absent:
    - name: {{ path }}
    - require:
      - sls: {{ tplroot }}.config.clean
{%- endfor %}

{#- The venv's parent (e.g. /opt/litellm) was made for it: remove it if empty. #}
{%- if venv_parent not in ['/', '/opt', '/srv', '/usr', '/usr/local', '/var', '/var/lib', '/home'] %}
litellm-package-clean-venv-parent-absent:
  cmd.run:
    - name: rmdir {{ venv_parent }}
    - onlyif: test -d {{ venv_parent }} && test -z "$(ls -A {{ venv_parent }})"
    - require:
      - file: litellm-package-clean-{{ litellm.venv }}-absent
      - file: litellm-package-clean-{{ litellm.venv }}-releases-absent
{%- endif %}

{#- Site CAs the formula installed (whatever pillar says now). #}
litellm-package-clean-ca-certificates-absent:
  cmd.run:
    - name: rm -f {{ litellm.lookup.ca_certificates_dir }}/litellm-salt-*.crt && update-ca-certificates --fresh
    - onlyif: ls {{ litellm.lookup.ca_certificates_dir }}/litellm-salt-*.crt
    - require:
      - sls: {{ tplroot }}.config.clean

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

# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Service account, OS packages, and the venv installed from the shipped lock
    file with hashes. A re-apply compares the lock digest and touches no network. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}

include:
  - {{ tplroot }}.validate

litellm-package-install-group-present:
  group.present:
    - name: {{ svc.group }}
    - system: True
    - require:
      - sls: {{ tplroot }}.validate

litellm-package-install-user-present:
  user.present:
    - name: {{ svc.user }}
    - gid: {{ svc.group }}
    - system: True
    - home: /var/lib/{{ svc.name }}
    - createhome: False
    - shell: {{ litellm.lookup.nologin_shell }}
    - require:
      - group: litellm-package-install-group-present

litellm-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ litellm.lookup.pkgs | json }}
    - require:
      - sls: {{ tplroot }}.validate

litellm-package-install-lock-file-managed:
  file.managed:
    - name: {{ litellm.venv }}/requirements.lock
    - source: salt://{{ tplroot }}/files/locks/litellm-{{ litellm.version }}.txt
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'
    - require:
      - sls: {{ tplroot }}.validate

litellm-package-install-venv-installed:
  litellm_venv.installed:
    - name: {{ litellm.venv }}
    - lock_file: {{ litellm.venv }}/requirements.lock
    - python: {{ litellm.lookup.python }}
    - index_url: {{ litellm.package_index.url | json }}
    - extra_index_urls: {{ litellm.package_index.extra_urls | json }}
    - ca_bundle: {{ litellm.ca_bundle | json }}
    - require:
      - pkg: litellm-package-install-pkg-installed
      - file: litellm-package-install-lock-file-managed

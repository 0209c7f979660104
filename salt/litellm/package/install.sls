# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Service account, OS packages, and the venv installed from the shipped lock
    file with hashes. A re-apply compares the lock digest and touches no network.
    A new lock is built as a new release while the old one serves; the venv
    symlink then switches to it (the service restarts through its watch). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set svc = litellm.service %}
{#- Each lock gets its own venv (release) under <venv>-releases; the venv path is a symlink to the live one. #}
{%- set lock_file = litellm.venv ~ '-releases/litellm-' ~ litellm.version ~ '.lock' %}
{#- The files of the lock that the proxy compiles at start: the release compiles only these (make lock writes it). #}
{%- set compile_list = litellm.venv ~ '-releases/litellm-' ~ litellm.version ~ '.compile.txt' %}
{%- set site_cas = litellm.ca_certificates if litellm.ca_certificates is mapping else {} %}
{%- set pkgs = litellm.lookup.pkgs + (['ca-certificates'] if site_cas else []) %}

include:
  - {{ tplroot }}.owner

litellm-package-install-group-present:
  group.present:
    - name: {{ svc.group }}
    - system: True
    - require:
      - sls: {{ tplroot }}.owner

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
    - pkgs: {{ pkgs | unique | list | json }}
    - require:
      - sls: {{ tplroot }}.owner

{#- Site CAs into the system trust store, before anything is downloaded. #}
{%- for ca_name, pem in site_cas | dictsort %}
litellm-package-install-ca-{{ ca_name }}-managed:
  file.managed:
    - name: {{ litellm.lookup.ca_certificates_dir }}/litellm-salt-{{ ca_name }}.crt
    - contents: {{ pem | json }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - require:
      - pkg: litellm-package-install-pkg-installed
{%- endfor %}
{%- if site_cas %}

litellm-package-install-ca-store-updated:
  cmd.run:
    - name: update-ca-certificates
    - onchanges:
{%-   for ca_name in site_cas | sort %}
      - file: litellm-package-install-ca-{{ ca_name }}-managed
{%-   endfor %}
{%- endif %}

litellm-package-install-lock-file-managed:
  file.managed:
    - name: {{ lock_file }}
    - source: salt://{{ tplroot }}/files/locks/litellm-{{ litellm.version }}.txt
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'
    - require:
      - sls: {{ tplroot }}.owner

litellm-package-install-compile-list-file-managed:
  file.managed:
    - name: {{ compile_list }}
    - source: salt://{{ tplroot }}/files/locks/litellm-{{ litellm.version }}.compile.txt
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'
    - require:
      - sls: {{ tplroot }}.owner

litellm-package-install-venv-installed:
  litellm_venv.installed:
    - name: {{ litellm.venv }}
    - lock_file: {{ lock_file }}
    - compile_list: {{ compile_list }}
    - python: {{ litellm.lookup.python }}
    - index_url: {{ litellm.package_index.url | json }}
    - extra_index_urls: {{ litellm.package_index.extra_urls | json }}
    - ca_bundle: {{ litellm.ca_bundle | json }}
    - require:
      - pkg: litellm-package-install-pkg-installed
      - file: litellm-package-install-lock-file-managed
      - file: litellm-package-install-compile-list-file-managed
{%- for ca_name in site_cas | sort %}
      - file: litellm-package-install-ca-{{ ca_name }}-managed
{%- endfor %}
{%- if site_cas %}
      - cmd: litellm-package-install-ca-store-updated
{%- endif %}

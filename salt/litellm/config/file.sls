# -*- coding: utf-8 -*-
# vim: ft=sls
{#- /etc/litellm/config.yaml (no secret: the key is read from the environment),
    /etc/litellm/litellm.env (the secret; never diffed), and the client-key
    hook with its table of key hashes (litellm:keys). The config is
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
{%- set public_tls = (litellm.get('tls') or {}).copy() %}
{%- do public_tls.pop('key', None) %}
{%- do public.update({'tls': public_tls}) %}
{#- Client keys (litellm:keys) with a plaintext key (GPG-encrypted pillar) are
    hashed here, while the SLS renders: the key itself is in none of these
    states' data (a bad litellm:keys is left to litellm.validate). #}
{%- set public_keys = {} %}
{%- set keys_in = litellm.get('keys') %}
{%- for name, spec in (keys_in if keys_in is mapping else {}).items() %}
{%-   if spec is mapping %}
{%-     set entry = spec.copy() %}
{%-     set plain = entry.pop('key', None) %}
{%-     if plain is string and 'hash' not in entry %}
{%-       do entry.update({'hash': 'sha256:' ~ (plain | sha256)}) %}
{%-     endif %}
{%-   else %}
{%-     set entry = spec %}
{%-   endif %}
{%-   do public_keys.update({name: entry}) %}
{%- endfor %}
{%- do public.update({'keys': public_keys}) %}
{#- The smoke key's entry in the key table (litellm:smoke:key): the first
    alias only; the key itself is made on the host, read by the template. #}
{%- set first_alias = [] %}
{%- for model in (litellm.models if litellm.models is iterable and litellm.models is not string else []) %}
{%-   if model is mapping and not first_alias %}{% do first_alias.append(model.get('name')) %}{% endif %}
{%- endfor %}
{%- set smoke_key = None %}
{%- if litellm.smoke.enabled and first_alias %}
{%-   set smoke_key = {'config_dir': litellm.config_dir, 'alias': first_alias[0], 'limits': litellm.smoke.key} %}
{%- endif %}
{#- The env file needs the secrets, not the client keys. #}
{%- set env_settings = litellm.copy() %}
{%- do env_settings.pop('keys', None) %}
{%- do env_settings.update({'tls': public_tls}) %}
{#- litellm:metrics: PROMETHEUS_MULTIPROC_DIR (litellm_edge) #}
{%- do env_settings.update({'metrics_env': salt['litellm_config.edge'](public).metrics_env}) %}

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

{#- The client-key hook LiteLLM loads (general_settings.custom_auth, when
    litellm:keys is set) and its key table: both always there, so that any
    config.yaml, a rolled-back one included, finds them. Root-owned, read-only
    for the service. A change of the table restarts nothing: the hook re-reads
    it (service/running.sls does not watch it). #}
litellm-config-file-auth-hook-managed:
  file.managed:
    - name: {{ litellm.config_dir }}/litellm_client_keys.py
    - source: salt://{{ tplroot }}/files/litellm_client_keys.py
    - user: root
    - group: {{ svc.group }}
    - mode: '0640'
    - require:
      - file: litellm-config-file-directory

{%- if smoke_key %}
{#- The formula's own client key, for the smoke test: made once on the host
    (root 0600, never shown, never in pillar); only its hash is in the table. #}
litellm-config-file-smoke-key-present:
  litellm_smoke.key_present:
    - name: {{ litellm.config_dir }}/smoke-key
    - require:
      - file: litellm-config-file-directory
{%- endif %}

litellm-config-file-keys-managed:
  file.managed:
    - name: {{ litellm.config_dir }}/client-keys.json
    - source: salt://{{ tplroot }}/files/client-keys.json.jinja
    - template: jinja
    - context:
        litellm: {{ {'keys': public_keys, 'models': litellm.models, 'smoke_key': smoke_key} | json }}
    - user: root
    - group: {{ svc.group }}
    - mode: '0640'
    # Hashes of client keys, not the keys; still never diffed.
    - show_changes: False
    - require:
      - file: litellm-config-file-directory
{%- if smoke_key %}
      - litellm_smoke: litellm-config-file-smoke-key-present
{%- endif %}

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
    # A config LiteLLM rejects never replaces the live one. With no live one
    # (a first deploy) the service's launcher checks it before it starts.
    - check_cmd: {{ litellm.venv }}/bin/litellm-check-config --live {{ litellm.config_dir }}/config.yaml
    - tmp_ext: .yaml
    # LiteLLM loads the custom_auth module from the directory of the config
    # it checks: check the new one beside the hook.
    - tmp_dir: {{ litellm.config_dir }}
    - require:
      - file: litellm-config-file-directory
      - file: litellm-config-file-check-script-managed
      - file: litellm-config-file-auth-hook-managed
      - file: litellm-config-file-keys-managed

litellm-config-file-env-managed:
  file.managed:
    - name: {{ litellm.config_dir }}/litellm.env
    - source: salt://{{ tplroot }}/files/litellm.env.jinja
    - template: jinja
    - context:
        litellm: {{ env_settings | json }}
    - user: root
    - group: {{ svc.group }}
    - mode: '0640'
    # Holds the master key: never print a diff of it.
    - show_changes: False
    - require:
      - file: litellm-config-file-directory

{#- The listener's TLS (litellm:tls): the chain is public; the key is read
    from pillar by file.managed itself (contents_pillar), so it is in none of
    these states' data, and never diffed. #}
{%- if litellm.tls.enabled %}
{%-   set tls_files = salt['litellm_config.edge'](public).tls_files %}
litellm-config-file-tls-certificate-managed:
  file.managed:
    - name: {{ tls_files.certificate }}
    - contents: {{ litellm.tls.certificate | json }}
    - user: root
    - group: {{ svc.group }}
    - mode: '0644'
    - require:
      - file: litellm-config-file-directory

litellm-config-file-tls-key-managed:
  file.managed:
    - name: {{ tls_files.key }}
    - contents_pillar: litellm:tls:key
    - user: root
    - group: {{ svc.group }}
    - mode: '0640'
    # The listener's private key: never print a diff of it.
    - show_changes: False
    - require:
      - file: litellm-config-file-directory
{%- endif %}

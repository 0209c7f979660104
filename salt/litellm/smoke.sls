# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Acceptance after every deploy: the gateway answers as an operator expects
    (health, auth, every alias, chat, streaming, fan-out to every backend,
    errors, latency). A failed check fails the run, naming it; right after a
    change it also rolls back to the last known-good config and env
    (litellm:rollback). The master key comes from the secret pillar
    inside the module, never from this file. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}

include:
  - {{ tplroot }}.service

{#- Tolerates a malformed models list: litellm.validate reports it. #}
{%- set aliases = [] %}
{%- for model in (litellm.models if litellm.models is iterable and litellm.models is not string else []) %}
{%-   if model is mapping %}{% do aliases.append(model.get('name')) %}{% endif %}
{%- endfor %}

{%- if litellm.smoke.enabled %}
litellm-smoke-passed:
  litellm_smoke.passed:
    - name: litellm
    - bind_host: {{ litellm.bind_host | json }}
    - bind_port: {{ litellm.bind_port | json }}
{%- if litellm.tls.enabled %}
    # litellm:tls: over https to the base_url host, verified (the site CAs are in the system store)
    - url: {{ litellm.base_url | json }}
{%- endif %}
    - models: {{ aliases | json }}
    - backends: {{ litellm.backends | json }}
    - concurrency: {{ litellm.smoke.concurrency }}
    - latency_requests: {{ litellm.smoke.latency_requests }}
    - chat_models: {{ litellm.smoke.chat_models }}
{%- if litellm.metrics.enabled %}
    # litellm:metrics: the endpoint answers without a key and counts a chat
    - metrics_url: {{ salt['litellm_config.edge'](litellm).metrics_url | json }}
{%- endif %}
    - evidence_dir: {{ litellm.smoke.evidence_dir or None | json }}
    # After a PASS the live config, env and venv are kept as a known-good
    # release; a FAIL after a change restores the newest one, restarts the
    # service, still fails.
    - config_dir: {{ litellm.config_dir | json }}
    - venv: {{ litellm.venv | json }}
    - service: {{ litellm.service.name | json }}
    - group: {{ litellm.service.group | json }}
    - rollback: {{ litellm.rollback.enabled | json }}
    - keep: {{ litellm.rollback.keep | json }}
    - keep_venvs: {{ litellm.rollback.keep_venvs | json }}
    - ready_timeout: {{ litellm.service.ready_timeout | json }}
    - require:
      - sls: {{ tplroot }}.service
{%- endif %}

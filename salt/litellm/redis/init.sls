# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Optional: Debian's redis-server, secured, as the shared router state of a
    fleet of gateways (litellm:redis). Acts only on the minion that
    litellm:redis:server names, so `state.apply litellm.redis` can target
    every host. The password goes into redis.conf (redis:redis 0640, never
    diffed) only. The run ends once Redis accepts the password (AUTH + PING). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm, pillar_is_mapping with context %}
{%- set redis = litellm.get('redis') or {} %}

litellm-redis-validated:
  litellm_config.validated:
    - name: litellm:redis
    - settings: {{ litellm | json }}
    - pillar_is_mapping: {{ pillar_is_mapping | json }}
    - section: redis
    - failhard: True

{%- set redis_server_only = {'redis': {'server': redis.get('server')} } %}
{%- if redis.get('server') and redis.get('server') == grains['id'] %}
{%-   set bind = redis.get('bind') or (['127.0.0.1'] + ([redis.host] if redis.host != '127.0.0.1' else [])) %}

{#- A redis-server the formula did not install is never taken over (nor
    purged by litellm.redis.clean): leave litellm:redis:server empty to use it. #}
litellm-redis-owner-claimed:
  litellm_owner.claimed:
    - name: litellm:redis
    - settings: {{ redis_server_only | json }}
    - scope: redis
    - failhard: True
    - require:
      - litellm_config: litellm-redis-validated

litellm-redis-pkg-installed:
  pkg.installed:
    - name: redis-server
    - require:
      - litellm_owner: litellm-redis-owner-claimed

litellm-redis-config-file-managed:
  file.managed:
    - name: /etc/redis/redis.conf
    - source: salt://{{ tplroot }}/files/redis.conf.jinja
    - template: jinja
    - context:
        bind: {{ bind | json }}
        port: {{ redis.port | json }}
        password: {{ redis.password | json }}
        maxmemory_mib: {{ redis.maxmemory_mib | json }}
    - user: redis
    - group: redis
    - mode: '0640'
    # Holds the password: never print a diff of it.
    - show_changes: False
    - require:
      - pkg: litellm-redis-pkg-installed

litellm-redis-service-running:
  service.running:
    - name: redis-server
    - enable: True
    - watch:
      - file: litellm-redis-config-file-managed
{#- Read-only, but Redis is not there before the first real run. #}
{%-   if not opts.get('test') %}

litellm-redis-ready:
  litellm_preflight.go:
    - name: litellm:redis
    - settings: {{ litellm | json }}
    - checks: [redis]
    - evidence_dir: ''
    - retry:
        attempts: 15
        interval: 1
    - require:
      - service: litellm-redis-service-running
{%-   endif %}
{%- else %}

litellm-redis-not-this-host:
  test.succeed_without_changes:
    - name: "not the Redis host: litellm:redis:server is {{ redis.get('server') or "''" }}, this is {{ grains['id'] }}"
    - require:
      - litellm_config: litellm-redis-validated
{%- endif %}

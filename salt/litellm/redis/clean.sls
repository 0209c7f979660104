# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Removes the Redis that litellm.redis installed (on litellm:redis:server only). #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import litellm with context %}
{%- set redis = litellm.get('redis') or {} %}
{%- if redis.get('server') and redis.get('server') == grains['id'] %}

litellm-redis-clean-service-dead:
  service.dead:
    - name: redis-server
    - enable: False

litellm-redis-clean-pkg-purged:
  pkg.purged:
    - name: redis-server
    - require:
      - service: litellm-redis-clean-service-dead
{%- else %}

litellm-redis-clean-not-this-host:
  test.succeed_without_changes:
    - name: "not the Redis host ({{ grains['id'] }})"
{%- endif %}

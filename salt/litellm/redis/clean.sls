# -*- coding: utf-8 -*-
# vim: ft=sls
{#- Removes the Redis server that litellm.redis installed: only what the
    formula's record on this host lists (a redis-server it did not install
    stays), whatever pillar says now. #}

litellm-redis-clean-owned-removed:
  litellm_owner.removed:
    - name: litellm:redis
    - jobs: [redis]

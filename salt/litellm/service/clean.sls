# -*- coding: utf-8 -*-
# vim: ft=sls
{#- The unit the formula's record lists: stopped, disabled, its file removed,
    then daemon-reload. #}
litellm-service-clean-owned-removed:
  litellm_owner.removed:
    - name: litellm
    - jobs: [service]

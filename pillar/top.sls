# Site pillar of the reference deployment. Never put this directory in
# file_roots: everything there is served as salt://.
base:
  '*':
    - litellm
    - litellm_secrets

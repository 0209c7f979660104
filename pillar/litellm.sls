# -*- coding: utf-8 -*-
# vim: ft=yaml
# The reference deployment (mirrors the original Ansible group vars): gateway
# hx-api-server on port 4000 in front of two Ollama servers, every alias on
# both so the router balances and fails over. Secrets: litellm_secrets.sls.
litellm:
  bind_host: 0.0.0.0
  bind_port: 4000
  base_url: http://hx-api-server:4000/v1
  backends:
    - http://hx-llm01-server:11434
    - http://hx-llm02-server:11434
  models:
    - name: llama3.1-8b
      provider: ollama
      model: llama3.1:8b
    - name: llama3.2-3b
      provider: ollama
      model: llama3.2:3b
    - name: qwen2.5-7b
      provider: ollama
      model: qwen2.5:7b
    - name: mistral-7b
      provider: ollama
      model: mistral:7b
    - name: phi3-mini
      provider: ollama
      model: phi3:mini
  request_timeout: 600
  max_retries: 2
  routing_strategy: simple-shuffle
  version: "1.108.7"
  venv: /opt/litellm/venv

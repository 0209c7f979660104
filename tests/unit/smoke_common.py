"""
What the unit tests of litellm_smoke share (not a test module): the modules
under test, short names for its utils, the pillar they read, and the loader's
dunders (the ``configure_loader_modules``, ``pillar_get`` and ``map_jinja``
fixtures; each test module binds them in its own scope).
"""

import json
from unittest.mock import MagicMock

import pytest

from tests.conftest import SALT_UTILS, TEST_MASTER_KEY, load_salt_module, merged

litellm_smoke = load_salt_module("modules", "litellm_smoke")
litellm_smoke_state = load_salt_module("states", "litellm_smoke")
litellm_config = load_salt_module("modules", "litellm_config")
U = SALT_UTILS
HTTP, REDACT, PARSE, RUN = U.litellm_http, U.litellm_redact, U.litellm_smoke_parse, U.litellm_smoke_run
PROBES, CHAT, FANOUT = U.litellm_smoke_probes, U.litellm_smoke_chat, U.litellm_smoke_fanout

PILLAR = {
    "bind_host": "0.0.0.0",
    "bind_port": 4100,
    "master_key": TEST_MASTER_KEY,
    "models": [
        {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
        {"name": "chat-large", "provider": "ollama", "model": "llama3.1:8b"},
    ],
    "backends": ["http://llm01:11434/", "http://llm02:11434"],
}
BACKENDS = ["http://llm01:11434", "http://llm02:11434"]


@pytest.fixture
def pillar_get():
    return MagicMock(side_effect=lambda key, default=None, **kwargs: PILLAR if key == "litellm" else default)


@pytest.fixture
def map_jinja(pillar_get):
    """slsutil.renderer of salt://litellm/map.jinja: defaults.yaml merged with the pillar."""
    return MagicMock(side_effect=lambda **kwargs: {"settings": merged(pillar_get("litellm", {}) or {}),
                                                   "pillar_is_mapping": True})


@pytest.fixture
def configure_loader_modules(pillar_get, map_jinja):
    module_salt = {
        "pillar.get": pillar_get,
        "litellm_config.local_url": litellm_config.local_url,
        "slsutil.renderer": map_jinja,
    }
    state_salt = {"litellm_smoke.run": litellm_smoke.run, "litellm_smoke.plan": litellm_smoke.plan}
    return {
        litellm_smoke: {"__salt__": module_salt, "__opts__": {"test": False}, "__utils__": U},
        litellm_smoke_state: {"__salt__": state_salt, "__opts__": {"test": False}, "__utils__": U},
    }


def sse_chunk(content=None, role=None, finish=None):
    """One event of an OpenAI-style stream, as the gateway sends it."""
    delta = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return "data: " + json.dumps({"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

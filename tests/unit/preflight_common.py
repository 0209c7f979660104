"""
What the unit tests of litellm_preflight share (not a test module): the
modules under test, short names for its utils, a site's settings, the
loader's dunders (the ``configure_loader_modules`` and ``run_all`` fixtures;
each test module binds them in its own scope) and one check run through the
module's own wrapper.
"""

from unittest.mock import MagicMock

import pytest

from tests.conftest import SALT_UTILS, TEST_MASTER_KEY, load_salt_module, merged

litellm_preflight = load_salt_module("modules", "litellm_preflight")
litellm_config = load_salt_module("modules", "litellm_config")
preflight_state = load_salt_module("states", "litellm_preflight")

PF = litellm_preflight
U = SALT_UTILS
RUN, REPORT = U.litellm_preflight_run, U.litellm_preflight_report
DNS, BACKEND, PORT = U.litellm_preflight_dns, U.litellm_preflight_backends, U.litellm_preflight_port
HOST, TLS, SITE = U.litellm_preflight_host, U.litellm_preflight_tls, U.litellm_preflight_site
NET, PROC, HTTP, REDACT = U.litellm_net, U.litellm_proc, U.litellm_http, U.litellm_redact
BACKENDS = ["http://llm01.example.internal:11434", "http://10.0.0.12:11434"]

# /proc/net/tcp and tcp6 as the kernel prints them (x86_64, little endian).
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 41210 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18423 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0FA0 0100007F:D2F4 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   3: 0C00000A:B83E 0100000A:2CAA 01 00000000:00000000 02:000A7D4F 00000000  1000        0 52117 2 0000000000000000 20 4 30 10 -1
"""  # noqa: E501 (the kernel's own line format)
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0FA0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61001 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61002 1 0000000000000000 100 0 0 10 0
   2: 000080FE00000000FF005452F10004FE:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61003 1 0000000000000000 100 0 0 10 0
"""  # noqa: E501 (the kernel's own line format)


def settings(**overrides):
    base = merged(
        {
            "backends": list(BACKENDS),
            "models": [
                {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
                {"name": "chat", "provider": "ollama", "model": "mistral"},
            ],
            "master_key": TEST_MASTER_KEY,
            "base_url": "http://gw.example.internal:4000/v1",
            # unit tests write no evidence bundles on this machine
            "preflight": {"evidence_dir": ""},
        }
    )
    base.update(overrides)
    return base


@pytest.fixture
def run_all():
    return MagicMock(return_value={"retcode": 0, "stdout": "", "stderr": ""})


@pytest.fixture
def configure_loader_modules(run_all):
    salt = {"cmd.run_all": run_all, "litellm_config.validate": litellm_config.validate}
    return {
        litellm_preflight: {
            "__salt__": salt,
            "__grains__": {"fqdn": "gw.example.internal", "id": "gw"},
            "__utils__": U,
        },
        litellm_config: {"__salt__": {}, "__utils__": U},
        preflight_state: {
            "__salt__": {"litellm_preflight.run": litellm_preflight.run},
            "__opts__": {"test": False},
            "__utils__": U,
        },
    }


def ctx(cfg=None):
    """The checks' context the module gives them."""
    return PF._context(cfg if cfg is not None else settings(), "base")[0]


def preflight_errors(cfg):
    """The errors of litellm:preflight, which litellm_config.check_settings checks with every other section."""
    return [e for e in litellm_config.check_settings(cfg) if e.startswith("litellm:preflight")]


def check(name, cfg):
    """Run one check through the module's own wrapper (timing, redaction)."""
    out = PF._public(name, cfg, "base")
    assert set(out) == {"name", "status", "detail", "duration_ms"}
    assert "\n" not in out["detail"]
    return out

"""
The pure functions the SLS call while they render, answered on the controller
by the salt-ssh wrappers (issue 17: on the target each call was one more ssh
round trip and salt-call): the same values as the target's modules.
"""

import pytest

from tests.conftest import REPO, SALT_UTILS, _import, load_salt_module, merged

litellm_config = load_salt_module("modules", "litellm_config")
litellm_service = load_salt_module("modules", "litellm_service")
BASE = {"backends": ["http://10.0.0.1:11434"], "models": [{"name": "m", "model": "llama3.2:3b"}]}


@pytest.fixture()
def wrappers(monkeypatch):
    config_wrapper = _import("wrapper", REPO / "_wrapper" / "litellm_config.py")
    service_wrapper = _import("wrapper", REPO / "_wrapper" / "litellm_service.py")
    for wrapper in (config_wrapper, service_wrapper):
        # the controller's loader of the formula's _utils: here the same utils, imported directly
        monkeypatch.setattr(wrapper._common, "utils", lambda opts, context: SALT_UTILS)
        wrapper.__opts__, wrapper.__context__ = {}, {}
    return config_wrapper, service_wrapper


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"metrics": {"enabled": True, "bind_host": "127.0.0.1", "port": 9464}},
        {"service": {"name": "gw", "graceful_timeout": 42}},
    ],
)
def test_wrappers_answer_as_the_target_modules(wrappers, extra):
    config_wrapper, service_wrapper = wrappers
    settings = merged(BASE, extra)
    assert config_wrapper.edge(settings) == litellm_config.edge(settings)
    assert service_wrapper.drain_seconds(settings) == litellm_service.drain_seconds(settings)


def test_edge_has_every_value_the_states_read(wrappers):
    config_wrapper, _ = wrappers
    edge = config_wrapper.edge(merged(BASE, {"metrics": {"enabled": True, "bind_host": "127.0.0.1", "port": 9464}}))
    assert {"tls_args", "tls_files", "metrics_env", "metrics_argv", "info_script", "multiproc_dir",
            "metrics_url"} <= set(edge)
    assert edge["metrics_env"] == {"PROMETHEUS_MULTIPROC_DIR": "/run/litellm/prometheus"}


def test_drain_seconds_is_none_for_settings_that_do_not_say_it(wrappers):
    _, service_wrapper = wrappers
    assert service_wrapper.drain_seconds({}) is None
    assert service_wrapper.drain_seconds({"service": {"graceful_timeout": "soon"}}) is None
    assert litellm_service.drain_seconds({}) is None

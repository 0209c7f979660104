"""Unit tests of litellm_config: validation and rendering, no host touched."""

import copy

import pytest
import salt.utils.yaml

from tests.conftest import GOLDEN_DIR, SALT_UTILS, TEST_MASTER_KEY, load_salt_module

litellm_config = load_salt_module("modules", "litellm_config")


@pytest.fixture
def configure_loader_modules():
    return {litellm_config: {"__salt__": {}, "__opts__": {"test": False}, "__utils__": SALT_UTILS}}


def _set(settings, dotted, value):
    node = settings
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()

# (key to change, bad value, words the error must contain)
BAD_PILLAR = [
    ("bind_port", "4000x", ["litellm:bind_port", "integer from 1 to 65535", "'4000x'"]),
    ("bind_port", 70000, ["litellm:bind_port", "70000"]),
    ("bind_port", True, ["litellm:bind_port", "bool"]),
    ("bind_host", "not a host", ["litellm:bind_host", "neither an IP address nor a valid host name"]),
    ("backends", [], ["litellm:backends", "non-empty list"]),
    ("backends", "http://a:11434", ["litellm:backends", "non-empty list"]),
    ("backends.1", "hx-llm02-server:11434", ["litellm:backends:1", "http:// or https://"]),
    ("backends.1", "ftp://hx-llm02-server:11434", ["litellm:backends:1", "http:// or https://"]),
    ("backends.1", "http://hx-llm02-server:99999", ["litellm:backends:1", "invalid port"]),
    ("backends.1", "http://hx-llm02-server:11434/v1", ["litellm:backends:1", "must not have a path"]),
    ("backends.1", "http://hx-llm01-server:11434/", ["litellm:backends:1", "duplicate backend"]),
    ("models", [], ["litellm:models", "non-empty list"]),
    ("models.1.name", "llama3.1-8b", ["litellm:models:1:name", "duplicate alias 'llama3.1-8b'"]),
    ("models.1.name", "", ["litellm:models:1:name", "non-empty string"]),
    ("models.1.name", "llama 3", ["litellm:models:1:name", "white space"]),
    ("models.2.provider", "openai", ["litellm:models:2 (qwen2.5-7b):provider", "ollama", "'openai'"]),
    ("models.2.model", "", ["litellm:models:2 (qwen2.5-7b):model", "Ollama model name"]),
    ("models.3", "mistral:7b", ["litellm:models:3", "must be a mapping"]),
    ("request_timeout", 0, ["litellm:request_timeout", "number from 1"]),
    ("max_retries", -1, ["litellm:max_retries", "integer from 0 to 10"]),
    ("routing_strategy", "round-robin", ["litellm:routing_strategy", "simple-shuffle", "'round-robin'"]),
    ("version", 1.108, ["litellm:version", "exact version", "quote it"]),
    ("version", "latest", ["litellm:version", "'latest'"]),
    ("venv", "opt/litellm", ["litellm:venv", "absolute path"]),
    ("venv", "/opt", ["litellm:venv", "system directory"]),
    ("ca_bundle", "certs/ca.pem", ["litellm:ca_bundle", "absolute path"]),
    ("package_index.url", "mirror.internal/simple", ["litellm:package_index:url", "http:// or https://"]),
    ("service.workers", 0, ["litellm:service:workers", "auto or an integer from 1 to 64"]),
    ("service.workers", "many", ["litellm:service:workers", "auto or an integer", "'many'"]),
    ("service.server", "hypercorn", ["litellm:service:server", "one of uvicorn", "'hypercorn'"]),
    ("service.server", "gunicorn", ["litellm:service:server", "gunicorn is no longer offered"]),
    ("service.graceful_timeout", 0, ["litellm:service:graceful_timeout", "integer from 1"]),
    ("service.worker_ready_timeout", "x", ["litellm:service:worker_ready_timeout", "integer from 5"]),
    ("service.max_requests", -1, ["litellm:service:max_requests", "integer from 0"]),
    ("service", {"name": "litellm", "user": "litellm", "group": "litellm", "workers": 1, "server": "uvicorn",
                 "max_requests": 1000, "log_level": "ERROR", "ready_timeout": 180},
     ["litellm:service:max_requests", "workers >= 2"]),
    ("service.user", "root", ["litellm:service:user", "must not be root"]),
    ("service.log_level", "LOUD", ["litellm:service:log_level", "ERROR"]),
    ("router_settings", {"health_check_interval": 30}, ["litellm:router_settings:health_check_interval"]),
    ("general_settings", {"master_key": "sk-x"}, ["litellm:general_settings:master_key", "secret pillar"]),
    ("bind_prot", 4000, ["unknown key(s) bind_prot", "typo?"]),
    ("smoke.rollback", True, ["litellm:smoke:rollback", "moved to litellm:rollback:enabled"]),
    ("rollback.enabled", "yes", ["litellm:rollback:enabled", "true or false", "'yes'"]),
    ("rollback.keep", 0, ["litellm:rollback:keep", "from 1 to 100"]),
    ("rollback.keep_venvs", -1, ["litellm:rollback:keep_venvs", "from 0 to 10"]),
    ("rollback.keep_all", True, ["litellm:rollback", "unknown key(s) keep_all"]),
    ("service.log_format", "xml", ["litellm:service:log_format", "text, json", "'xml'"]),
    ("ca_certificates", ["pem"], ["litellm:ca_certificates", "mapping of name: PEM"]),
    ("ca_certificates.site-root", "not a cert", ["litellm:ca_certificates:site-root", "PEM certificate"]),
    ("ca_certificates.bad name", "x", ["litellm:ca_certificates:bad name", "letters, digits"]),
    ("smoke.rolback", False, ["litellm:smoke: unknown key(s) rolback"]),
]


@pytest.mark.parametrize(("key", "value", "words"), BAD_PILLAR, ids=[f"{k}={v!r}" for k, v, _ in BAD_PILLAR])
def test_bad_pillar_is_rejected_naming_the_key(reference_settings, key, value, words):
    settings = copy.deepcopy(reference_settings)
    _set(settings, key, value)
    result = litellm_config.validate(settings=settings)
    assert result["valid"] is False
    message = "\n".join(result["errors"])
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


BAD_KEYS = [
    (_DELETE, "missing"),
    ("", "missing"),
    ("sk-1234", "too short"),
    ("9f3c2a7be14d08c65e7a91f2d3b4c5a6e7f80912abcd", "must start with 'sk-'"),
    ("sk-changeme-changeme-changeme-changeme", "placeholder"),
    ("sk-" + "a" * 40, "placeholder"),
    ("sk-9f3c2a7be14d08c6 5e7a91f2d3b4c5a6e7f80912", "white space"),
    ("-----BEGIN PGP MESSAGE-----\nhQGMA...", "still GPG-encrypted"),
    (12345678901234567890123456789012345, "must be a string"),
]


@pytest.mark.parametrize(("key", "words"), BAD_KEYS, ids=[w for _, w in BAD_KEYS])
def test_bad_master_key_is_rejected_without_echoing_it(reference_settings, key, words):
    settings = copy.deepcopy(reference_settings)
    _set(settings, "master_key", key)
    errors = litellm_config.validate(settings=settings)["errors"]
    assert any(e.startswith("litellm:master_key:") and words in e for e in errors), errors
    if isinstance(key, str) and len(key) > 8:
        assert all(key not in e and key[3:12] not in e for e in errors)


def test_not_a_mapping_is_rejected():
    assert litellm_config.check_settings("bind_port: 4000") == [
        "litellm: must be a mapping of settings, got 'bind_port: 4000' (str)"
    ]


def test_every_problem_is_reported_at_once(reference_settings):
    settings = copy.deepcopy(reference_settings)
    settings.update(bind_port=0, backends=[], master_key="")
    errors = litellm_config.check_settings(settings)
    assert [e.split(":")[1] for e in errors] == ["bind_port", "backends", "master_key"]


def test_reference_pillar_is_valid(reference_settings):
    assert litellm_config.validate(settings=reference_settings) == {"valid": True, "errors": []}


def test_config_has_one_entry_per_model_and_backend(reference_settings):
    config = litellm_config.build_config(reference_settings)
    entries = config["model_list"]
    assert len(entries) == 5 * 2
    pairs = {(e["model_name"], e["litellm_params"]["api_base"]) for e in entries}
    assert len(pairs) == 10
    assert {e["litellm_params"]["model"] for e in entries if e["model_name"] == "qwen2.5-7b"} == {
        "ollama_chat/qwen2.5:7b"
    }
    assert len({e["model_info"]["id"] for e in entries}) == 10


def test_config_references_the_key_and_never_holds_it(reference_settings):
    text = litellm_config.config_text(reference_settings)
    config = salt.utils.yaml.safe_load(text)
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert TEST_MASTER_KEY not in text


def test_config_keys_are_where_litellm_expects_them(reference_settings):
    config = litellm_config.build_config(reference_settings)
    assert set(config) == {"model_list", "router_settings", "litellm_settings", "general_settings"}
    assert "health_check_interval" not in config["router_settings"]
    assert "num_retries" not in config
    assert config["router_settings"]["num_retries"] == 2
    assert config["general_settings"]["background_health_checks"] is True
    assert config["general_settings"]["enable_health_check_routing"] is True
    assert config["router_settings"]["enable_weighted_failover"] is True


def test_health_checks_can_be_turned_off(reference_settings):
    settings = copy.deepcopy(reference_settings)
    settings["health_check_interval"] = 0
    general = litellm_config.build_config(settings)["general_settings"]
    assert general == {"master_key": "os.environ/LITELLM_MASTER_KEY"}


def test_extra_sections_are_merged(reference_settings):
    settings = copy.deepcopy(reference_settings)
    settings["router_settings"] = {"cooldown_time": 5, "enable_pre_call_checks": True}
    config = litellm_config.build_config(settings)
    assert config["router_settings"]["cooldown_time"] == 5
    assert config["router_settings"]["enable_pre_call_checks"] is True


def test_rendered_config_matches_golden_file(reference_settings):
    golden = (GOLDEN_DIR / "reference-config.yaml").read_text(encoding="utf-8")
    assert litellm_config.config_text(reference_settings) == golden


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("0.0.0.0", 4000, "http://127.0.0.1:4000"),
        ("::", 4000, "http://[::1]:4000"),
        ("10.1.2.3", 8080, "http://10.1.2.3:8080"),
        ("fd00::1", 4000, "http://[fd00::1]:4000"),
    ],
)
def test_local_url(host, port, url):
    assert litellm_config.local_url(host, port) == url


def test_redact_env():
    text = f"LITELLM_MASTER_KEY={TEST_MASTER_KEY}\nLITELLM_LOG=ERROR\n"
    assert litellm_config.redact_env(text) == "LITELLM_MASTER_KEY=<redacted>\nLITELLM_LOG=ERROR\n"

"""
Unit tests of litellm_smoke's pure parts: percentiles, SSE, aliases,
redaction, health and fanout, reading a deployed gateway.
"""

import json

import pytest

from tests.conftest import REPO, TEST_MASTER_KEY
from tests.unit import smoke_common
from tests.unit.smoke_common import (
    BACKENDS,
    CHAT,
    FANOUT,
    HTTP,
    PARSE,
    PILLAR,
    REDACT,
    litellm_smoke,
    sse_chunk,
)

# the loader's fixtures, bound in this module's scope (saltfactories asks for configure_loader_modules)
configure_loader_modules = smoke_common.configure_loader_modules
map_jinja = smoke_common.map_jinja
pillar_get = smoke_common.pillar_get


# -- percentiles ------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks():
    values = list(range(0, 101))
    assert litellm_smoke.percentile(values, 50) == 50.0
    assert litellm_smoke.percentile(values, 95) == 95.0
    assert litellm_smoke.percentile([10, 20], 50) == 15.0
    assert litellm_smoke.percentile([30, 10, 20, 40], 50) == 25.0  # order does not matter
    assert litellm_smoke.percentile([1.0, 2.0, 3.0, 100.0], 95) == pytest.approx(85.45, abs=0.06)


def test_percentile_edge_cases():
    assert litellm_smoke.percentile([], 50) is None
    assert litellm_smoke.percentile([None, None], 95) is None
    assert litellm_smoke.percentile([7.0], 95) == 7.0
    assert litellm_smoke.percentile([5, None, 15], 50) == 10.0
    assert litellm_smoke.percentile([1, 2, 3], 0) == 1.0
    assert litellm_smoke.percentile([1, 2, 3], 100) == 3.0


# -- SSE ----------------------------------------------------------------------------------


def test_parse_sse_concatenates_content_and_sees_done():
    text = "\n\n".join(
        [sse_chunk(role="assistant", content=""), sse_chunk("Hello "), sse_chunk("from "), sse_chunk("llm01"),
         sse_chunk(finish="stop"), "data: [DONE]"]
    ) + "\n\n"
    parsed = litellm_smoke.parse_sse(text)
    assert parsed == {"chunks": 5, "content": "Hello from llm01", "done": True, "done_last": True, "errors": []}


def test_parse_sse_ignores_comments_events_and_crlf():
    text = ": keep-alive\r\nevent: message\r\n" + sse_chunk("hi") + "\r\n\r\ndata:[DONE]\r\n"
    parsed = litellm_smoke.parse_sse(text)
    assert parsed["content"] == "hi" and parsed["done_last"] is True


def test_parse_sse_without_done_or_with_errors():
    assert litellm_smoke.parse_sse(sse_chunk("hi") + "\n")["done"] is False
    after = litellm_smoke.parse_sse("data: [DONE]\n" + sse_chunk("late") + "\n")
    assert after["done"] is True and after["done_last"] is False
    broken = litellm_smoke.parse_sse("data: {not json\n" + 'data: {"error": {"message": "boom"}}\n' + "data: [1]\n")
    assert broken["chunks"] == 0 and broken["content"] == ""
    assert len(broken["errors"]) == 3 and "boom" in broken["errors"][1]
    assert litellm_smoke.parse_sse("") == {"chunks": 0, "content": "", "done": False, "done_last": False, "errors": []}


# -- aliases, backends, targets -------------------------------------------------------------


def test_compare_aliases_names_missing_and_extra():
    assert litellm_smoke.compare_aliases(["a", "b"], ["b", "a"]) == {"missing": [], "extra": [], "match": True}
    assert litellm_smoke.compare_aliases(["a", "b", "c"], ["d", "a"]) == {
        "missing": ["b", "c"],
        "extra": ["d"],
        "match": False,
    }
    assert litellm_smoke.compare_aliases([], []) == {"missing": [], "extra": [], "match": True}


def test_normalize_aliases_takes_pillar_lists_and_strings():
    assert litellm_smoke.normalize_aliases(PILLAR["models"]) == ["chat-small", "chat-large"]
    assert litellm_smoke.normalize_aliases("a, b,,a") == ["a", "b"]
    assert litellm_smoke.normalize_aliases(["x", {"name": "y"}, {"model": "no-name"}, 3]) == ["x", "y"]
    assert litellm_smoke.normalize_aliases(None) is None
    assert litellm_smoke.normalize_backends(PILLAR["backends"]) == BACKENDS
    assert litellm_smoke.normalize_backends("http://a:1/,http://b:2") == ["http://a:1", "http://b:2"]


def test_chat_targets():
    aliases = ["a", "b", "c"]
    assert litellm_smoke.chat_targets("first", aliases) == ["a"]
    assert litellm_smoke.chat_targets(None, aliases) == ["a"]
    assert litellm_smoke.chat_targets("all", aliases) == aliases
    assert litellm_smoke.chat_targets("b,c", aliases) == ["b", "c"]
    assert litellm_smoke.chat_targets(["c"], aliases) == ["c"]
    assert litellm_smoke.chat_targets("first", []) == []
    assert len(litellm_smoke.chat_targets("all", [str(i) for i in range(100)])) == PARSE.MAX_CHAT_MODELS


def test_target_parses_the_url():
    target = HTTP.Target("http://gw.example.internal:4000/v1/")
    assert (target.host, target.port, target.prefix, target.url) == (
        "gw.example.internal",
        4000,
        "",
        "http://gw.example.internal:4000",
    )
    assert HTTP.Target("https://[::1]/proxy").url == "https://[::1]:443/proxy"
    with pytest.raises(ValueError):
        HTTP.Target("ftp://gw:4000")


# -- redaction ----------------------------------------------------------------------------------


def test_redact_replaces_the_secret_everywhere():
    key = TEST_MASTER_KEY
    report = {
        "detail": f"Bearer {key} was refused",
        key: "as a key too",
        "checks": [{"nested": [f"x{key}y", 3, None, True]}, (key,)],
        "raw": f"{key}".encode(),
    }
    redacted = REDACT.redact_secret(report, key)
    assert key not in json.dumps(redacted)
    assert redacted["detail"] == "Bearer <redacted> was refused"
    assert redacted["<redacted>"] == "as a key too"
    assert redacted["checks"] == [{"nested": ["x<redacted>y", 3, None, True]}, ["<redacted>"]]
    assert redacted["raw"] == "<redacted>"
    assert report["detail"].startswith("Bearer sk-")  # the input is not changed


def test_redact_without_a_secret_changes_nothing():
    report = {"a": ["b", 1]}
    assert REDACT.redact_secret(report, None) is report
    assert REDACT.redact_secret(report, "") is report


# -- health, fanout, summary ------------------------------------------------------------------


HEALTH = {
    "healthy_endpoints": [
        {"api_base": "http://llm01:11434", "model": "ollama_chat/llama3.2:3b", "model_id": "chat-small@llm01:11434"},
        {"api_base": "http://llm02:11434/", "model": "ollama_chat/llama3.2:3b", "model_id": "chat-small@llm02:11434"},
    ],
    "unhealthy_endpoints": [
        {
            "api_base": "http://llm02:11434",
            "model": "ollama_chat/qwen2.5:7b",
            "model_id": "chat-large@llm02:11434",
            "error": "litellm.NotFoundError: model not found\nstack trace line 1\nline 2",
        }
    ],
    "healthy_count": 2,
    "unhealthy_count": 1,
}


def test_health_by_backend_groups_and_names_the_failing_deployments():
    grouped = litellm_smoke.health_by_backend(HEALTH)
    assert grouped["http://llm01:11434"] == {"healthy": 1, "unhealthy": 0, "failing": [], "errors": []}
    assert grouped["http://llm02:11434"] == {
        "healthy": 1,
        "unhealthy": 1,
        "failing": ["chat-large@llm02:11434 [ollama_chat/qwen2.5:7b]"],
        "errors": ["litellm.NotFoundError: model not found"],
    }
    assert litellm_smoke.health_by_backend({}) == {}
    assert litellm_smoke.health_by_backend(None) == {}


def test_fanout_verdict():
    healthy = {"http://a", "http://b"}
    assert litellm_smoke.fanout_verdict({"http://a": 6, "http://b": 4}, healthy, set(), 0)[0] == "pass"
    status, detail = litellm_smoke.fanout_verdict({"http://a": 10}, healthy, set(), 0)
    assert status == "fail" and "healthy backend(s) got no request: http://b" in detail
    status, detail = litellm_smoke.fanout_verdict({"http://a": 10}, {"http://a"}, {"http://b"}, 0)
    assert status == "warn" and "unhealthy per /health: http://b" in detail and "http://a 10/10" in detail
    status, detail = litellm_smoke.fanout_verdict({"http://a": 9}, healthy - {"http://b"}, set(), 1)
    assert status == "fail" and "1 request(s) failed" in detail
    # nothing answered: the failures say it, no starvation noise
    status, detail = litellm_smoke.fanout_verdict({}, healthy, set(), 10)
    assert status == "fail" and "got no request" not in detail
    status, detail = litellm_smoke.fanout_verdict({"http://a": 5, "http://c": 5}, {"http://a", "http://c"}, set(), 0,
                                                  configured=["http://a", "http://b"])
    assert status == "warn" and "unconfigured backend(s): http://c" in detail and "not in /health: http://b" in detail


@pytest.mark.parametrize("starved_rounds, expected_rounds, status", [(0, 1, "pass"), (2, 3, "pass"), (9, 4, "fail")])
def test_fanout_repeats_a_round_that_starved_a_backend(monkeypatch, starved_rounds, expected_rounds, status):
    """Usage-based routing with several workers can send a whole burst to one backend: more rounds, paused."""
    health = {"healthy_endpoints": [{"api_base": b, "model": "ollama_chat/m"} for b in BACKENDS]}
    monkeypatch.setattr(FANOUT, "health_get", lambda *a, **k: ({"status": 200}, health))
    calls = []

    def chat_once(utils, target, key, alias, timeout):
        calls.append(alias)
        rnd = (len(calls) - 1) // 4 + 1
        backend = BACKENDS[0] if rnd <= starved_rounds or len(calls) % 2 else BACKENDS[1]
        return {"ok": True, "backend": backend, "error": None}

    monkeypatch.setattr(CHAT, "chat_once", chat_once)
    sleeps = []
    monkeypatch.setattr(FANOUT.time, "sleep", sleeps.append)
    result = litellm_smoke.fanout("http://gw:4000", TEST_MASTER_KEY, ["chat-small"], BACKENDS, "chat-small", 4)
    assert result["status"] == status, result["detail"]
    assert result["requests"] == 4 * expected_rounds
    assert f"({expected_rounds} round(s))" in result["detail"]
    assert sleeps == [FANOUT.FANOUT_PAUSE_S] * max(0, expected_rounds - 2)


def test_summarize_and_format_summary():
    checks = [
        {"name": "listening", "status": "pass", "detail": "ok", "duration_ms": 0.2},
        {"name": "fanout", "status": "warn", "detail": "unhealthy per /health: http://b", "duration_ms": 150.0},
        {"name": "health", "status": "fail", "detail": "http://b unhealthy", "duration_ms": 30.5},
        {"name": "chat", "status": "skip", "detail": "no key", "duration_ms": 0.0},
    ]
    result, summary = litellm_smoke.summarize(checks)
    assert result == "FAIL"
    assert summary == "FAIL: 1 passed, 1 warned, 1 failed, 1 skipped of 4 checks (failed: health)"
    assert litellm_smoke.summarize(checks[:2]) == ("PASS", "PASS: 1 passed, 1 warned, 0 failed, 0 skipped of 2 checks")
    text = litellm_smoke.format_summary(
        {
            "url": "http://gw:4000",
            "result": result,
            "summary": summary,
            "started": "T",
            "duration_ms": 181,
            "checks": checks,
        }
    )
    lines = text.splitlines()
    assert lines[0] == "LiteLLM smoke test of http://gw:4000: FAIL"
    header = next(line for line in lines if line.startswith("check"))
    assert header.split() == ["check", "status", "duration_ms", "detail"]
    row = next(line for line in lines if line.startswith("health"))
    assert row.split()[:3] == ["health", "FAIL", "30.5"] and row.endswith("http://b unhealthy")
    # the columns line up
    assert len({line.index("FAIL") for line in lines if line.startswith("health")} | {header.index("status")}) == 1
    assert text.endswith(summary + "\n")


# --- reading a deployed gateway (pure parts) ------------------------------------

@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("LITELLM_LOG=ERROR\nLITELLM_MASTER_KEY=sk-abc\n", "sk-abc"),
        ('export LITELLM_MASTER_KEY="sk-abc"\n', "sk-abc"),
        (b"LITELLM_MASTER_KEY='sk-abc'\n", "sk-abc"),
        ("LITELLM_MASTER_KEY=\n", None),
        ("# LITELLM_MASTER_KEY=sk-abc\n", None),
    ],
)
def test_env_master_key(text, key):
    assert litellm_smoke.env_master_key(text) == key


def test_config_expectations_reads_aliases_and_backends_of_a_rendered_config():
    text = (REPO / "tests/golden/reference-config.yaml").read_text()
    aliases, backends = litellm_smoke.config_expectations(text)
    assert aliases == ["llama3.1-8b", "llama3.2-3b", "qwen2.5-7b", "mistral-7b", "phi3-mini"]
    assert backends == ["http://hx-llm01-server:11434", "http://hx-llm02-server:11434"]
    assert litellm_smoke.config_expectations("not: [valid") == (None, None)
    assert litellm_smoke.config_expectations("model_list: 3") == (None, None)


def test_unit_settings_reads_the_formula_unit():
    unit = (
        "[Service]\nEnvironmentFile=/etc/litellm/litellm.env\n"
        "ExecStart=/opt/litellm/venv/bin/litellm --config /etc/litellm/config.yaml --host 0.0.0.0 "
        "--port 4001 --num_workers 1\n"
    )
    assert litellm_smoke.unit_settings("Group=litellm\n" + unit) == {
        "env_file": "/etc/litellm/litellm.env",
        "config": "/etc/litellm/config.yaml",
        "bind_host": "0.0.0.0",
        "bind_port": 4001,
        "venv": "/opt/litellm/venv",
        "group": "litellm",
    }
    assert litellm_smoke.unit_settings("ExecStart=/x --port abc\n") == {}

"""Unit tests of litellm_smoke (module and state): the pure parts, and a run against a faked gateway."""

import json
import logging
import os
from unittest.mock import MagicMock

import pytest

from tests.conftest import REPO, SALT_UTILS, TEST_MASTER_KEY, load_salt_module, merged

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


def _chunk(content=None, role=None, finish=None):
    delta = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return "data: " + json.dumps({"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_parse_sse_concatenates_content_and_sees_done():
    text = "\n\n".join(
        [_chunk(role="assistant", content=""), _chunk("Hello "), _chunk("from "), _chunk("llm01"),
         _chunk(finish="stop"), "data: [DONE]"]
    ) + "\n\n"
    parsed = litellm_smoke.parse_sse(text)
    assert parsed == {"chunks": 5, "content": "Hello from llm01", "done": True, "done_last": True, "errors": []}


def test_parse_sse_ignores_comments_events_and_crlf():
    text = ": keep-alive\r\nevent: message\r\n" + _chunk("hi") + "\r\n\r\ndata:[DONE]\r\n"
    parsed = litellm_smoke.parse_sse(text)
    assert parsed["content"] == "hi" and parsed["done_last"] is True


def test_parse_sse_without_done_or_with_errors():
    assert litellm_smoke.parse_sse(_chunk("hi") + "\n")["done"] is False
    after = litellm_smoke.parse_sse("data: [DONE]\n" + _chunk("late") + "\n")
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


# -- settings from pillar ---------------------------------------------------------------------


def test_resolve_takes_what_is_missing_from_pillar(pillar_get):
    url, key, aliases, backends = litellm_smoke._resolve()
    assert url == "http://127.0.0.1:4100"
    assert key == TEST_MASTER_KEY
    assert aliases == ["chat-small", "chat-large"] and backends == BACKENDS
    # Salt 3008 masks pillar values ("**********") unless asked for plain ones
    pillar_get.assert_called_once_with("litellm", {}, unmask=True)
    pillar_get.reset_mock()
    given = litellm_smoke._resolve("http://gw:4000", "sk-given", ["x"], ["http://b"])
    assert given == ("http://gw:4000", "sk-given", ["x"], ["http://b"])
    pillar_get.assert_not_called()


def test_resolve_without_pillar_uses_the_formula_defaults_and_the_env(pillar_get, map_jinja, monkeypatch):
    pillar_get.side_effect = lambda key, default=None, **kwargs: default
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-from-env")
    # bind_host and bind_port of defaults.yaml, through map.jinja
    assert litellm_smoke._resolve() == ("http://127.0.0.1:4000", "sk-from-env", None, None)
    assert "litellm/map.jinja" in map_jinja.call_args.kwargs["string"]
    monkeypatch.delenv("LITELLM_MASTER_KEY")
    assert litellm_smoke._resolve()[1] is None


def test_resolve_on_a_salt_without_unmask(pillar_get):
    def old_pillar_get(key, default=None):
        return PILLAR if key == "litellm" else default

    pillar_get.side_effect = old_pillar_get
    assert litellm_smoke._resolve()[1] == TEST_MASTER_KEY


def test_plan_never_shows_the_key():
    planned = litellm_smoke.plan()
    assert planned["url"] == "http://127.0.0.1:4100" and planned["has_master_key"] is True
    assert planned["checks"] == list(RUN.CHECKS) and planned["chat_models"] == ["chat-small"]
    assert TEST_MASTER_KEY not in json.dumps(planned)


# -- a whole run against a faked gateway (no network) -----------------------------------------


class FakeGateway:
    """Answers like LiteLLM 1.108.7 without a DB; echoes the key in errors to test redaction."""

    def __init__(self, key, aliases=("chat-small", "chat-large"), backends=BACKENDS):
        self.key, self.aliases, self.backends = key, list(aliases), list(backends)
        self.turn = 0
        self.paths = []

    @staticmethod
    def _answer(status, body, headers=None):
        text = body if isinstance(body, str) else json.dumps(body)
        return {"status": status, "headers": headers or {}, "body": text, "ms": 5.0}

    def _auth(self, key):
        if not key:
            return self._answer(401, {"error": {"message": "No api key passed in.", "type": "auth_error"}})
        if key != self.key:
            return self._answer(400, {"error": {"message": f"No connected db. key={key}", "type": "no_db_connection"}})
        return None

    def request(self, target, method, path, timeout, master_key=None, body=None):
        self.paths.append((method, path))
        if path in ("/health/liveliness", "/health/readiness"):
            return self._answer(200, "\"I'm alive!\"")
        denied = self._auth(master_key)
        if denied:
            return denied
        if path == "/v1/models":
            return self._answer(200, {"data": [{"id": alias} for alias in self.aliases], "object": "list"})
        if path.startswith("/health"):
            return self._answer(200, {
                "healthy_endpoints": [{"api_base": b, "model": "ollama_chat/m", "model_id": b} for b in self.backends],
                "unhealthy_endpoints": [],
            })
        if isinstance(body, str):
            return self._answer(400, {"error": {"message": "Invalid JSON payload", "type": "bad_request_error"}})
        if body.get("model") not in self.aliases:
            return self._answer(400, {"error": {"message": "Invalid model name", "type": "invalid_request_error"}})
        if "messages" not in body:
            return self._answer(400, {"error": {"message": "Missing required parameter: 'messages'"}})
        self.turn += 1
        backend = self.backends[self.turn % len(self.backends)]
        answer = {"choices": [{"message": {"role": "assistant", "content": f"pong, your key is {master_key}"}}]}
        return self._answer(200, answer, {"x-litellm-model-api-base": backend, "x-litellm-overhead-duration-ms": "7.5"})

    def stream(self, target, path, timeout, master_key, body):
        denied = self._auth(master_key)
        if denied:
            return dict(denied, first_chunk_ms=None)
        text = _chunk("pong ") + "\n\n" + _chunk(master_key) + "\n\ndata: [DONE]\n\n"
        return {"status": 200, "headers": {"x-litellm-model-api-base": self.backends[0]}, "body": text, "ms": 9.0,
                "first_chunk_ms": 3.0}


@pytest.fixture
def fake_gateway(monkeypatch):
    gateway = FakeGateway(TEST_MASTER_KEY)
    monkeypatch.setattr(HTTP, "request", gateway.request)
    monkeypatch.setattr(HTTP, "stream_request", gateway.stream)
    monkeypatch.setattr(PROBES.socket, "create_connection", MagicMock())
    return gateway


def test_run_passes_against_a_good_gateway_and_never_shows_the_key(fake_gateway, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    report = litellm_smoke.run(chat_models="all", evidence_dir=str(tmp_path / "ev"), concurrency=4, latency_requests=5)
    assert report["result"] == "PASS", report
    assert [c["name"] for c in report["checks"]] == list(RUN.CHECKS)
    assert report["url"] == "http://127.0.0.1:4100"
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["models_auth"]["wrong_key_status"] == 400
    assert by_name["errors"]["codes"] == {"unknown_model": 400, "malformed_json": 400, "missing_messages": 400}
    assert by_name["latency"]["overhead_p50_ms"] == 7.5
    assert by_name["fanout"]["shares"] == {BACKENDS[0]: 2, BACKENDS[1]: 2}
    assert all(set(c) >= {"name", "status", "detail", "duration_ms"} for c in report["checks"])
    # The fake echoes the key in answers and stream chunks: nowhere to be seen.
    assert TEST_MASTER_KEY not in json.dumps(report)
    assert TEST_MASTER_KEY not in caplog.text
    evidence = report["evidence"]
    assert os.path.dirname(evidence) == str(tmp_path / "ev")
    assert os.stat(evidence).st_mode & 0o777 == 0o700
    for name in ("report.json", "summary.txt"):
        path = os.path.join(evidence, name)
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert TEST_MASTER_KEY not in open(path).read()
    assert json.load(open(os.path.join(evidence, "report.json")))["evidence"] == evidence


def test_run_reports_a_wrong_key_without_showing_it(fake_gateway):
    wrong = "sk-" + "1" * 40
    report = litellm_smoke.run(master_key=wrong, concurrency=2, latency_requests=2)
    by_name = {c["name"]: c for c in report["checks"]}
    assert report["result"] == "FAIL"
    assert by_name["models_auth"]["status"] == "fail" and "master key: 400" in by_name["models_auth"]["detail"]
    # 400 for the bad requests too, but for the key: not a pass
    assert by_name["errors"]["status"] == "fail" and "refused as unauthenticated" in by_name["errors"]["detail"]
    assert wrong not in json.dumps(report)


def test_run_names_missing_and_extra_aliases(fake_gateway):
    fake_gateway.aliases = ["chat-small", "chat-other"]
    report = litellm_smoke.run(concurrency=2, latency_requests=2)
    auth = next(c for c in report["checks"] if c["name"] == "models_auth")
    assert auth["status"] == "fail"
    assert auth["missing"] == ["chat-large"] and auth["extra"] == ["chat-other"]
    assert "missing alias(es): chat-large" in auth["detail"] and "extra alias(es): chat-other" in auth["detail"]


def test_run_without_a_key_fails_models_auth_and_skips_the_rest(fake_gateway, pillar_get):
    pillar_get.side_effect = lambda key, default=None, **kwargs: {"models": PILLAR["models"]}
    report = litellm_smoke.run()
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["models_auth"] == "fail"
    assert {statuses[n] for n in ("chat", "stream", "fanout", "errors", "latency", "health")} == {"skip"}
    assert report["result"] == "FAIL"


def test_run_skips_http_checks_when_nothing_listens(monkeypatch):
    refused = MagicMock(side_effect=ConnectionRefusedError(111, "refused"))
    monkeypatch.setattr(PROBES.socket, "create_connection", refused)
    monkeypatch.setattr(HTTP, "request", refused)
    report = litellm_smoke.run(url="http://127.0.0.1:1")
    statuses = [c["status"] for c in report["checks"]]
    assert statuses[:3] == ["fail"] * 3 and set(statuses[3:]) == {"skip"}
    assert report["summary"].startswith("FAIL: 0 passed")


def test_run_skips_the_rest_when_the_gateway_does_not_answer_http(monkeypatch):
    monkeypatch.setattr(PROBES.socket, "create_connection", MagicMock())
    hung = MagicMock(side_effect=TimeoutError("timed out"))
    monkeypatch.setattr(HTTP, "request", hung)
    report = litellm_smoke.run(url="http://127.0.0.1:1", timeout=60)
    statuses = [c["status"] for c in report["checks"]]
    assert statuses[:3] == ["pass", "fail", "fail"] and set(statuses[3:]) == {"skip"}
    assert "does not answer HTTP" in report["checks"][3]["detail"]
    assert hung.call_count == 2
    assert all(call.args[3] <= litellm_smoke.PROBE_TIMEOUT for call in hung.call_args_list)


def test_latency_stops_at_the_first_failure(fake_gateway, monkeypatch):
    calls = []

    def chat_once(utils, target, master_key, alias, timeout):
        calls.append(alias)
        ok = len(calls) < 3
        return {"ok": ok, "status": 200 if ok else 500, "backend": BACKENDS[0], "ms": 10.0 * len(calls),
                "overhead_ms": 2.0, "error": None if ok else "500 boom"}

    monkeypatch.setattr(CHAT, "chat_once", chat_once)
    result = litellm_smoke.latency(requests=10)
    assert len(calls) == 3
    assert result["status"] == "fail" and result["failures"] == 1
    assert result["detail"].startswith("request 3 of 10 failed (500 boom); chat-small x 10: p50 15.0 ms")


def test_write_evidence_makes_a_new_private_directory_per_run(tmp_path):
    report = {"result": "PASS", "summary": "PASS", "url": "u", "started": "s", "duration_ms": 1, "checks": []}
    first = litellm_smoke.write_evidence(report, str(tmp_path), "20250101T000000Z")
    second = litellm_smoke.write_evidence(report, str(tmp_path), "20250101T000000Z")
    assert os.path.basename(first) == "smoke-20250101T000000Z"
    assert os.path.basename(second) == "smoke-20250101T000000Z-1"
    assert sorted(os.listdir(first)) == ["report.json", "summary.txt"]


# -- the state -------------------------------------------------------------------------------


def _report(*statuses, evidence=None):
    checks = [
        {"name": f"check{i}", "status": status, "detail": f"detail {i}", "duration_ms": 1.0}
        for i, status in enumerate(statuses)
    ]
    result, summary = litellm_smoke.summarize(checks)
    return {"result": result, "summary": summary, "url": "http://gw:4000", "started": "T", "duration_ms": 12.0,
            "checks": checks, "evidence": evidence}


def test_state_passes_without_changes():
    run = MagicMock(return_value=_report("pass", "warn", evidence="/var/lib/smoke/smoke-x"))
    litellm_smoke_state.__salt__["litellm_smoke.run"] = run
    ret = litellm_smoke_state.passed("litellm", chat_models="all")
    assert ret["result"] is True and ret["changes"] == {}
    assert "passed" in ret["comment"] and "- check1 (warn): detail 1" in ret["comment"]
    assert "Evidence: /var/lib/smoke/smoke-x" in ret["comment"]
    assert run.call_args.kwargs["chat_models"] == "all" and run.call_args.kwargs["master_key"] is None


def test_state_fails_naming_every_failed_check():
    litellm_smoke_state.__salt__["litellm_smoke.run"] = MagicMock(return_value=_report("pass", "fail", "fail"))
    ret = litellm_smoke_state.passed("litellm")
    assert ret["result"] is False and ret["changes"] == {}
    assert "- check1: detail 1" in ret["comment"] and "- check2: detail 2" in ret["comment"]
    assert "FAILED" in ret["comment"]


def test_state_scrubs_a_key_given_to_it():
    report = _report("fail")
    report["checks"][0]["detail"] = f"leaked {TEST_MASTER_KEY}"
    litellm_smoke_state.__salt__["litellm_smoke.run"] = MagicMock(return_value=report)
    ret = litellm_smoke_state.passed("litellm", master_key=TEST_MASTER_KEY)
    assert TEST_MASTER_KEY not in ret["comment"] and "leaked <redacted>" in ret["comment"]


def test_state_in_test_mode_says_what_would_run_and_sends_nothing(fake_gateway):
    litellm_smoke_state.__opts__["test"] = True
    litellm_smoke_state.__salt__["litellm_smoke.run"] = MagicMock()
    ret = litellm_smoke_state.passed("litellm")
    assert ret["result"] is None and ret["changes"] == {}
    assert ret["comment"].startswith("Would run 11 smoke checks (listening, liveliness")
    assert "against http://127.0.0.1:4100 for chat-small, chat-large" in ret["comment"]
    assert TEST_MASTER_KEY not in ret["comment"]
    litellm_smoke_state.__salt__["litellm_smoke.run"].assert_not_called()
    assert fake_gateway.paths == []


def test_state_in_test_mode_warns_when_no_key_is_known(pillar_get):
    pillar_get.side_effect = lambda key, default=None, **kwargs: default
    litellm_smoke_state.__opts__["test"] = True
    ret = litellm_smoke_state.passed("litellm", url="http://gw:4000")
    assert ret["result"] is None
    assert "against http://gw:4000 for the aliases the gateway lists" in ret["comment"]
    assert "no master key is known" in ret["comment"]


def test_state_virtual_needs_the_module():
    litellm_smoke_state.__salt__ = {}
    assert litellm_smoke_state.__virtual__() == (False, "the litellm_smoke execution module is not loaded")


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

"""Unit tests of litellm_smoke's run and state: settings from pillar, a whole run against a faked gateway, the state."""

import json
import logging
import os
from unittest.mock import MagicMock

import pytest

from tests.conftest import TEST_MASTER_KEY
from tests.unit import smoke_common
from tests.unit.smoke_common import (
    BACKENDS,
    CHAT,
    HTTP,
    PILLAR,
    PROBES,
    RUN,
    litellm_smoke,
    litellm_smoke_state,
    sse_chunk,
)

# the loader's fixtures, bound in this module's scope (saltfactories asks for configure_loader_modules)
configure_loader_modules = smoke_common.configure_loader_modules
map_jinja = smoke_common.map_jinja
pillar_get = smoke_common.pillar_get


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
        text = sse_chunk("pong ") + "\n\n" + sse_chunk(master_key) + "\n\ndata: [DONE]\n\n"
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

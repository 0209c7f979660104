"""
litellm_smoke against a REAL LiteLLM proxy (from the shipped lock) in front of
two stand-in Ollama servers, all on loopback: every check passes on the
healthy pair, and each failure is detected when it is caused.

The venv is built once at /var/cache/litellm-salt/smoke-venv (uv, hashed
lock, bytecode compiled) and reused while the lock does not change.
"""

import json
import logging
import os
import secrets
import time
from pathlib import Path

import pytest

from tests.conftest import SALT_UTILS, load_salt_module, merged
from tests.functional.conftest import MODELS, STUB_MODELS, LiteLLM, ensure_venv, free_port, stub_control

ALIASES = [m["name"] for m in MODELS]

smoke = load_salt_module("modules", "litellm_smoke")
SMOKE_CHECKS = SALT_UTILS.litellm_smoke_run.CHECKS
smoke_state = load_salt_module("states", "litellm_smoke")


def start_gateway(venv, workdir, backends):
    """The proxy of these tests (1 worker) in front of ``backends``, started and ready
    (``ready_after``: its seconds to ready); bench/smoke.py uses it too."""
    settings = merged(
        {
            "bind_host": "127.0.0.1",
            "bind_port": free_port(),
            "backends": backends,
            "models": MODELS,
            "master_key": "sk-" + secrets.token_hex(24),
            "request_timeout": 15,
            # /health asks the backends on every call (no stale cache),
            # and a 404 cools a deployment down for 1 s only.
            "health_check_interval": 0,
            "cooldown_time": 1,
        }
    )
    gateway = LiteLLM(venv, workdir, settings).start()
    gateway.wait_ready()
    return gateway


@pytest.fixture(scope="module")
def gateway(stubs, tmp_path_factory):
    gw = start_gateway(ensure_venv(), tmp_path_factory.mktemp("litellm"), [s.url for s in stubs])
    print(f"\nLiteLLM ready after {gw.ready_after} s")
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def pillar_tree(gateway, stubs, tmp_path_factory):
    """The gateway's settings as pillar (overrides the functional layer's site pillar)."""
    path = tmp_path_factory.mktemp("smoke-pillar")
    pillar = {
        "bind_host": "127.0.0.1",
        "bind_port": gateway.port,
        "master_key": gateway.key,
        "models": MODELS,
        "backends": [s.url for s in stubs],
    }
    (path / "top.sls").write_text("base:\n  '*':\n    - litellm\n")
    (path / "litellm.sls").write_text(json.dumps({"litellm": pillar}))
    return path


@pytest.fixture
def run_smoke(gateway, stubs, caplog):
    """Run the smoke test; assert the key appears nowhere in what it gives back or logs."""
    caplog.set_level(logging.DEBUG)

    def _run(**kwargs):
        kwargs.setdefault("url", gateway.url)
        kwargs.setdefault("master_key", gateway.key)
        kwargs.setdefault("models", ALIASES)
        kwargs.setdefault("backends", [s.url for s in stubs])
        kwargs.setdefault("timeout", 10)
        report = smoke.run(**kwargs)
        assert_no_key(report, gateway.key, kwargs["master_key"])
        assert gateway.key not in caplog.text and kwargs["master_key"] not in caplog.text
        return report

    return _run


def assert_no_key(report, *keys):
    text = json.dumps(report)
    for key in keys:
        assert key not in text
    if report.get("evidence"):
        for path in Path(report["evidence"]).iterdir():
            content = path.read_text()
            for key in keys:
                assert key not in content


def checks(report):
    return {c["name"]: c for c in report["checks"]}


def restore(stubs):
    """Both stubs up with every model, then give the 1 s cooldown time to pass."""
    for stub in stubs:
        if stub.proc.poll() is not None:
            stub.start()
        stub_control(stub.url, "/_stub/config", {"models": STUB_MODELS, "fail_status": None})
    time.sleep(1.5)


# -- the healthy pair ---------------------------------------------------------------


def test_every_check_passes_on_the_healthy_pair(run_smoke, stubs, tmp_path):
    started = time.monotonic()
    report = run_smoke(chat_models="all", evidence_dir=str(tmp_path / "evidence"))
    elapsed = time.monotonic() - started
    print(f"\nhealthy run(): {elapsed:.2f} s (report duration_ms {report['duration_ms']})")
    print(open(os.path.join(report["evidence"], "summary.txt")).read())
    by_name = checks(report)
    assert report["result"] == "PASS", report["summary"] + json.dumps(report["checks"], indent=1)
    assert [c["status"] for c in report["checks"] if c["name"] != "client_key"] == ["pass"] * (len(SMOKE_CHECKS) - 1)
    assert list(by_name) == list(SMOKE_CHECKS)
    # no client keys here (no hook loaded): the smoke key's check says so (test_shared_state_live runs it)
    assert by_name["client_key"]["status"] == "skip"
    auth = by_name["models_auth"]
    assert (auth["no_key_status"], auth["master_key_status"]) == (401, 200)
    assert auth["wrong_key_status"] == 400  # LiteLLM 1.108.7 without a DB: "No connected db."
    assert sorted(auth["aliases"]) == sorted(ALIASES)
    assert set(by_name["chat"]["models"]) == set(ALIASES)
    assert by_name["stream"]["chunks"] > 0 and by_name["stream"]["backend"] in {s.url for s in stubs}
    fan = by_name["fanout"]
    assert fan["failures"] == 0 and set(fan["shares"]) == {s.url for s in stubs}
    assert by_name["errors"]["codes"] == {"unknown_model": 400, "malformed_json": 400, "missing_messages": 400}
    lat = by_name["latency"]
    assert lat["failures"] == 0 and lat["p50_ms"] > 0 and lat["overhead_p50_ms"] is not None
    assert by_name["health"]["unhealthy_count"] == 0 and by_name["health"]["healthy_count"] == 4
    assert elapsed < 30
    # evidence: private directory and files
    evidence = Path(report["evidence"])
    assert evidence.parent == tmp_path / "evidence" and evidence.name.startswith("smoke-")
    assert oct(evidence.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in evidence.iterdir()) == ["report.json", "summary.txt"]
    for path in evidence.iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads((evidence / "report.json").read_text())["result"] == "PASS"


def test_the_state_passes_and_changes_nothing(gateway, stubs):
    smoke_state.__salt__ = {"litellm_smoke.run": smoke.run, "litellm_smoke.plan": smoke.plan}
    smoke_state.__opts__ = {"test": False}
    ret = smoke_state.passed(
        "litellm", url=gateway.url, master_key=gateway.key, models=ALIASES, backends=[s.url for s in stubs], timeout=10
    )
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"] == {}
    assert gateway.key not in ret["comment"]


def test_through_the_loader_everything_comes_from_pillar(modules, states, gateway, caplog):
    """Salt 3008 masks pillar values outside templates: the module must ask for plain ones."""
    caplog.set_level(logging.DEBUG)
    report = modules.litellm_smoke.run(chat_models="all", timeout=10)
    assert report["url"] == gateway.url
    assert report["result"] == "PASS", report["summary"] + json.dumps(report["checks"], indent=1)
    assert_no_key(report, gateway.key)
    ret = states.litellm_smoke.passed(name="litellm", timeout=10)
    assert ret.result is True and ret.changes == {}, ret.comment
    assert gateway.key not in ret.comment and gateway.key not in caplog.text


# -- failures, each detected when caused ----------------------------------------------


@pytest.mark.parametrize("how", ["stopped", "answers 500"])
def test_one_backend_down_is_reported_and_requests_still_succeed(run_smoke, stubs, how):
    down = stubs[1]
    if how == "stopped":
        down.stop()
    else:
        stub_control(down.url, "/_stub/config", {"fail_status": 500})
    try:
        report = run_smoke(chat_models="all")
    finally:
        restore(stubs)
    by_name = checks(report)
    assert report["result"] == "FAIL"
    fan = by_name["fanout"]
    assert fan["failures"] == 0, fan["detail"]
    assert fan["status"] == "warn" and down.url in fan["unhealthy_backends"] and down.url in fan["detail"]
    assert set(fan["shares"]) == {stubs[0].url}
    health = by_name["health"]
    assert health["status"] == "fail" and f"{down.url} unhealthy" in health["detail"]
    assert health["backends"][down.url]["unhealthy"] == 2
    for name in ("listening", "liveliness", "readiness", "models_auth", "chat", "stream", "errors", "latency"):
        assert by_name[name]["status"] == "pass", by_name[name]


def test_a_model_removed_from_one_backend_is_reported(run_smoke, stubs):
    stub = stubs[1]
    stub_control(stub.url, "/_stub/config", {"models": [STUB_MODELS[0]]})
    try:
        report = run_smoke(chat_models="all")
    finally:
        restore(stubs)
    health = checks(report)["health"]
    assert health["status"] == "fail"
    assert f"{stub.url} unhealthy" in health["detail"] and STUB_MODELS[1] in health["detail"]
    assert health["backends"][stub.url] == {
        "healthy": 1,
        "unhealthy": 1,
        "failing": [f"chat-tiny@127.0.0.1_{stub.port} [ollama_chat/{STUB_MODELS[1]}]"],
    }
    assert health["backends"][stubs[0].url]["unhealthy"] == 0


def test_a_wrong_master_key_fails_models_auth(run_smoke, gateway):
    wrong = "sk-" + secrets.token_hex(24)
    report = run_smoke(master_key=wrong)
    by_name = checks(report)
    assert report["result"] == "FAIL"
    auth = by_name["models_auth"]
    assert auth["status"] == "fail" and auth["master_key_status"] == 400
    assert "master key: 400" in auth["detail"]
    # LiteLLM without a DB answers the bad requests 400 too, but for the key
    for name in ("chat", "stream", "fanout", "errors", "latency", "health"):
        assert by_name[name]["status"] == "fail"
    assert "refused as unauthenticated" in by_name["errors"]["detail"]


def test_an_alias_mismatch_fails_models_auth_naming_them(run_smoke):
    report = run_smoke(models=["chat-small", "chat-gone"])
    auth = checks(report)["models_auth"]
    assert auth["status"] == "fail"
    assert (auth["missing"], auth["extra"]) == (["chat-gone"], ["chat-tiny"])
    assert "missing alias(es): chat-gone" in auth["detail"] and "extra alias(es): chat-tiny" in auth["detail"]


def test_the_state_fails_naming_every_failed_check(gateway, stubs):
    smoke_state.__salt__ = {"litellm_smoke.run": smoke.run}
    smoke_state.__opts__ = {"test": False}
    stubs[1].stop()
    try:
        ret = smoke_state.passed(
            "litellm", url=gateway.url, master_key=gateway.key, models=ALIASES, backends=[s.url for s in stubs],
            timeout=10,
        )
    finally:
        restore(stubs)
    assert ret["result"] is False and ret["changes"] == {}
    assert "FAILED" in ret["comment"] and f"- health: {stubs[1].url} unhealthy" in ret["comment"]
    assert "- fanout (warn):" in ret["comment"]
    assert gateway.key not in ret["comment"]


def test_a_stopped_gateway_fails_fast(run_smoke, gateway, tmp_path):
    """Last: stops the module's gateway for good."""
    gateway.stop()
    started = time.monotonic()
    report = run_smoke(evidence_dir=str(tmp_path))
    elapsed = time.monotonic() - started
    by_name = checks(report)
    assert report["result"] == "FAIL"
    assert by_name["listening"]["status"] == "fail" and "Connection refused" in by_name["listening"]["detail"]
    assert by_name["liveliness"]["status"] == "fail" and by_name["readiness"]["status"] == "fail"
    assert {by_name[n]["status"] for n in SMOKE_CHECKS if n not in ("listening", "liveliness", "readiness")} == {"skip"}
    assert elapsed < 2, elapsed
    assert "FAIL" in (Path(report["evidence"]) / "summary.txt").read_text()

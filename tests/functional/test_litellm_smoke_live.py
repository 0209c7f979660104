"""
litellm_smoke against a REAL LiteLLM proxy (from the shipped lock) in front of
two stand-in Ollama servers, all on loopback: every check passes on the
healthy pair, and each failure is detected when it is caused.

The venv is built once at /var/cache/litellm-salt/smoke-venv (uv, hashed
lock, bytecode compiled) and reused while the lock does not change.
"""

import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, SALT_UTILS, load_salt_module, merged
from tests.ollama_stub import start_stub_process, stop_stub_process

LOCK = REPO / "salt" / "litellm" / "files" / "locks" / "litellm-1.108.7.txt"
UV = REPO / ".venv" / "bin" / "uv"
CACHE = Path("/var/cache/litellm-salt")
VENV = CACHE / "smoke-venv"
MARKER = VENV / ".smoke-lock.sha256"
MODELS = [
    {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
    {"name": "chat-tiny", "provider": "ollama", "model": "qwen2.5:0.5b"},
]
ALIASES = [m["name"] for m in MODELS]
STUB_MODELS = [m["model"] for m in MODELS]
READY_TIMEOUT = 120

litellm_config = load_salt_module("modules", "litellm_config")
smoke = load_salt_module("modules", "litellm_smoke")
SMOKE_CHECKS = SALT_UTILS.litellm_smoke_run.CHECKS
smoke_state = load_salt_module("states", "litellm_smoke")


def _python():
    """The machine's python3 (the one the formula uses), not a pyenv shim."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")


def ensure_venv():
    """Build the LiteLLM venv from the lock unless the cached one matches it."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "smoke-venv.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another test run may be building it
        if MARKER.exists() and MARKER.read_text().strip() == digest and (VENV / "bin" / "litellm").exists():
            return VENV
        shutil.rmtree(VENV, ignore_errors=True)
        env = dict(os.environ, UV_NATIVE_TLS="1")
        for argv in (
            [str(UV), "venv", "-q", "-p", _python(), str(VENV)],
            [str(UV), "pip", "sync", "-q", "--require-hashes", "--compile-bytecode",
             "--python", str(VENV / "bin" / "python"), str(LOCK)],
        ):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                shutil.rmtree(VENV, ignore_errors=True)
                raise RuntimeError(f"{argv[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
        MARKER.write_text(digest + "\n")
    return VENV


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stub_control(url, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


class Stub:
    def __init__(self, name):
        self.name = name
        self.proc, self.url = start_stub_process(name, STUB_MODELS)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self):
        stop_stub_process(self.proc)

    def start(self):
        for _ in range(50):  # the port may linger for a moment
            try:
                self.proc, _ = start_stub_process(self.name, STUB_MODELS, port=self.port)
                return
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError(f"stub {self.name} did not come back on port {self.port}")


class Gateway:
    """A LiteLLM proxy process; stopped by PID."""

    def __init__(self, venv, workdir, backends):
        self.key = "sk-" + secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = merged(
            {
                "bind_host": "127.0.0.1",
                "bind_port": self.port,
                "backends": backends,
                "models": MODELS,
                "master_key": self.key,
                "request_timeout": 15,
                # /health asks the backends on every call (no stale cache),
                # and a 404 cools a deployment down for 1 s only.
                "health_check_interval": 0,
                "cooldown_time": 1,
            }
        )
        assert litellm_config.check_settings(settings) == []
        self.config = workdir / "config.yaml"
        self.config.write_text(litellm_config.config_text(settings))
        self.log = workdir / "litellm.log"
        env = {
            "PATH": f"{venv}/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "LITELLM_MASTER_KEY": self.key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OLLAMA_API_BASE": backends[0],
            "LITELLM_MODE": "PRODUCTION",
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY_DISABLED": "true",
            "NO_COLOR": "1",
        }
        argv = [str(venv / "bin" / "litellm"), "--config", str(self.config), "--host", "127.0.0.1",
                "--port", str(self.port), "--num_workers", "1"]
        with open(self.log, "wb") as log_file:
            self.proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.started = time.monotonic()
        self.ready_after = self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/health/readiness", timeout=2) as response:
                    if response.status == 200:
                        return round(time.monotonic() - self.started, 1)
            except OSError:
                pass
            time.sleep(0.25)
        tail = self.log.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"LiteLLM not ready (rc={self.proc.returncode}):\n{tail}")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def stubs():
    pair = [Stub("llm01"), Stub("llm02")]
    yield pair
    for stub in pair:
        stub.stop()


@pytest.fixture(scope="module")
def gateway(stubs, tmp_path_factory):
    venv = ensure_venv()
    gw = Gateway(venv, tmp_path_factory.mktemp("litellm"), [s.url for s in stubs])
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

"""
Overload (issue 19) on a REAL LiteLLM proxy (from the shipped lock) under
bare uvicorn (``python -m uvicorn litellm.proxy.proxy_server:app``, as the
unit starts it), 2 workers, with the formula's config, its capacity plan's
uvicorn flags, backend-pool environment and open-files limit (set as
LimitNOFILE sets it: soft and hard), in front of two stand-in Ollama servers
that stream one chunk a second:

- a burst 15x above the admission limit: every request is served or refused
  with 503, OpenAI-shaped and with Retry-After; none reset, none timed out,
  no "too many open files";
- the backends see no more connections than the gateway admits (the pool);
- the openai SDK gets the refusal as a 503 error and, retrying, is served.
"""

import os
import resource
import secrets
import subprocess
import threading
import time
import urllib.request

import openai
import pytest

from tests import burst
from tests.conftest import load_salt_module, merged
from tests.functional.conftest import MODELS, READY_TIMEOUT, STUB_MODELS, ensure_venv, free_port, stub_control
from tests.ollama_stub import start_stub_process, stop_stub_process

litellm_config = load_salt_module("modules", "litellm_config")
capacity = load_salt_module("utils", "litellm_capacity")
WORKERS = 2
IN_FLIGHT = 20  # per worker, so that a burst of 600 is 15x the admission
BURST = 600
MASTER_KEY = "sk-" + secrets.token_hex(24)


class UvicornGateway:
    """LiteLLM under bare uvicorn with the formula's capacity; stopped by its process group."""

    def __init__(self, venv, workdir, backends):
        self.port = free_port()
        self.settings = merged({
            "bind_host": "127.0.0.1", "bind_port": self.port, "backends": backends, "models": MODELS,
            "master_key": MASTER_KEY, "request_timeout": 60, "health_check_interval": 0,
            "service": {"workers": WORKERS},
            "capacity": {"memory_mib": 23000, "in_flight_per_worker": IN_FLIGHT, "queued_per_worker": IN_FLIGHT},
        })
        assert litellm_config.check_settings(self.settings) == []
        self.plan = litellm_config.capacity(self.settings)
        config = workdir / "config.yaml"
        config.write_text(litellm_config.config_text(self.settings))
        env = {
            "PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(workdir), "CONFIG_FILE_PATH": str(config),
            "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OLLAMA_API_BASE": backends[0],
            "LITELLM_MODE": "PRODUCTION", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY_DISABLED": "true",
            **capacity.pool_environment(self.plan),
        }
        argv = [str(venv / "bin" / "python"), "-m", "uvicorn", "litellm.proxy.proxy_server:app",
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(WORKERS),
                *capacity.uvicorn_flags(self.plan)]
        nofile = int(self.plan["nofile"])
        self.log = workdir / "litellm.log"
        with open(self.log, "wb") as log_file:
            self.proc = subprocess.Popen(
                argv, cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)),
            )
        self.wait_ready()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self):
        deadline, answered = time.monotonic() + READY_TIMEOUT, 0
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/health/readiness", timeout=2) as response:
                    answered = answered + 1 if response.status == 200 else 0
            except OSError:
                answered = 0
            # every worker up (uvicorn logs each one's start): one answer may come from one worker alone
            if answered >= 2 and self.started() >= WORKERS:
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"LiteLLM not ready:\n{self.log.read_text(errors='replace')[-3000:]}")

    def started(self):
        """How many workers finished their start (uvicorn's "Application startup complete.")."""
        return self.log.read_text(errors="replace").count("Application startup complete.")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def stubs():
    started = [start_stub_process(name, STUB_MODELS, chunk_delay_ms=1000, stderr=subprocess.DEVNULL)
               for name in ("llm01", "llm02")]
    yield [url for _, url in started]
    for proc, _ in started:
        stop_stub_process(proc)


@pytest.fixture(scope="module")
def gateway(stubs, tmp_path_factory):
    gw = UvicornGateway(ensure_venv(), tmp_path_factory.mktemp("overload"), stubs)
    yield gw
    gw.stop()


def stub_peak(url):
    return stub_control(url, "/_stub/stats")["peak_connections"]


def reset(url):
    stub_control(url, "/_stub/reset", {})


def test_the_plan_is_what_the_gateway_runs_with(gateway):
    assert gateway.plan["admitted"] == WORKERS * IN_FLIGHT and gateway.plan["queued"] == WORKERS * IN_FLIGHT
    assert gateway.plan["nofile"] == 16 * 2 * IN_FLIGHT * 2 + 1024


def test_a_burst_above_admission_is_served_or_refused_never_dropped(gateway, stubs):
    for url in stubs:
        reset(url)
    idle = sum(stub_peak(url) for url in stubs)  # keep-alive connections of LiteLLM's start (model info)
    burst.raise_nofile(4 * BURST)
    results, wall = burst.burst("127.0.0.1", gateway.port, MASTER_KEY, "chat-small", BURST, timeout=90)
    counts = burst.summary(results)
    assert (counts["reset"], counts["timeout"], counts["other"]) == (0, 0, 0), counts
    assert counts["served"] + counts["refused"] == BURST
    assert counts["served"] >= gateway.plan["admitted"], counts
    assert counts["refused_503"] == counts["refused"] and counts["refused_bare"] == 0, counts
    assert wall < 60, f"the burst took {wall:.0f} s"
    # backend connections pooled and bounded at the admitted requests
    peaks = [stub_peak(url) for url in stubs]
    assert sum(peaks) <= gateway.plan["admitted"] + idle, (peaks, idle)
    assert "too many open files" not in gateway.log.read_text(errors="replace").lower()


def stub_configure(url, **changes):
    stub_control(url, "/_stub/config", changes)


def chats_arrived(stubs):
    """Chat requests the backends have received (counted on arrival, before the stand-in's delay)."""
    return sum(stub_control(url, "/_stub/stats")["requests"].get("/api/chat", 0) for url in stubs)


def test_the_openai_sdk_retries_a_refusal_and_is_served(gateway, stubs):
    # the backends hold every admitted request for 20 s: the slots stay taken however slow this machine is
    for url in stubs:
        reset(url)
        stub_configure(url, delay_ms=20000)
    fillers = []

    def fill():
        filler = threading.Thread(
            target=burst.burst, args=("127.0.0.1", gateway.port, MASTER_KEY, "chat-small",
                                      3 * gateway.plan["admitted"]),
            kwargs={"timeout": 90},
        )
        filler.start()
        fillers.append(filler)

    fill()
    try:
        # every slot taken: the admitted requests have reached the backends (and wait there). Each
        # worker admits its share of what it accepts: a worker slow to accept under load can be left
        # with free slots after one burst, so another burst tops them up (the rest is refused).
        deadline = time.monotonic() + 60
        topped_up = time.monotonic()
        while chats_arrived(stubs) < gateway.plan["admitted"]:
            assert time.monotonic() < deadline, f"the bursts never filled the admission ({chats_arrived(stubs)})"
            if time.monotonic() - topped_up > 10:
                fill()
                topped_up = time.monotonic()
            time.sleep(0.2)
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "hi"}])
        response = refused.value.response
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.json()["error"]["type"] == "overloaded_error"
        for url in stubs:
            stub_configure(url, delay_ms=0)
        patient = client.with_options(max_retries=30)
        t0 = time.monotonic()
        answer = patient.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content.startswith("Hello from llm0")
        assert time.monotonic() - t0 >= 1  # it was refused and retried after Retry-After
    finally:
        for url in stubs:
            stub_configure(url, delay_ms=0)
        for filler in fillers:
            filler.join(timeout=120)

"""
The gateway's edge on a REAL LiteLLM (from the shipped lock, which has
prometheus_client) under bare uvicorn (2 workers), started with the
arguments and environment the formula's pure functions give
(``litellm_unit.tls_args``, ``litellm_edge.metrics_env``, ``metrics_argv``,
``info_script``), in front of two stand-in Ollama servers, all on loopback:

- the openai SDK over https with the site CA works; without it, verification fails;
- the listener refuses TLS 1.1 and speaks TLS 1.2 and 1.3;
- LiteLLM's own metrics server over the workers' directory answers without any
  key and counts a chat per alias, backend and client, with the info metric;
- the TLS key is in no argv and no log.

The venv is the functional tests' one (smoke-venv, from the shipped lock).
"""

import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.conftest import REPO, SALT_UTILS, load_salt_module, merged
from tests.functional.conftest import MODELS, READY_TIMEOUT, Stub, ensure_venv, free_port
from tests.harness import pki

WORKERS = 2
edge = SALT_UTILS.litellm_edge
unit = SALT_UTILS.litellm_unit
litellm_config = load_salt_module("modules", "litellm_config")


class EdgeGateway:
    """LiteLLM under bare uvicorn with TLS, plus its metrics server; both stopped by PID."""

    def __init__(self, venv, workdir, backends):
        self.workdir = workdir
        self.ca = pki.make_ca(workdir / "ca")
        cert, key = self.ca.issue(workdir / "server", ["localhost", "127.0.0.1"], valid_days=90)
        self.key_text = key.read_text()
        self.master_key = "sk-" + secrets.token_hex(24)
        self.port, self.metrics_port = free_port(), free_port()
        self.settings = merged({
            "bind_host": "127.0.0.1", "bind_port": self.port, "base_url": f"https://localhost:{self.port}",
            "backends": backends, "models": MODELS, "master_key": self.master_key, "request_timeout": 15,
            "health_check_interval": 0, "cooldown_time": 1, "venv": str(venv), "config_dir": str(workdir),
            "service": {"name": f"litellm-edge-{secrets.token_hex(3)}"},
            "ca_certificates": {"test-ca": self.ca.cert_path.read_text()},
            "tls": {"enabled": True, "certificate": cert.read_text(), "key": self.key_text},
            "metrics": {"enabled": True, "bind_host": "127.0.0.1", "port": self.metrics_port},
        })
        # the formula's own paths for validation (it refuses /tmp); the files go to workdir here
        assert litellm_config.check_settings(dict(self.settings, config_dir="/etc/litellm",
                                                  venv="/opt/litellm/venv")) == []
        files = unit.tls_files(self.settings)
        shutil.copy(cert, files["certificate"])
        shutil.copy(key, files["key"])
        (workdir / "config.yaml").write_text(litellm_config.config_text(self.settings))
        self.prom_dir = Path(edge.multiproc_dir(self.settings))
        self.prom_dir.mkdir(parents=True)
        env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(workdir), "LITELLM_MASTER_KEY": self.master_key,
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OLLAMA_API_BASE": backends[0], "LITELLM_MODE": "PRODUCTION",
               "LITELLM_LOG": "INFO", "LITELLM_TELEMETRY_DISABLED": "true", "NO_COLOR": "1",
               "CONFIG_FILE_PATH": str(workdir / "config.yaml"), **edge.metrics_env(self.settings)}
        self.argv = [str(venv / "bin" / "python"), "-m", "uvicorn", "litellm.proxy.proxy_server:app",
                     "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(WORKERS),
                     *unit.tls_args(self.settings)]
        self.log = workdir / "litellm.log"
        with open(self.log, "wb") as log_file:
            self.proc = subprocess.Popen(self.argv, cwd=workdir, env=env, stdout=log_file,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        subprocess.run([str(venv / "bin" / "python"), "-c", edge.info_script(self.settings)], check=True,
                       env={**env, "PATH": env["PATH"]}, timeout=60)
        self.metrics_argv = edge.metrics_argv(self.settings)
        with open(workdir / "metrics.log", "wb") as log_file:
            self.metrics_proc = subprocess.Popen(self.metrics_argv, cwd=workdir, env=env, stdout=log_file,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.ready_after = self.wait_ready()

    def client_context(self, with_ca=True):
        context = ssl.create_default_context()
        if with_ca:
            context.load_verify_locations(cadata=self.ca.cert_path.read_text())
        return context

    def wait_ready(self):
        deadline, started = time.monotonic() + READY_TIMEOUT, time.monotonic()
        context = self.client_context()
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"https://localhost:{self.port}/health/readiness", timeout=2,
                                            context=context) as response:
                    if response.status == 200:
                        return round(time.monotonic() - started, 1)
            except OSError:
                pass
            time.sleep(0.25)
        tail = self.log.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"LiteLLM not ready (rc={self.proc.returncode}):\n{tail}")

    def scrape(self):
        with urllib.request.urlopen(edge.metrics_url(self.settings), timeout=10) as response:
            return response.status, response.read().decode()

    def stop(self):
        for proc in (self.metrics_proc, self.proc):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        shutil.rmtree(self.prom_dir.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    stubs = [Stub("llm01"), Stub("llm02")]
    try:
        gw = EdgeGateway(ensure_venv(), tmp_path_factory.mktemp("edge"), [s.url for s in stubs])
        print(f"\nLiteLLM (bare uvicorn, TLS, {WORKERS} workers) ready after {gw.ready_after} s")
        yield gw
        gw.stop()
    finally:
        for stub in stubs:
            stub.stop()


def sdk(gateway, with_ca=True):
    return openai.OpenAI(base_url=f"https://localhost:{gateway.port}/v1", api_key=gateway.master_key,
                         max_retries=0, timeout=20,
                         http_client=openai.DefaultHttpxClient(verify=gateway.client_context(with_ca)))


def test_the_openai_sdk_over_https_with_the_site_ca(gateway):
    reply = sdk(gateway).chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def test_without_the_site_ca_verification_fails(gateway):
    with pytest.raises(openai.APIConnectionError) as caught:
        sdk(gateway, with_ca=False).models.list()
    assert "CERTIFICATE_VERIFY_FAILED" in repr(caught.value.__cause__) or "certificate verify failed" in str(
        caught.value.__cause__)


def _handshake(gateway, version):
    context = gateway.client_context()
    context.minimum_version = context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer it: the server must refuse
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.version()


def test_the_listener_speaks_tls_1_2_and_1_3_only(gateway):
    assert _handshake(gateway, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert _handshake(gateway, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    for old in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
        with pytest.raises(ssl.SSLError):
            _handshake(gateway, old)


def _sample(text, name, **labels):
    """The sum of the samples of ``name`` whose labels include ``labels`` (None: no such sample)."""
    values = []
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            values.append(float(match.group(2)))
    return sum(values) if values else None


def test_metrics_count_a_chat_per_alias_and_backend_merged_over_workers(gateway):
    status, before = gateway.scrape()
    assert status == 200
    client = sdk(gateway)
    for _ in range(4):  # 4 chats on 2 workers: both write samples
        client.chat.completions.create(model="chat-tiny", messages=[{"role": "user", "content": "count me"}])
    backend_state = {"api_base": f"{gateway.settings['backends'][0]}/api/chat"}
    counted_before = _sample(before, "litellm_proxy_total_requests_metric_total", requested_model="chat-tiny") or 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # every series the asserts below read: the workers write them one callback after another
        _, after = gateway.scrape()
        total = _sample(after, "litellm_proxy_total_requests_metric_total", requested_model="chat-tiny")
        if (total is not None and total - counted_before >= 4
                and (_sample(after, "litellm_request_total_latency_metric_count", model_group="chat-tiny") or 0) >= 4
                and _sample(after, "litellm_deployment_state", **backend_state) is not None):
            break
        time.sleep(0.5)
    (gateway.workdir / "scrape.txt").write_text(after)
    assert total is not None and total >= 4, after[-3000:]
    per_backend = [line for line in after.splitlines() if line.startswith("litellm_deployment_success_responses_total")
                   and 'model_group="chat-tiny"' in line]
    assert per_backend and all("api_base=" in line for line in per_backend), per_backend
    # one series per backend (model_id = alias@backend), summed over the workers (no pid label)
    assert 'pid="' not in "".join(line for line in after.splitlines()
                                  if line.startswith("litellm_proxy_total_requests_metric_total"))
    assert _sample(after, "litellm_request_total_latency_metric_count", model_group="chat-tiny") >= 4
    assert _sample(after, "litellm_deployment_state", **backend_state) == 0
    assert _sample(after, edge.INFO_METRIC, formula_release=edge.FORMULA_RELEASE, litellm_version="1.108.7") == 1


def test_the_tls_key_is_in_no_argv_and_no_log(gateway):
    body = "".join(line for line in gateway.key_text.splitlines() if not line.startswith("-----"))
    for argv in (gateway.argv, gateway.metrics_argv):
        assert not any(body[:40] in arg or "PRIVATE KEY" in arg for arg in argv)
    for log in (gateway.log, gateway.workdir / "metrics.log"):
        text = log.read_text(errors="replace")
        assert body[:40] not in text and "PRIVATE KEY" not in text


def test_the_lock_ships_prometheus_client():
    for lock in (REPO / "salt" / "litellm" / "files" / "locks").glob("litellm-*[0-9].txt"):
        assert re.search(r"^prometheus-client==\S+ \\\n    --hash=sha256:", lock.read_text(), re.M), lock.name

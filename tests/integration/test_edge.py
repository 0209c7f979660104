"""
The gateway's edge on a real systemd host of its own (one per module), applied
with salt-ssh, the TLS key in the GPG-encrypted pillar:

- a bad certificate/key pair, an expired certificate and a certificate whose
  SANs miss the base_url host each stop the run at validation, naming the key,
  and nothing on the host changes;
- with litellm:tls and litellm:metrics: the chain and key are on the host
  (key root:litellm 0640), claimed in the ownership record; the metrics unit
  runs; a second apply changes nothing;
- a real Prometheus (Debian's package, started here on loopback, stopped by
  PID) scrapes the gateway's metrics endpoint with no key, and a PromQL query
  over its HTTP API returns the count of the chats made here, by alias and backend;
- the TLS key is nowhere it should not be; clean removes the files and the unit.

- the openai SDK over https with the site CA works; without it, verification fails;
- a certificate renewal (a new key and serial from the same CA) applied under
  a client load over https (verified against the site CA) is a rolling
  reload: no request fails, no stream is cut, the supervisor stays, and the
  listener then serves the new certificate.
"""

import hashlib
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import openai
import pytest

from tests.conftest import REPO
from tests.harness import pki, site
from tests.harness.site import free_port

from .conftest import Site, gateway_host, gateway_request, make_applier, make_controller, service_show, settings_with

sys.path.insert(0, str(REPO / "tests"))
import client_load  # noqa: E402

pytestmark = pytest.mark.integration

VALIDATE = "litellm-validate-pillar-validated"
CHATS = 3


class EdgeSite(Site):
    """The site's pillar, the TLS key encrypted beside the master key in litellm_secrets.sls."""

    tls_key = ""

    def write(self, settings=None):
        super().write(settings)
        if self.tls_key:
            site.append_tls_key(self.pillar_dir, self.gpg_home, self.tls_key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    where = tmp_path_factory.mktemp("edge-pki")
    ca = pki.make_ca(where / "ca")
    made = {"ca": ca.cert_path.read_text(), "ca_file": ca.cert_path}
    for name, hosts, days in (("good", ["localhost", "127.0.0.1"], 90), ("expired", ["localhost"], -1),
                              ("wrong-san", ["elsewhere.example.internal"], 90),
                              ("other", ["localhost"], 90), ("renewed", ["localhost", "127.0.0.1"], 90)):
        cert, key = ca.issue(where / name, hosts, valid_days=days)
        made[name] = (cert.read_text(), key.read_text())
    return made


@pytest.fixture(scope="module")
def edge(tmp_path_factory, rootfs, gpg_home, master_key, backends, salt_factories):
    root = tmp_path_factory.mktemp("edge")
    port, metrics_port = free_port(), free_port()
    base = site.site_settings(backends.urls, port)
    the_site = EdgeSite(root / "pillar", gpg_home, master_key, base)
    with gateway_host(rootfs, "litellm-edge", the_site.pillar_dir, gpg_home, root / "host") as host:
        controller = make_controller(salt_factories, "edge-controller", root / "controller", the_site.pillar_dir,
                                     gpg_home)
        outputs = []
        applier = make_applier(controller, host, outputs, root / "roster")
        yield {"site": the_site, "host": host, "apply": applier, "outputs": outputs, "port": port,
               "metrics_port": metrics_port, "base": base, "root": root}


def tls_pillar(edge, certs, cert="good", key=None, metrics=True):
    the_site = edge["site"]
    the_site.tls_key = certs[key or cert][1]
    settings = settings_with(edge["base"], base_url=f"https://localhost:{edge['port']}",
                             ca_certificates={"edge-ca": certs["ca"]},
                             tls={"enabled": True, "certificate": certs[cert][0]})
    if metrics:
        settings["metrics"] = {"enabled": True, "bind_host": "127.0.0.1", "port": edge["metrics_port"]}
    the_site.write(settings)
    return settings


def assert_bare(host):
    for path in ("/etc/litellm", "/opt/litellm", "/var/lib/litellm-salt", "/etc/systemd/system/litellm.service"):
        assert host.run(["test", "-e", path], check=False).returncode != 0, f"{path} exists"
    assert host.run(["getent", "passwd", "litellm"], check=False).returncode != 0


@pytest.mark.parametrize("cert, key, expected", [
    ("good", "other", "litellm:tls:key: the private key does not match the certificate"),
    ("expired", None, "litellm:tls:certificate: expired"),
    ("wrong-san", None, "do not cover the litellm:base_url host 'localhost'"),
])
def test_a_bad_certificate_stops_the_run_before_any_change(edge, certs, cert, key, expected):
    tls_pillar(edge, certs, cert, key)
    run = edge["apply"].salt_ssh("state.apply", "litellm")
    assert run.returncode != 0
    assert run.states[VALIDATE]["result"] is False and expected in run.states[VALIDATE]["comment"], \
        run.states[VALIDATE]["comment"]
    assert [s for s, state in run.states.items() if state.get("changes")] == []
    assert_bare(edge["host"])


@pytest.fixture(scope="module")
def deployed(edge, certs):
    settings = tls_pillar(edge, certs)
    run = edge["apply"].salt_ssh("state.apply", "litellm")
    if run.returncode != 0:
        journal = edge["host"].run(["journalctl", "--no-pager", "-n", "40", "-u", "litellm-metrics"], check=False)
        pytest.fail(f"apply failed: {run.failed()}\nlitellm-metrics:\n{journal.stdout[-3000:]}")
    return settings, run


def test_the_tls_files_and_the_metrics_unit_are_deployed_and_claimed(edge, deployed):
    host = edge["host"]
    assert host.run(["stat", "-c", "%U:%G %a", "/etc/litellm/tls.key"]).stdout.strip() == "root:litellm 640"
    assert host.run(["stat", "-c", "%U:%G %a", "/etc/litellm/tls.crt"]).stdout.strip() == "root:litellm 644"
    record = json.loads(host.run(["cat", "/var/lib/litellm-salt/owned.json"]).stdout)
    paths = json.dumps(record)
    for path in ("/etc/litellm/tls.crt", "/etc/litellm/tls.key", "/etc/systemd/system/litellm-metrics.service"):
        assert path in paths, record
    assert host.run(["systemctl", "is-active", "litellm-metrics"], check=False).stdout.strip() == "active"
    env = host.run(["cat", "/etc/litellm/litellm.env"]).stdout
    assert "PROMETHEUS_MULTIPROC_DIR=/run/litellm/prometheus" in env


def sdk(edge, ca=None):
    context = ssl.create_default_context()
    if ca:
        context.load_verify_locations(cadata=ca)
    return openai.OpenAI(base_url=f"https://localhost:{edge['port']}/v1", api_key=edge["site"].master_key,
                         max_retries=0, timeout=60, http_client=openai.DefaultHttpxClient(verify=context))


def _chat(edge, model="chat-small"):
    reply = sdk(edge, edge["ca"]).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "count me"}])
    return 200 if reply.choices[0].message.content else 0


def test_the_openai_sdk_over_https_with_the_site_ca(edge, deployed, certs):
    edge["ca"] = certs["ca"]
    assert _chat(edge) == 200
    with pytest.raises(openai.APIConnectionError) as caught:
        sdk(edge).models.list()
    assert "certificate verify failed" in str(caught.value.__cause__).lower() or \
        "CERTIFICATE_VERIFY_FAILED" in repr(caught.value.__cause__)
    with pytest.raises(ssl.SSLError):  # TLS 1.1 is refused
        _old_handshake(edge)


def _old_handshake(edge):
    import socket

    context = ssl.create_default_context(cadata=edge["ca"])
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", edge["port"]), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost"):
            pass


def _query(prom_port, promql):
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


@pytest.fixture(scope="module")
def prometheus(edge, deployed):
    """Debian's Prometheus on loopback, scraping the gateway every second; stopped by PID."""
    work = edge["root"] / "prometheus"
    work.mkdir()
    port = free_port()
    (work / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "litellm", "metrics_path": "/metrics/",
                            "static_configs": [{"targets": [f"127.0.0.1:{edge['metrics_port']}"]}]}],
    }))
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError((work / "prometheus.log").read_text()[-2000:])
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _settled_count(prom_port, promql, timeout=30):
    """The sum of ``promql`` once two scrapes 2 s apart agree (the deploy's smoke chats are counted too)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        up = _query(prom_port, 'up{job="litellm"}')
        count = sum(float(r["value"][1]) for r in _query(prom_port, promql))
        if up and up[0]["value"][1] == "1" and count == last:
            return count
        last = count
        time.sleep(2)
    raise AssertionError(f"{promql} never settled (last {last})")


def test_a_real_prometheus_counts_the_chats_by_alias_and_backend(edge, prometheus):
    status, _, _ = gateway_request(edge["metrics_port"], "GET", "/metrics/")
    assert status == 200  # no key of any kind
    promql = 'sum by (model_group, api_base) (litellm_deployment_total_requests_total{model_group="chat-small"})'
    before = _settled_count(prometheus, promql)
    assert all(_chat(edge) == 200 for _ in range(CHATS))
    deadline, result = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        result = _query(prometheus, promql)
        if sum(float(r["value"][1]) for r in result) >= before + CHATS:
            break
        time.sleep(1)
    assert sum(float(r["value"][1]) for r in result) == before + CHATS, (before, result)
    backends = {r["metric"]["api_base"].removesuffix("/api/chat") for r in result}
    assert backends <= set(edge["base"]["backends"]) and backends, result
    info = _query(prometheus, "litellm_salt_build_info")
    assert info and info[0]["metric"]["litellm_version"] == "1.108.7", info


def test_a_rollback_by_hand_waits_for_readiness_over_https(edge, deployed):
    """The rollback by hand has no pillar over salt-ssh: it reads the https URL from the unit and verifies it."""
    settings, _ = deployed
    extra = {"name": "chat-extra", "provider": "ollama", "model": "llama3.2:3b"}
    edge["site"].write(settings_with(settings, models=settings["models"] + [extra]))
    edge["apply"].salt_ssh("state.apply", "litellm").assert_ok()  # a second known-good release
    run = edge["apply"].salt_ssh("litellm_config.rollback")
    assert run.data["action"] == "rolled_back" and run.data["ready"]["ready"] is True, run.data
    assert run.data["smoke_result"] == "PASS", run.data
    assert "chat-extra" not in _query_models(edge)
    edge["site"].write(settings)
    assert edge["apply"].salt_ssh("state.apply", "litellm").assert_ok().changed() == []


def _query_models(edge):
    listed = sdk(edge, edge["ca"]).models.list()
    return [model.id for model in listed.data]


def test_a_second_apply_changes_nothing(edge, deployed):
    run = edge["apply"].salt_ssh("state.apply", "litellm").assert_ok()
    assert run.changed() == []


def test_the_tls_key_is_never_exposed(edge, deployed, certs):
    host, key = edge["host"], certs["good"][1]
    lines = [line for line in key.splitlines() if line and not line.startswith("-----")]
    assert edge["outputs"] and all(line not in text for text in edge["outputs"] if text for line in lines)
    journal = host.run(["journalctl", "--no-pager", "-o", "cat"]).stdout
    cmdlines = host.run(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"]).stdout
    assert not any(line in journal or line in cmdlines for line in lines)
    readable = host.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "grep", "-rlF",
                         "--devices=skip", "-f", "/dev/stdin", "/etc", "/opt", "/var", "/tmp", "/srv", "/run"],
                        input="\n".join(lines) + "\n", check=False)
    assert readable.stdout.strip() == "", readable.stdout
    on_controller = [str(p) for p in (edge["root"] / "controller").rglob("*")
                     if p.is_file() and not p.is_symlink() and lines[0].encode() in p.read_bytes()]
    assert on_controller == []


RENEWAL_CLIENTS, RENEWAL_LONG_S = 12, 20
RENEWED = ["litellm-config-file-tls-certificate-managed", "litellm-config-file-tls-key-managed",
           "litellm-service-running-service-running"]


def _fingerprint_of(pem):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _served_fingerprints(port, cafile, connections=6):
    """SHA-256 of the certificate the listener presents on ``connections`` new connections, verified."""
    context = client_load.https_context(cafile)
    seen = set()
    for _ in range(connections):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                seen.add(hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest())
    return seen


def _renew_under_load(edge, certs, load):
    """The pillar's certificate and key replaced by the renewed pair, applied with salt-ssh under ``load``."""
    assert load.wait_for(3 * RENEWAL_CLIENTS), "the load never got going"
    load.baseline = client_load.baselines(list(load.results))
    tls_pillar(edge, certs, cert="renewed")
    started = time.monotonic()
    run = edge["apply"].salt_ssh("state.apply", "litellm")
    window = (started, time.monotonic())
    run.assert_ok()
    return run, window


def test_a_certificate_renewal_under_load_is_a_rolling_reload(edge, deployed, certs):
    """A new key and serial from the same CA, under chat and stream load over verified https: a reload."""
    host, port, cafile = edge["host"], edge["port"], certs["ca_file"]
    assert _served_fingerprints(port, cafile) == {_fingerprint_of(certs["good"][0])}
    main_pid = service_show(host, "MainPID")["MainPID"]
    with client_load.Load(port, edge["site"].master_key, "chat-small", clients=RENEWAL_CLIENTS, long_every=4,
                          long_s=RENEWAL_LONG_S, cafile=cafile) as load:
        run, window = _renew_under_load(edge, certs, load)
    during = client_load.summary(load.results, window, load.baseline)
    total = client_load.summary(load.results)
    print("\nCERT RENEWAL LOAD " + json.dumps({"apply_s": round(run.elapsed, 1), "during": during, "total": total}))
    assert total["failed"] == 0 and total["cut_streams"] == 0, total
    assert during["during_change"] > RENEWAL_CLIENTS and during["long_streams_ok"] > 0, during
    assert run.changed() == RENEWED, run.changed()
    service = run.states["litellm-service-running-service-running"]
    assert service["changes"]["path"] == "reload" and "RELOADED" in service["comment"], service
    assert service_show(host, "MainPID")["MainPID"] == main_pid, "the supervisor changed"
    assert _served_fingerprints(port, cafile) == {_fingerprint_of(certs["renewed"][0])}
    key_lines = [line for line in certs["renewed"][1].splitlines() if line and not line.startswith("-----")]
    assert not any(line in run.text for line in key_lines)


def test_clean_removes_the_tls_files_and_the_metrics_unit(edge, deployed):
    edge["apply"].salt_ssh("state.apply", "litellm.clean").assert_ok()
    for path in ("/etc/litellm/tls.key", "/etc/litellm/tls.crt", "/etc/systemd/system/litellm-metrics.service"):
        assert edge["host"].run(["test", "-e", path], check=False).returncode != 0, f"{path} left behind"
    assert edge["host"].run(["systemctl", "is-active", "litellm-metrics"], check=False).stdout.strip() != "active"

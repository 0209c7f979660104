"""
The preflight on a real systemd host (the bare test container): healthy GO
through salt-ssh and salt-call, then every failure caused for real and
detected, naming the check and why, by the module and by the gate of
``state.apply litellm`` (which then stops before any change); read-only
proof, the evidence bundle, test mode. Needs no deployed gateway.
"""

import contextlib
import copy
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


pytestmark = pytest.mark.integration

GATE = "litellm-preflight-go"
VALIDATE = "litellm-validate-pillar-validated"
OWNER = "litellm-owner-record-checked"  # read-only, before the gate
CORE_CHECKS = {
    "pillar", "ownership", "dns", "backends", "bind_port", "runtime", "resources", "capacity", "trust",
    "package_index", "init",
}
EVIDENCE_DIR = "/var/lib/litellm-preflight-evidence"
GOAL_MS = 3000


# --- helpers -------------------------------------------------------------------------------


@contextlib.contextmanager
def pillar(test_site, change):
    """The site's pillar with ``change(settings)`` applied, restored afterwards."""
    good = copy.deepcopy(test_site.settings)
    changed = copy.deepcopy(good)
    change(changed)
    test_site.write(changed)
    try:
        yield changed
    finally:
        test_site.write(good)


def preflight(apply, via="local", *args):
    """The report of ``litellm_preflight.run`` through salt-call --local (or salt-ssh)."""
    call = apply.salt_ssh if via == "ssh" else apply.salt_call
    run = call("litellm_preflight.run", *args)
    report = run.data
    assert isinstance(report, dict) and report.get("result") in ("GO", "NO-GO"), run.text[-3000:]
    return report


def check(report, name):
    return {c["name"]: c for c in report["checks"]}[name]


def assert_bare(host):
    """Nothing of the formula is on the host."""
    assert host.run(["test", "-e", "/etc/litellm"], check=False).returncode != 0, "/etc/litellm exists"
    assert host.run(["test", "-e", "/opt/litellm"], check=False).returncode != 0, "/opt/litellm exists"
    assert host.run(["systemctl", "cat", "litellm"], check=False).returncode != 0, "a litellm unit exists"
    assert host.run(["getent", "passwd", "litellm"], check=False).returncode != 0, "a litellm user exists"


def assert_gate_stops(apply, host, failed_check, *details):
    """``state.apply litellm`` fails at the gate naming the check and its detail; nothing changed."""
    assert_bare(host)
    run = apply.salt_ssh("state.apply", "litellm")
    assert run.returncode != 0, run.text[-3000:]
    states = run.states
    assert states[VALIDATE]["result"] is True, states[VALIDATE]["comment"]
    assert states[OWNER]["result"] is True and states[OWNER]["changes"] == {}, states[OWNER]
    gate = states[GATE]
    assert gate["result"] is False, gate["comment"]
    comment = gate["comment"]
    assert "Preflight NO-GO" in comment, comment
    line = next((ln for ln in comment.splitlines() if ln.startswith(f"- {failed_check}: ")), None)
    assert line is not None, comment
    for detail in details:
        assert detail in line, comment
    assert run.changed() == []
    # failhard: no state after the gate ran
    ran = sorted(
        state_id
        for state_id, state in states.items()
        if state_id not in (VALIDATE, OWNER, GATE) and state.get("result") is not False
    )
    assert ran == [], ran
    assert_bare(host)
    return comment


def snapshot(host):
    """Files (path, type, mode, size, mtime), packages and unit files of the host."""
    files = host.run(
        [
            "find", "/etc", "/opt", "/var/lib", "/usr", "/root", "/home", "-xdev",
            "-not", "-path", "/var/lib/apt/lists/*",
            # the evidence bundles are the one thing a preflight writes
            "-not", "-path", "/var/lib/litellm-salt", "-not", "-path", "/var/lib/litellm-salt/*",
            "-printf", "%p %y %m %s %T@\n",
        ],
        check=False,
    ).stdout
    packages = host.run(["dpkg", "-l"]).stdout
    units = host.run(["systemctl", "list-unit-files", "--no-pager", "--no-legend"]).stdout
    users = host.run(["getent", "passwd"]).stdout + host.run(["getent", "group"]).stdout
    return {"files": sorted(files.splitlines()), "packages": packages, "units": units, "users": users}


def wait_listening(port, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on 127.0.0.1:{port}"
            time.sleep(0.1)


def stub_models(url, models):
    data = json.dumps({"models": models}).encode()
    request = urllib.request.Request(url + "/_stub/config", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


# --- a self-signed CA and an https package index that uses it --------------------------------


def make_cert(directory):
    cert, key = directory / "ca.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "30", "-subj", "/CN=litellm-preflight integration CA",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class _Index(BaseHTTPRequestHandler):
    version = "1.108.7"

    def do_GET(self):  # noqa: N802
        body = (
            "<html><body>"
            f'<a href="litellm-{self.version}-py3-none-any.whl">litellm-{self.version}-py3-none-any.whl</a>'
            "</body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tls_index(tmp_path_factory):
    """An https 'package index' on 127.0.0.1 with a self-signed certificate: (url, CA PEM)."""
    cert, key = make_cert(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/simple", cert.read_text()
    finally:
        server.shutdown()
        server.server_close()


# --- healthy --------------------------------------------------------------------------------


def assert_healthy(report, test_site):
    assert report["result"] == "GO", json.dumps(report, indent=1)
    assert report["failed"] == []
    assert CORE_CHECKS <= {c["name"] for c in report["checks"]}
    for entry in report["checks"]:
        assert entry["status"] in ("pass", "skip", "warn"), entry
    for name in ("pillar", "ownership", "dns", "backends", "bind_port", "runtime", "init", "trust", "package_index"):
        assert check(report, name)["status"] == "pass", check(report, name)
    # no package_index:url: the install uses PyPI, so its TLS is what is checked
    assert "pypi.org:443 (package_index): verified with ca_bundle" in check(report, "trust")["detail"]
    for url in test_site.settings["backends"]:
        assert f"{url}: ollama" in check(report, "backends")["detail"]
    # a module before this one may have left closing connections on the port: still free to bind
    bound = f"127.0.0.1:{test_site.settings['bind_port']}"
    assert check(report, "bind_port")["detail"] in (f"{bound} is free",
                                                    f"{bound}: only closing connections (TIME_WAIT) use the port; "
                                                    "LiteLLM can bind"), check(report, "bind_port")
    assert report["duration_ms"] < GOAL_MS, report["duration_ms"]
    assert test_site.master_key not in json.dumps(report)


def test_healthy_host_is_go_through_salt_call(apply, host, test_site):
    assert_bare(host)
    report = preflight(apply, "local")
    assert_healthy(report, test_site)
    # by default every run keeps its evidence on the host
    assert report["evidence"].startswith("/var/lib/litellm-salt/evidence/preflight-"), report["evidence"]
    assert host.run(["test", "-s", report["evidence"] + "/report.json"], check=False).returncode == 0
    # one check alone
    run = apply.salt_call("litellm_preflight.bind_port")
    assert run.returncode == 0 and run.data["name"] == "bind_port" and run.data["status"] == "pass", run.text[-2000:]


def test_healthy_host_is_go_through_the_salt_ssh_gate(apply, host, test_site):
    run = apply.salt_ssh("state.sls", "litellm.preflight")
    run.assert_ok()
    gate = run.states[GATE]
    assert gate["result"] is True and gate["changes"] == {}, gate
    assert gate["comment"].startswith("Preflight GO:"), gate["comment"]
    for name in ("pillar", "dns", "backends", "bind_port", "runtime", "init"):
        assert f"{name} pass" in gate["comment"], gate["comment"]
    # the whole report comes back to the controller with the state return
    assert_healthy(gate["report"], test_site)
    assert run.changed() == []
    assert test_site.master_key not in run.text
    assert_bare(host)


def test_salt_ssh_module_call_gets_the_pillar_through_the_wrapper(apply, host, test_site):
    # _wrapper/litellm_preflight.py: the merged settings on the controller, the checks on the target
    report = preflight(apply, "ssh")
    assert report["result"] == "GO", report["failed"]
    assert check(report, "pillar")["status"] == "pass"
    assert check(report, "ssh")["status"] in ("pass", "warn")
    assert test_site.master_key not in json.dumps(report)


def test_preflight_is_read_only(apply, host):
    before = snapshot(host)
    assert len(before["files"]) > 5000 and "python3" in before["packages"] and "ssh.service" in before["units"]
    report = preflight(apply, "local")
    assert report["result"] == "GO"
    run = apply.salt_ssh("state.sls", "litellm.preflight")
    run.assert_ok()
    after = snapshot(host)
    for key in ("packages", "units", "users"):
        assert before[key] == after[key], key
    added = sorted(set(after["files"]) - set(before["files"]))
    removed = sorted(set(before["files"]) - set(after["files"]))
    assert (added, removed) == ([], []), f"changed by preflight: +{added[:20]} -{removed[:20]}"
    assert_bare(host)


# --- each failure, caused for real ---------------------------------------------------------


def test_backend_down_is_no_go(apply, host, backends):
    dead = backends.urls[1]
    backends.kill(1)
    try:
        report = preflight(apply, "local")
        assert report["result"] == "NO-GO"
        assert report["failed"] == ["backends"], report["failed"]
        detail = check(report, "backends")["detail"]
        assert f"{dead}: TCP connect failed (Connection refused)" in detail, detail
        assert f"{backends.urls[0]}: ollama" in detail, detail  # the other one is fine
        assert_gate_stops(apply, host, "backends", f"{dead}: TCP connect failed (Connection refused)")
    finally:
        backends.revive(1)


def test_model_missing_on_one_backend_is_no_go(apply, host, backends):
    url = backends.urls[1]
    stub_models(url, ["llama3.2:3b"])
    try:
        report = preflight(apply, "local")
        assert report["failed"] == ["backends"], report["failed"]
        detail = check(report, "backends")["detail"]
        assert f"model 'qwen2.5:7b' missing on {url}" in detail, detail
        assert f"model 'qwen2.5:7b' missing on {backends.urls[0]}" not in detail
        assert_gate_stops(apply, host, "backends", f"model 'qwen2.5:7b' missing on {url}")
    finally:
        stub_models(url, backends.models)


def test_bind_port_held_by_another_process_is_no_go(apply, host, test_site):
    port = test_site.settings["bind_port"]
    unit = f"squatter-{uuid.uuid4().hex[:8]}"
    host.run(
        [
            "systemd-run", f"--unit={unit}", "--collect", "--quiet",
            "/usr/bin/python3", "-m", "http.server", str(port), "--bind", "127.0.0.1",
        ]
    )
    try:
        wait_listening(port)
        pid = host.run(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip()
        assert pid not in ("", "0"), pid
        report = preflight(apply, "local")
        assert report["failed"] == ["bind_port"], report["failed"]
        detail = check(report, "bind_port")["detail"]
        expected = f"127.0.0.1:{port} is held by PID {pid} (/usr/bin/python3 -m http.server {port} --bind 127.0.0.1)"
        assert expected in detail, detail
        assert_gate_stops(apply, host, "bind_port", expected, "LiteLLM would silently move to a random port")
    finally:
        host.run(["systemctl", "stop", unit], check=False)
    report = preflight(apply, "local", "checks=bind_port")
    assert report["result"] == "GO", report


def test_backend_host_that_does_not_resolve_is_no_go(apply, host, test_site):
    bad = "http://no-such-host.invalid:11434"
    with pillar(test_site, lambda s: s["backends"].__setitem__(1, bad)):
        report = preflight(apply, "local")
        assert report["result"] == "NO-GO"
        assert "dns" in report["failed"], report["failed"]
        detail = check(report, "dns")["detail"]
        assert "no-such-host.invalid (backend): does not resolve" in detail, detail
        assert f"{bad}: TCP connect failed" in check(report, "backends")["detail"]
        assert_gate_stops(apply, host, "dns", "no-such-host.invalid (backend): does not resolve")


def test_https_endpoint_with_an_untrusted_certificate_is_no_go_until_its_ca_is_given(
    apply, host, test_site, tls_index
):
    url, ca_pem = tls_index
    port = url.split(":")[2].split("/")[0]
    where = f"127.0.0.1:{port} (package_index)"
    store = test_site.settings["ca_bundle"]
    with pillar(test_site, lambda s: s.__setitem__("package_index", {"url": url})):
        report = preflight(apply, "local")
        assert "trust" in report["failed"], report["failed"]
        detail = check(report, "trust")["detail"]
        assert f"{where}: not trusted by ca_bundle {store}: self-signed certificate" in detail, detail
        assert "package_index" in report["failed"]  # the index cannot be read either
        assert_gate_stops(apply, host, "trust", f"{where}: not trusted by ca_bundle {store}")

    ca_path = "/etc/litellm-test/preflight-test-ca.pem"
    host.run(["tee", ca_path], input=ca_pem)
    try:
        change = lambda s: s.update(package_index={"url": url}, ca_bundle=ca_path)  # noqa: E731
        with pillar(test_site, change):
            report = preflight(apply, "local")
            assert report["result"] == "GO", json.dumps(report, indent=1)
            trust = check(report, "trust")
            assert trust["status"] == "pass", trust
            assert f"{where}: verified with ca_bundle {ca_path}" in trust["detail"], trust
            index = check(report, "package_index")
            assert index["status"] == "pass" and "litellm 1.108.7 listed" in index["detail"], index
    finally:
        host.run(["rm", "-f", ca_path], check=False)
    assert_bare(host)


def test_bad_preflight_pillar_is_no_go_naming_the_key_and_the_validation_gate_stops_it(apply, host, test_site):
    def change(settings):
        settings["preflight"] = {"min_disk_gib": -1}

    message = "litellm:preflight:min_disk_gib: must be a number >= 0, got -1"
    with pillar(test_site, change):
        report = preflight(apply, "local")
        assert report["failed"] == ["pillar"], report["failed"]
        detail = check(report, "pillar")["detail"]
        assert message in detail, detail
        # litellm:preflight is validated with every other section: the first gate stops the run
        assert_bare(host)
        run = apply.salt_ssh("state.apply", "litellm")
        assert run.returncode != 0, run.text[-3000:]
        gate = run.states[VALIDATE]
        assert gate["result"] is False and message in gate["comment"], gate["comment"]
        assert "Preflight" not in (run.states.get(GATE) or {}).get("comment", ""), run.states.get(GATE)  # failhard
        assert run.changed() == []
    assert_bare(host)


# --- evidence, test mode -------------------------------------------------------------------


def test_every_run_writes_a_private_evidence_bundle_without_the_key(apply, host, test_site):
    def change(settings):
        settings["preflight"] = {"evidence_dir": EVIDENCE_DIR, "keep_evidence": 2}

    try:
        with pillar(test_site, change):
            report = preflight(apply, "local")
            assert report["result"] == "GO"
            bundle = report["evidence"]
            assert bundle and bundle.startswith(f"{EVIDENCE_DIR}/preflight-"), bundle
            stamp = bundle.rsplit("/", 1)[1][len("preflight-") :]
            assert time.strptime(stamp[:16], "%Y%m%dT%H%M%SZ")
            modes = host.run(
                ["stat", "-c", "%n %a %U", EVIDENCE_DIR, bundle, f"{bundle}/report.json", f"{bundle}/summary.txt"]
            ).stdout.split("\n")
            assert modes[:4] == [
                f"{EVIDENCE_DIR} 700 root",
                f"{bundle} 700 root",
                f"{bundle}/report.json 600 root",
                f"{bundle}/summary.txt 600 root",
            ], modes
            document = json.loads(host.run(["cat", f"{bundle}/report.json"]).stdout)
            assert document["result"] == "GO" and document["evidence"] == bundle
            assert [c["name"] for c in document["checks"]] == [c["name"] for c in report["checks"]]
            summary = host.run(["cat", f"{bundle}/summary.txt"]).stdout
            assert summary.startswith("LiteLLM preflight: GO")
            for name in CORE_CHECKS:
                assert f"\n{name} " in summary, summary
            leaked = host.run(
                ["grep", "-rlF", "-f", "/dev/stdin", EVIDENCE_DIR], input=test_site.master_key + "\n", check=False
            )
            assert leaked.returncode == 1 and leaked.stdout == "", leaked.stdout

            # the gate through salt-ssh writes one too, and names it
            run = apply.salt_ssh("state.sls", "litellm.preflight")
            run.assert_ok()
            comment = run.states[GATE]["comment"]
            assert f"Evidence: {EVIDENCE_DIR}/preflight-" in comment, comment
            gate_bundle = comment.split("Evidence: ", 1)[1].split()[0]
            # re-runs keep only the newest keep_evidence bundles
            latest = preflight(apply, "local")["evidence"]
            kept = host.run(["ls", "-1", EVIDENCE_DIR]).stdout.split()
            names = [path.rsplit("/", 1)[1] for path in (bundle, gate_bundle, latest)]
            assert kept == sorted(names[1:]), (kept, names)
    finally:
        host.run(["rm", "-rf", EVIDENCE_DIR], check=False)


def test_test_mode_runs_the_checks_and_changes_nothing(apply, host, test_site):
    run = apply.salt_ssh("state.apply", "litellm", "test=True")
    gate = run.states[GATE]
    assert gate["result"] is True and gate["changes"] == {}, gate
    assert "Preflight GO" in gate["comment"], gate["comment"]
    for name in CORE_CHECKS:
        assert name in gate["comment"], gate["comment"]
    assert run.changed() == [] or all(
        run.states[s]["result"] is None for s in run.changed()
    ), run.changed()
    assert_bare(host)


def test_test_mode_reports_a_no_go(apply, host, backends):
    backends.kill(0)
    try:
        run = apply.salt_ssh("state.apply", "litellm", "test=True")
        gate = run.states[GATE]
        assert gate["result"] is False, gate
        assert f"- backends: {backends.urls[0]}: TCP connect failed" in gate["comment"], gate["comment"]
        assert run.returncode != 0
    finally:
        backends.revive(0)
    assert_bare(host)

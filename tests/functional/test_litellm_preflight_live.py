"""
litellm_preflight for real, through Salt's loader: two stand-in Ollama servers
on loopback, a throw-away TLS package index with a self-signed certificate made
here, a port held by another process, a name that does not resolve.
"""

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import TEST_MASTER_KEY, merged
from tests.ollama_stub import OllamaStub

MODELS = ["llama3.2:3b", "qwen2.5:7b"]
VERSION = "1.108.7"
PID1_IS_SYSTEMD = open("/proc/1/comm", encoding="ascii").read().strip() == "systemd"


# --- a self-signed certificate, and an https package index that uses it --------------


def _cert_with_openssl(directory):
    cert, key = directory / "ca.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "30", "-subj", "/CN=litellm-preflight test CA",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _cert_with_cryptography(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "litellm-preflight test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement")
        + ("encipher_only", "decipher_only"),
        False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert, key_path = directory / "ca.pem", directory / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key_path


def make_self_signed(directory):
    """(cert, key): openssl when it is here, else the cryptography package."""
    if shutil.which("openssl"):
        return _cert_with_openssl(directory)
    return _cert_with_cryptography(directory)


class _IndexHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- http.server's name
        if self.path == "/simple/litellm/":
            body = (
                "<!DOCTYPE html><html><body>"
                f'<a href="/files/litellm-{VERSION}-py3-none-any.whl#sha256=00">litellm-{VERSION}-py3-none-any.whl</a>'
                "</body></html>"
            ).encode()
            self.send_response(200)
        else:
            body = b"not found"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TLSIndex:
    """A package index on https://localhost:<port>/simple/ with the given certificate."""

    def __init__(self, cert, key):
        self.cert, self.key = str(cert), str(key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _IndexHandler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://localhost:{self.port}/simple/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def tls_index(tmp_path_factory):
    cert, key = make_self_signed(tmp_path_factory.mktemp("tls"))
    index = TLSIndex(cert, key)
    yield index
    index.stop()


@pytest.fixture
def stubs():
    with OllamaStub(name="llm01", models=MODELS) as one, OllamaStub(name="llm02", models=MODELS) as two:
        yield one, two


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def site(stubs, tls_index):
    """A healthy site: both backends with every model, a free port, a trusted index."""
    port = free_port()
    return merged(
        {
            "bind_host": "127.0.0.1",
            "bind_port": port,
            "base_url": f"http://localhost:{port}/v1",
            "backends": [stub.url for stub in stubs],
            "models": [
                {"name": "chat-small", "provider": "ollama", "model": MODELS[0]},
                {"name": "chat", "provider": "ollama", "model": MODELS[1]},
            ],
            "master_key": TEST_MASTER_KEY,
            "package_index": {"url": tls_index.url, "extra_urls": []},
            "ca_bundle": tls_index.cert,
            # this machine is no test host: no evidence bundles written here
            "preflight": {"evidence_dir": ""},
        }
    )


def by_name(report):
    return {check["name"]: check for check in report["checks"]}


def mtimes(*roots):
    listing = {}
    for root in roots:
        for directory, dirs, files in os.walk(root):
            for name in [directory] + [os.path.join(directory, entry) for entry in dirs + files]:
                try:
                    listing[name] = os.lstat(name).st_mtime_ns
                except FileNotFoundError:
                    pass
    return listing


# --- the checks, for real -----------------------------------------------------------------


def test_healthy_site_changes_nothing_and_is_fast(modules, site):
    before = mtimes("/etc", "/opt")
    start = time.monotonic()
    report = modules.litellm_preflight.run(settings=site)
    took = time.monotonic() - start
    after = mtimes("/etc", "/opt")
    print(f"\nhealthy preflight run took {took * 1000:.0f} ms (module says {report['duration_ms']:.0f} ms)")
    for check in report["checks"]:
        print(f"  {check['name']:<14} {check['status']:<5} {check['duration_ms']:>7.1f} ms  {check['detail']}")
    assert took < 3.0
    assert before == after
    checks = by_name(report)
    for name in ("pillar", "dns", "backends", "bind_port", "trust", "package_index"):
        assert checks[name]["status"] == "pass", checks[name]
    assert "ollama 0.5.7, 2/2 model(s)" in checks["backends"]["detail"]
    assert f"GET {site['package_index']['url']}litellm/: 200" in checks["package_index"]["detail"]
    assert set(report["failed"]) <= ({"init"} if not PID1_IS_SYSTEMD else set())
    assert report["evidence"] is None
    assert TEST_MASTER_KEY not in json.dumps(report)


@pytest.mark.skipif(PID1_IS_SYSTEMD, reason="this host boots with systemd")
def test_init_says_not_systemd_on_this_host(modules, site):
    check = modules.litellm_preflight.init(settings=site)
    assert check["status"] == "fail" and "not systemd" in check["detail"]


def test_a_backend_down_fails_naming_it(modules, site):
    with OllamaStub(name="gone", models=MODELS) as gone:
        dead = gone.url
    site["backends"] = [site["backends"][0], dead]
    check = modules.litellm_preflight.backends(settings=site)
    assert check["status"] == "fail"
    assert f"{dead}: TCP connect failed" in check["detail"]
    assert f"{site['backends'][0]}: ollama" in check["detail"]


def test_a_model_missing_on_one_backend_fails_naming_model_and_backend(modules, site, stubs):
    import urllib.request

    request = urllib.request.Request(
        stubs[1].url + "/_stub/config", data=json.dumps({"models": [MODELS[0]]}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.load(answer)["models"] == [MODELS[0]]
    check = modules.litellm_preflight.backends(settings=site)
    assert check["status"] == "fail"
    assert f"model '{MODELS[1]}' missing on {stubs[1].url}" in check["detail"]
    assert f"missing on {stubs[0].url}" not in check["detail"]


def test_a_port_held_by_another_process_fails_naming_its_pid(modules, site):
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        site["bind_port"] = int(holder.stdout.readline())
        check = modules.litellm_preflight.bind_port(settings=site)
    finally:
        holder.kill()
        holder.wait(timeout=10)
        holder.stdout.close()
    assert check["status"] == "fail", check
    assert f"127.0.0.1:{site['bind_port']} is held by PID {holder.pid} (" in check["detail"]
    assert "random port" in check["detail"]


def test_a_name_that_does_not_resolve_fails_dns(modules, site):
    site["base_url"] = "http://no-such-host.invalid:4000/v1"
    check = modules.litellm_preflight.dns(settings=site)
    assert check["status"] == "fail"
    assert "no-such-host.invalid (gateway): does not resolve" in check["detail"]
    assert "127.0.0.1 (backend): literal" in check["detail"]


def test_an_untrusted_certificate_fails_trust_and_the_test_ca_passes(modules, site, tls_index):
    site["ca_bundle"] = ""
    check = modules.litellm_preflight.trust(settings=site)
    assert check["status"] == "fail"
    assert f"localhost:{tls_index.port} (package_index): not trusted by the system trust store" in check["detail"]
    assert "self-signed certificate" in check["detail"] or "self signed certificate" in check["detail"]
    index = modules.litellm_preflight.package_index(settings=site)
    assert index["status"] == "fail" and "TLS verification failed" in index["detail"]
    site["ca_bundle"] = tls_index.cert
    check = modules.litellm_preflight.trust(settings=site)
    assert check["status"] == "pass", check
    assert f"verified with ca_bundle {tls_index.cert}" in check["detail"]


def test_bad_settings_fail_the_pillar_check_naming_the_key(modules, site):
    site["bind_port"] = "4000x"
    site["routing_strategy"] = "fastest"
    report = modules.litellm_preflight.run(settings=site)
    checks = by_name(report)
    assert report["result"] == "NO-GO" and "pillar" in report["failed"]
    assert "litellm:bind_port:" in checks["pillar"]["detail"]
    assert "litellm:routing_strategy:" in checks["pillar"]["detail"]
    assert checks["bind_port"]["status"] == "skip"


def test_evidence_bundle_is_private_and_has_no_key(modules, site, tmp_path):
    report = modules.litellm_preflight.run(settings=site, evidence_dir=str(tmp_path / "evidence"))
    bundle = report["evidence"]
    assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o700
    for name in ("report.json", "summary.txt"):
        path = os.path.join(bundle, name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path, encoding="utf-8") as handle:
            assert TEST_MASTER_KEY not in handle.read()
    with open(os.path.join(bundle, "summary.txt"), encoding="utf-8") as handle:
        assert handle.readline().startswith("LiteLLM preflight: ")


@pytest.mark.parametrize("test_mode", [False, True])
def test_state_go(states, site, test_mode):
    checks = ["pillar", "dns", "backends", "bind_port", "trust", "package_index"]
    ret = states.litellm_preflight.go(name="litellm", settings=site, checks=checks, test=test_mode)
    assert ret.result is True, ret.comment
    assert ret.changes == {}
    assert "Preflight GO: 6 check(s), none failed" in ret.comment
    site["ca_bundle"] = ""
    ret = states.litellm_preflight.go(name="litellm", settings=site, checks=checks, test=test_mode)
    assert ret.result is False and ret.changes == {}
    assert "- trust: localhost:" in ret.comment and "- package_index: GET" in ret.comment
    assert TEST_MASTER_KEY not in ret.comment


def test_the_cryptography_certificate_also_verifies(tmp_path):
    """The fallback when there is no openssl binary makes a certificate that works too."""
    cert, key = _cert_with_cryptography(tmp_path)
    index = TLSIndex(cert, key)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", index.port), timeout=3) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version()
    finally:
        index.stop()

"""tests/client_load.py over real sockets on 127.0.0.1: plain http as before, https verified against a CA file."""

import http.server
import json
import ssl
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import client_load  # noqa: E402
from tests.harness import pki  # noqa: E402


class _Chat(http.server.BaseHTTPRequestHandler):
    """An OpenAI-shaped chat endpoint: a JSON reply, or two SSE chunks and [DONE] for a stream."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("stream"):
            payload = b"".join(b"data: " + json.dumps({"n": i}).encode() + b"\n\n" for i in range(2))
            payload += b"data: [DONE]\n\n"
            kind = "text/event-stream"
        else:
            payload = json.dumps({"choices": [{"message": {"content": "hi"}}]}).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def _serve(context=None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def servers(tmp_path):
    """(http port, https port, the CA's file, another CA's file); the https certificate is for 127.0.0.1."""
    ca, other = pki.make_ca(tmp_path / "ca"), pki.make_ca(tmp_path / "other", name="another CA")
    cert, key = ca.issue(tmp_path / "server", ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    plain, tls = _serve(), _serve(context)
    yield plain[0].server_address[1], tls[0].server_address[1], ca.cert_path, other.cert_path
    for server, thread in (plain, tls):
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("kind", ["chat", "stream"])
def test_plain_http_is_unchanged(servers, kind):
    out = client_load.one_request(servers[0], "sk-test", "m", kind)
    assert out["ok"] and not out["cut"], out


@pytest.mark.parametrize("kind", ["chat", "stream"])
def test_https_verified_against_the_ca_file(servers, kind):
    context = client_load.https_context(servers[2])
    out = client_load.one_request(servers[1], "sk-test", "m", kind, context=context)
    assert out["ok"] and not out["cut"], out
    assert kind == "chat" or out["chunks"] == 2


def test_https_with_another_ca_fails_verification(servers):
    out = client_load.one_request(servers[1], "sk-test", "m", "chat", context=client_load.https_context(servers[3]))
    assert not out["ok"] and "CERTIFICATE_VERIFY_FAILED" in out["error"], out


def test_plain_http_to_an_https_listener_fails(servers):
    out = client_load.one_request(servers[1], "sk-test", "m", "chat")
    assert not out["ok"] and out["error"], out


def test_the_load_speaks_https_with_a_ca_file(servers):
    with client_load.Load(servers[1], "sk-test", "m", clients=2, long_every=0, cafile=servers[2]) as load:
        assert load.wait_for(6, timeout=20)
    total = client_load.summary(load.results)
    assert total["failed"] == 0 and total["requests"] >= 6, total
    assert {r["kind"] for r in load.results} == {"chat", "stream"}

"""Tests for tests/ollama_stub.py, over real HTTP on 127.0.0.1."""
import http.client
import json
import math
import os
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ollama_stub import OllamaStub, start_stub_process, stop_stub_process  # noqa: E402

MODELS = ["llama3.2:3b", "qwen2.5:7b"]


@pytest.fixture
def stub():
    with OllamaStub(name="llm01", models=MODELS) as s:
        yield s


def call(stub, method, path, body=None, conn=None):
    """One request; body may be a dict (sent as JSON) or raw bytes/str."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", stub.port, timeout=10)
    if isinstance(body, dict):
        body = json.dumps(body)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if own:
        conn.close()
    return resp, data


def jcall(stub, method, path, body=None, conn=None):
    resp, data = call(stub, method, path, body, conn)
    return resp.status, json.loads(data)


def ndjson(data):
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def chat_body(text="hello world", model="llama3.2:3b", **kw):
    return {"model": model, "messages": [{"role": "system", "content": "be nice"},
                                         {"role": "user", "content": text}], **kw}


# -- health / metadata ---------------------------------------------------------

def test_port_zero_gives_real_port_and_url(stub):
    assert stub.port != 0
    assert stub.url == f"http://127.0.0.1:{stub.port}"


def test_root_get_and_head(stub):
    resp, data = call(stub, "GET", "/")
    assert resp.status == 200 and data == b"Ollama is running"
    resp, data = call(stub, "HEAD", "/")
    assert resp.status == 200 and data == b""
    assert resp.getheader("Content-Length") == "17"


def test_version_default_and_configurable(stub):
    assert jcall(stub, "GET", "/api/version") == (200, {"version": "0.5.7"})
    with OllamaStub(version="0.9.1") as other:
        assert jcall(other, "GET", "/api/version") == (200, {"version": "0.9.1"})


def test_tags_shape(stub):
    status, body = jcall(stub, "GET", "/api/tags")
    assert status == 200
    assert [m["name"] for m in body["models"]] == MODELS
    m = body["models"][0]
    assert m["model"] == "llama3.2:3b" and isinstance(m["size"], int)
    assert len(m["digest"]) == 64 and m["modified_at"]
    assert {"format", "family", "parameter_size", "quantization_level"} <= set(m["details"])
    assert m["details"]["parameter_size"] == "3B"


def test_untagged_model_name_resolves_to_latest():
    with OllamaStub(models=["mistral"]) as s:
        assert jcall(s, "GET", "/api/tags")[1]["models"][0]["name"] == "mistral:latest"
        status, _ = jcall(s, "POST", "/api/chat", chat_body(model="mistral", stream=False))
        assert status == 200


def test_show_known_and_unknown(stub):
    status, body = jcall(stub, "POST", "/api/show", {"model": "qwen2.5:7b"})
    assert status == 200
    for key in ("modelfile", "parameters", "template", "details", "model_info"):
        assert key in body
    assert body["capabilities"] == ["completion"]
    arch = body["model_info"]["general.architecture"]
    assert body["model_info"][f"{arch}.context_length"] > 0
    # LiteLLM still sends the deprecated "name" field.
    assert jcall(stub, "POST", "/api/show", {"name": "llama3.2:3b"})[0] == 200
    assert jcall(stub, "POST", "/api/show", {"model": "x"}) == (
        404, {"error": "model 'x' not found"})


# -- chat / generate -----------------------------------------------------------

def test_chat_streams_by_default(stub):
    resp, data = call(stub, "POST", "/api/chat", chat_body("hello world"))
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/x-ndjson"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Length") is None
    lines = ndjson(data)
    assert len(lines) > 2
    assert all(not line["done"] for line in lines[:-1])
    last = lines[-1]
    assert last["done"] is True and last["done_reason"] == "stop"
    for key in ("total_duration", "load_duration", "prompt_eval_count",
                "prompt_eval_duration", "eval_count", "eval_duration"):
        assert isinstance(last[key], int) and last[key] > 0
    assert all(line["model"] == "llama3.2:3b" and line["created_at"] for line in lines)
    assert all(line["message"]["role"] == "assistant" for line in lines)
    text = "".join(line["message"]["content"] for line in lines)
    assert text == "Hello from llm01: you said hello world"


def test_slowstream_streams_one_piece_a_second(stub):
    start = time.monotonic()
    resp, data = call(stub, "POST", "/api/chat", chat_body("slowstream 3"))
    elapsed = time.monotonic() - start
    lines = ndjson(data)
    assert resp.status == 200 and lines[-1]["done"] is True
    assert "".join(line["message"]["content"] for line in lines) == "tick0 tick1 tick2 "
    assert 2.9 <= elapsed < 6, elapsed  # 3 pieces and the final object, 1 s apart


def test_chat_stream_is_one_ndjson_object_per_http_chunk(stub):
    # Read the raw wire bytes to check the chunked framing itself.
    body = json.dumps(chat_body("wire check")).encode()
    with socket.create_connection(("127.0.0.1", stub.port), timeout=10) as sock:
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    objs = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        payload, rest = rest[:size], rest[size:]
        assert rest.startswith(b"\r\n") and payload.endswith(b"\n")
        rest = rest[2:]
        objs.append(json.loads(payload))
    assert len(objs) > 2 and objs[-1]["done"] is True


def test_chat_non_stream_is_one_object(stub):
    resp, data = call(stub, "POST", "/api/chat", chat_body("hi", stream=False))
    assert resp.status == 200
    assert resp.getheader("Content-Length") == str(len(data))
    body = json.loads(data)  # a second JSON line would make this fail
    assert body["message"] == {"role": "assistant", "content": "Hello from llm01: you said hi"}
    assert body["done"] is True and body["done_reason"] == "stop"
    assert body["eval_count"] > 0 and body["prompt_eval_count"] > 0


def test_chat_answers_last_user_message_truncated(stub):
    long = "word " * 40
    msgs = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": long}]
    _, body = jcall(stub, "POST", "/api/chat",
                    {"model": "qwen2.5:7b", "messages": msgs, "stream": False})
    content = body["message"]["content"]
    assert content.startswith("Hello from llm01: you said word word")
    assert "first" not in content and len(content) < len(long)


def test_chat_without_messages_just_loads(stub):
    status, body = jcall(stub, "POST", "/api/chat", {"model": "llama3.2:3b"})
    assert status == 200 and body["done"] is True and body["done_reason"] == "load"


def test_generate_stream_and_non_stream(stub):
    resp, data = call(stub, "POST", "/api/generate", {"model": "qwen2.5:7b", "prompt": "ping me"})
    lines = ndjson(data)
    assert resp.getheader("Content-Type") == "application/x-ndjson" and len(lines) > 2
    assert "".join(line["response"] for line in lines) == "Hello from llm01: you said ping me"
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert lines[-1]["eval_count"] > 0 and lines[-1]["context"]
    status, body = jcall(stub, "POST", "/api/generate",
                         {"model": "qwen2.5:7b", "prompt": "ping me", "stream": False})
    assert status == 200 and body["response"] == "Hello from llm01: you said ping me"
    assert "message" not in body and body["done"] is True


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/api/embed"])
def test_unknown_model_404(stub, path):
    status, body = jcall(stub, "POST", path, {"model": "x", "prompt": "p", "input": "i",
                                              "messages": [{"role": "user", "content": "c"}]})
    assert (status, body) == (404, {"error": 'model "x" not found, try pulling it first'})


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", ""])
def test_malformed_json_400(stub, raw):
    status, body = jcall(stub, "POST", "/api/chat", raw)
    assert status == 400 and body["error"]


def test_missing_model_400(stub):
    status, body = jcall(stub, "POST", "/api/chat", {"messages": []})
    assert (status, body) == (400, {"error": "model is required"})


# -- embeddings / ps / unknown routes ------------------------------------------

def test_embed_deterministic_and_normalised(stub):
    req = {"model": "llama3.2:3b", "input": ["a", "b", "a"]}
    status, body = jcall(stub, "POST", "/api/embed", req)
    assert status == 200 and body["model"] == "llama3.2:3b"
    a, b, a2 = body["embeddings"]
    assert a == a2 and a != b and len(a) == 8
    assert math.isclose(sum(v * v for v in a), 1.0, rel_tol=1e-4)
    assert jcall(stub, "POST", "/api/embed", req)[1]["embeddings"] == body["embeddings"]
    single = jcall(stub, "POST", "/api/embed", {"model": "llama3.2:3b", "input": "a"})[1]
    assert single["embeddings"] == [a]


def test_legacy_embeddings(stub):
    status, body = jcall(stub, "POST", "/api/embeddings", {"model": "qwen2.5:7b", "prompt": "a"})
    assert status == 200 and len(body["embedding"]) == 8
    assert body == jcall(stub, "POST", "/api/embeddings", {"model": "qwen2.5:7b", "prompt": "a"})[1]


def test_ps_lists_models_that_were_used(stub):
    assert jcall(stub, "GET", "/api/ps") == (200, {"models": []})
    jcall(stub, "POST", "/api/chat", chat_body(model="qwen2.5:7b", stream=False))
    status, body = jcall(stub, "GET", "/api/ps")
    assert status == 200 and [m["name"] for m in body["models"]] == ["qwen2.5:7b"]
    assert {"model", "size", "digest", "details", "expires_at", "size_vram"} <= set(body["models"][0])


@pytest.mark.parametrize("method,path", [("GET", "/api/nope"), ("POST", "/api/tags"),
                                         ("GET", "/api/chat"), ("PUT", "/api/chat"),
                                         ("DELETE", "/"), ("GET", "/_stub/nope")])
def test_anything_else_404(stub, method, path):
    resp, _ = call(stub, method, path, {} if method == "POST" else None)
    assert resp.status == 404


# -- /_stub control ------------------------------------------------------------

def test_stats_count_requests_per_path_and_model(stub):
    for _ in range(2):
        call(stub, "POST", "/api/chat", chat_body(model="qwen2.5:7b"))
    call(stub, "POST", "/api/generate", {"model": "llama3.2:3b", "prompt": "p"})
    call(stub, "POST", "/api/chat", chat_body(model="missing:1b"))
    call(stub, "GET", "/api/tags")
    expected = {"name": "llm01",
                "requests": {"/api/chat": 3, "/api/generate": 1, "/api/tags": 1},
                "models": {"qwen2.5:7b": 2, "llama3.2:3b": 1, "missing:1b": 1}}
    assert stub.stats() == expected
    # Control endpoints are not counted themselves.
    assert jcall(stub, "GET", "/_stub/stats") == (200, expected)
    assert jcall(stub, "GET", "/_stub/stats") == (200, expected)


def test_reset_over_http_and_api(stub):
    call(stub, "POST", "/api/chat", chat_body())
    assert jcall(stub, "POST", "/_stub/reset") == (
        200, {"name": "llm01", "requests": {}, "models": {}})
    call(stub, "GET", "/api/tags")
    assert stub.stats()["requests"] == {"/api/tags": 1}
    stub.reset()
    assert stub.stats()["requests"] == {}


def test_configure_models_over_http(stub):
    status, cfg = jcall(stub, "POST", "/_stub/config", {"models": ["llama3.2:3b"]})
    assert status == 200 and cfg["models"] == ["llama3.2:3b"]
    names = [m["name"] for m in jcall(stub, "GET", "/api/tags")[1]["models"]]
    assert names == ["llama3.2:3b"]
    assert jcall(stub, "POST", "/api/chat", chat_body(model="qwen2.5:7b"))[0] == 404
    assert jcall(stub, "POST", "/api/show", {"model": "qwen2.5:7b"})[0] == 404
    assert jcall(stub, "POST", "/api/chat", chat_body(model="llama3.2:3b", stream=False))[0] == 200
    stub.configure(models=MODELS)  # and back, through the Python API
    assert jcall(stub, "POST", "/api/chat", chat_body(model="qwen2.5:7b", stream=False))[0] == 200


def test_config_rejects_bad_input(stub):
    assert jcall(stub, "POST", "/_stub/config", {"bogus": 1})[0] == 400
    assert jcall(stub, "POST", "/_stub/config", {"fail_status": 200})[0] == 400
    assert jcall(stub, "POST", "/_stub/config", "{oops")[0] == 400
    with pytest.raises(ValueError):
        stub.configure(colour="red")
    assert jcall(stub, "GET", "/_stub/config")[1]["fail_status"] is None


def test_fail_status(stub):
    jcall(stub, "POST", "/_stub/config", {"fail_status": 503})
    for method, path, body in [("POST", "/api/chat", chat_body()), ("GET", "/api/tags", None),
                               ("POST", "/api/chat", "{broken")]:
        status, err = jcall(stub, method, path, body)
        assert status == 503 and "llm01" in err["error"]
    assert call(stub, "GET", "/")[0].status == 200  # health of the process itself
    jcall(stub, "POST", "/_stub/config", {"fail_status": None})
    assert jcall(stub, "GET", "/api/tags")[0] == 200


def test_delay_ms_delays_answers(stub):
    stub.configure(delay_ms=300)
    t0 = time.monotonic()
    status, _ = jcall(stub, "GET", "/api/version")
    assert status == 200 and time.monotonic() - t0 >= 0.29
    jcall(stub, "POST", "/_stub/config", {"delay_ms": 0})
    assert stub.config()["delay_ms"] == 0


# -- connection handling ---------------------------------------------------------

def test_keepalive_50_requests_fast_on_one_connection(stub):
    # ~44 ms per request without TCP_NODELAY (Nagle + delayed ACK) -> ~2 s total.
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=10)
    conn.connect()
    first_sock = conn.sock
    requests = [("POST", "/api/chat", chat_body()),                 # streamed, chunked
                ("POST", "/api/chat", chat_body(stream=False)),     # Content-Length
                ("GET", "/api/tags", None)]
    t0 = time.monotonic()
    for i in range(50):
        resp, data = call(stub, *requests[i % 3], conn=conn)
        assert resp.status == 200 and data
    elapsed = time.monotonic() - t0
    assert conn.sock is first_sock  # http.client reconnects silently if the server closed
    conn.close()
    assert stub.stats()["requests"]["/api/chat"] == 34
    assert elapsed < 1.0, f"50 keep-alive requests took {elapsed:.2f}s"


def test_stop_closes_idle_keepalive_connections():
    s = OllamaStub().start()
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
    assert call(s, "GET", "/", conn=conn)[0].status == 200
    s.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/")
        conn.getresponse()
    conn.close()


# -- subprocess helper -----------------------------------------------------------

def test_subprocess_helper_starts_serves_and_stops(tmp_path):
    pidfile = tmp_path / "stub.pid"
    proc, url = start_stub_process("llm07", ["llama3.2:3b"], pidfile=pidfile)
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert int(pidfile.read_text()) == proc.pid
        assert os.getpgid(proc.pid) == proc.pid  # own process group
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/api/chat", json.dumps(chat_body("yo", stream=False)))
        body = json.loads(conn.getresponse().read())
        conn.close()
        assert body["message"]["content"] == "Hello from llm07: you said yo"
    finally:
        rc = stop_stub_process(proc)
    assert rc == 0  # SIGTERM handled as a clean shutdown
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    assert not pidfile.exists()


def test_subprocess_helper_reports_failed_start(stub):
    # The port is taken by the in-process stub, so the child cannot bind it.
    with pytest.raises(RuntimeError, match="did not start"):
        start_stub_process("llm08", ["llama3.2:3b"], port=stub.port)

#!/usr/bin/env python3
"""A small stand-in Ollama server for tests (stdlib only).

Speaks enough of Ollama's HTTP API (docs/api.md) for LiteLLM's ``ollama/`` and
``ollama_chat/`` providers and for health checks.  Replies name the stub
("Hello from llm01: ...") so tests can tell which backend answered.

Not part of Ollama, under ``/_stub/``:
  GET  /_stub/stats   -> {"name", "requests": {path: n}, "models": {model: n}}
  POST /_stub/reset   -> zero the counters
  GET|POST /_stub/config -> read / change {"models", "delay_ms", "fail_status"}

A chat or generate whose last user text is "slowstream N" streams N pieces,
one a second (long streams for the reload tests).

CLI: python tests/ollama_stub.py --port 0 --name llm01 --models a:1b,b:7b
"""
import argparse
import hashlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from queue import Empty, Queue

DEFAULT_VERSION = "0.5.7"
DEFAULT_MODELS = ("llama3.2:3b",)
CONFIG_KEYS = ("models", "delay_ms", "fail_status")


def _norm(name):
    """Ollama resolves a name without a tag to ':latest'."""
    name = str(name or "").strip()
    return name if not name or ":" in name else name + ":latest"


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _details(name):
    base, _, tag = name.partition(":")
    family = re.sub(r"[\d.]+$", "", base) or base  # "llama3.2" -> "llama"
    m = re.match(r"(\d+(?:\.\d+)?)b", tag, re.I)
    return {"parent_model": "", "format": "gguf", "family": family,
            "families": [family],
            "parameter_size": f"{m.group(1) if m else '7'}B",
            "quantization_level": "Q4_K_M"}


def _digest(name):
    return hashlib.sha256(name.encode()).hexdigest()


def _size(name):
    return 1_000_000_000 + int(_digest(name)[:6], 16) * 1000


def _vector(text, dims=8):
    """Deterministic, L2-normalised (like /api/embed) vector for a text."""
    raw = hashlib.sha256(text.encode()).digest()[:dims]
    vec = [b / 255.0 - 0.5 for b in raw]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [round(v / norm, 6) for v in vec]


def _text(content):
    # Ollama content is a string; tolerate OpenAI-style lists of parts.
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # keep-alive threads must not block shutdown

    def __init__(self, addr, stub):
        self.stub = stub
        self.conns = set()  # open sockets, so stop() can cut keep-alive ones
        super().__init__(addr, _Handler)

    def process_request(self, request, client_address):
        self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # Clients hanging up mid-stream are normal; anything else is a stub bug.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Ollama's Go server
    disable_nagle_algorithm = True  # TCP_NODELAY: avoid ~40 ms Nagle/delayed-ACK stalls
    timeout = 120  # idle keep-alive connections eventually free their thread

    def version_string(self):
        return "ollama-stub"

    def log_message(self, fmt, *args):
        if self.server.stub.verbose:
            sys.stderr.write(f"[{self.server.stub.name}] {fmt % args}\n")

    # -- plumbing ---------------------------------------------------------
    # Every method goes through _dispatch, so unknown ones get Ollama's (gin's)
    # plain 404 rather than http.server's 501.
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = \
        lambda self: self._dispatch(self.command)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                body += self.rfile.read(size + 2)[:size]
                if size == 0:
                    return body
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status, body, ctype="application/json; charset=utf-8"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode() if ctype.startswith("application/json") \
                else str(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status, message):
        self._send(status, {"error": message})

    def _stream(self, objs, interval=0.0):
        # Ollama streams NDJSON with chunked transfer encoding, one object per chunk.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, obj in enumerate(objs):
            if interval and index:
                time.sleep(interval)
            data = json.dumps(obj).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _dispatch(self, method):
        stub = self.server.stub
        path = self.path.split("?", 1)[0]
        raw = self._read_body()  # always drain it, or keep-alive desyncs
        if path.startswith("/_stub/"):
            return self._control(method, path, raw)
        with stub.lock:
            stub.requests[path] += 1
            delay, fail = stub.delay_ms, stub.fail_status
        if delay:
            time.sleep(delay / 1000.0)
        if fail and path.startswith("/api/"):
            return self._error(fail, f"{stub.name}: simulated failure ({fail})")
        route = ROUTES.get((method if method != "HEAD" else "GET", path))
        if route is None:
            return self._send(404, "404 page not found", "text/plain")
        if method != "POST":
            return route(self)
        if not raw.strip():
            return self._error(400, "missing request body")
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("request body must be a JSON object")
        except ValueError as exc:
            return self._error(400, f"invalid JSON: {exc}")
        return route(self, req)

    def _control(self, method, path, raw):
        stub = self.server.stub
        if (method, path) == ("GET", "/_stub/stats"):
            return self._send(200, stub.stats())
        if (method, path) == ("POST", "/_stub/reset"):
            stub.reset()
            return self._send(200, stub.stats())
        if path == "/_stub/config" and method in ("GET", "POST"):
            try:
                if method == "POST":
                    stub.configure(**json.loads(raw or b"{}"))
            except (ValueError, TypeError) as exc:
                return self._error(400, str(exc))
            return self._send(200, stub.config())
        return self._send(404, "404 page not found", "text/plain")

    def _model(self, req, count=True, not_found='model "{}" not found, try pulling it first'):
        """Resolve the requested model; send 400/404 and return None if bad.

        Inference requests are counted per model (known or not) so tests can
        see which backend was asked for what."""
        stub = self.server.stub
        asked = req.get("model") or req.get("name")  # /api/show still takes "name"
        name = _norm(asked)
        if not name:
            self._error(400, "model is required")
            return None
        with stub.lock:
            stub.model_hits[name] += count
            known = name in stub.models
        if not known:
            self._error(404, not_found.format(asked))
            return None
        return name

    # -- Ollama API -------------------------------------------------------
    def root(self):
        self._send(200, "Ollama is running", "text/plain; charset=utf-8")

    def version(self):
        self._send(200, {"version": self.server.stub.version})

    def tags(self):
        stub = self.server.stub
        self._send(200, {"models": [
            {"name": m, "model": m, "modified_at": stub.started, "size": _size(m),
             "digest": _digest(m), "details": _details(m)} for m in stub.models]})

    def ps(self):
        stub = self.server.stub
        with stub.lock:  # "loaded" = used since start/reset, like Ollama's lazy loading
            loaded = [m for m in stub.models if stub.model_hits[m]]
        expires = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
        self._send(200, {"models": [
            {"name": m, "model": m, "size": _size(m), "digest": _digest(m),
             "details": _details(m), "expires_at": expires, "size_vram": _size(m),
             "context_length": 4096} for m in loaded]})

    def show(self, req):
        name = self._model(req, count=False, not_found="model '{}' not found")
        if not name:
            return
        d = _details(name)
        self._send(200, {
            "modelfile": f"# Modelfile generated by ollama-stub\nFROM {name}\n",
            "parameters": 'stop                           "<|eot_id|>"',
            "template": "{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}",
            "details": d,
            "model_info": {"general.architecture": d["family"],
                           "general.parameter_count": _size(name),
                           f"{d['family']}.context_length": 8192,
                           f"{d['family']}.embedding_length": 8},
            "capabilities": ["completion"],
            "modified_at": self.server.stub.started})

    def _reply(self, req, key):
        """Chat (key="message") or generate (key="response") answer, streamed or not."""
        def head():
            return {"model": req.get("model"), "created_at": _now()}

        def body(text):
            return {"role": "assistant", "content": text} if key == "message" else text

        if key == "message":
            msgs = [m for m in req.get("messages") or [] if isinstance(m, dict)]
            users = [m for m in msgs if m.get("role") == "user"] or msgs
            said = _text(users[-1].get("content")) if users else None
        else:
            said = _text(req.get("prompt")) or None
        if said is None:
            # No messages / empty prompt only loads the model in real Ollama.
            return self._send(200, {**head(), key: body(""), "done_reason": "load",
                                    "done": True})
        said = " ".join(said.split())  # one line, whatever template LiteLLM applied
        short = said if len(said) <= 60 else said[:57] + "..."
        text = f"Hello from {self.server.stub.name}: you said {short}"
        pieces = re.findall(r"\S+\s*", text)  # words keep their trailing space
        # "slowstream N": N pieces, one a second (a long stream, for reload tests)
        slow = re.match(r"slowstream (\d+)$", said)
        if slow:
            pieces = [f"tick{i} " for i in range(int(slow.group(1)))]
        n_prompt = max(1, len(said.split()))
        chunks = [{**head(), key: body(p), "done": False} for p in pieces]
        final = {**head(), key: body(""), "done_reason": "stop", "done": True,
                 "total_duration": 5_000_000, "load_duration": 1_000_000,
                 "prompt_eval_count": n_prompt, "prompt_eval_duration": 1_000_000,
                 "eval_count": len(pieces), "eval_duration": 3_000_000}
        if key == "response":
            final["context"] = list(range(1, n_prompt + len(pieces) + 1))
        if req.get("stream") is not False:  # Ollama streams unless told not to
            self._stream(chunks + [final], interval=1.0 if slow else 0.0)
        else:
            self._send(200, {**final, key: body(text)})

    def chat(self, req):
        if self._model(req):
            self._reply(req, "message")

    def generate(self, req):
        if self._model(req):
            self._reply(req, "response")

    def embed(self, req):
        if not self._model(req):
            return
        inputs = req.get("input", "")
        inputs = [inputs] if isinstance(inputs, str) else [_text(i) for i in inputs]
        self._send(200, {"model": req.get("model"),
                         "embeddings": [_vector(i) for i in inputs],
                         "total_duration": 1_000_000, "load_duration": 100_000,
                         "prompt_eval_count": sum(len(i.split()) for i in inputs)})

    def embeddings(self, req):  # the older, single-prompt endpoint
        if self._model(req):
            self._send(200, {"embedding": _vector(_text(req.get("prompt")))})


ROUTES = {
    ("GET", "/"): _Handler.root,
    ("GET", "/api/version"): _Handler.version,
    ("GET", "/api/tags"): _Handler.tags,
    ("GET", "/api/ps"): _Handler.ps,
    ("POST", "/api/show"): _Handler.show,
    ("POST", "/api/chat"): _Handler.chat,
    ("POST", "/api/generate"): _Handler.generate,
    ("POST", "/api/embed"): _Handler.embed,
    ("POST", "/api/embeddings"): _Handler.embeddings,
}


class OllamaStub:
    """In-process stub: ``with OllamaStub(name="llm01") as s: ... s.url ...``."""

    def __init__(self, host="127.0.0.1", port=0, name="llm01", models=DEFAULT_MODELS,
                 version=DEFAULT_VERSION, delay_ms=0, fail_status=None, verbose=False):
        self.host, self.port, self.name = host, port, name
        self.version, self.verbose = version, verbose
        self.lock = threading.Lock()
        self.requests, self.model_hits = Counter(), Counter()
        self.models, self.delay_ms, self.fail_status = [], 0, None
        self.configure(models=models, delay_ms=delay_ms, fail_status=fail_status)
        self.started = _now()
        self._server = self._thread = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]  # real port when 0 was asked
        # A short poll interval keeps stop() (and so SIGTERM) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"ollama-stub-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        for sock in list(self._server.conns):  # drop idle keep-alive clients too
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stats(self):
        with self.lock:
            return {"name": self.name, "requests": dict(self.requests),
                    "models": dict(self.model_hits)}

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.model_hits.clear()

    def config(self):
        with self.lock:
            return {"name": self.name, "models": list(self.models),
                    "delay_ms": self.delay_ms, "fail_status": self.fail_status}

    def configure(self, **kw):
        """Change models / delay_ms / fail_status at runtime (None clears fail_status)."""
        unknown = set(kw) - set(CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        new = {}  # validate everything before changing anything
        if "models" in kw:
            models = kw["models"] or []
            if isinstance(models, str):
                models = models.split(",")
            new["models"] = [_norm(m) for m in models if _norm(m)]
        if "delay_ms" in kw:
            new["delay_ms"] = max(0.0, float(kw["delay_ms"] or 0))
        if kw.get("fail_status") is not None:
            new["fail_status"] = int(kw["fail_status"])
            if not 400 <= new["fail_status"] <= 599:
                raise ValueError("fail_status must be 400..599 or null")
        elif "fail_status" in kw:
            new["fail_status"] = None
        with self.lock:
            for key, value in new.items():
                setattr(self, key, value)
        return self.config()


def start_stub_process(name, models, port=0, host="127.0.0.1", pidfile=None,
                       version=None, verbose=False, timeout=10.0, stderr=None):
    """Run the CLI in its own process group; return (Popen, url) once it listens.

    ``stderr``: a file for the server's stderr (a detached server must not keep
    its parent's terminal or pipe open); inherited when None.
    """
    if not isinstance(models, str):
        models = ",".join(models)
    cmd = [sys.executable, os.path.abspath(__file__), "--host", host, "--port", str(port),
           "--name", name, "--models", models]
    cmd += ["--pidfile", str(pidfile)] if pidfile else []
    cmd += ["--version", version] if version else []
    cmd += ["--verbose"] if verbose else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
    lines = Queue()  # a reader thread makes the readline wait time-bounded
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except Empty:
        line = ""
    m = re.match(r"listening on (http://\S+)", line)
    if not m:
        stop_stub_process(proc)
        raise RuntimeError(f"ollama stub {name!r} did not start (rc={proc.returncode}, "
                           f"output={line!r})")
    return proc, m.group(1)


def stop_stub_process(proc, timeout=10.0):
    """SIGTERM the stub by PID (SIGKILL if it lingers) and reap it."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    if proc.stdout:
        proc.stdout.close()
    return proc.returncode


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=11434)
    ap.add_argument("--name", default="llm01")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    ap.add_argument("--pidfile")
    ap.add_argument("--version", default=DEFAULT_VERSION)
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = ap.parse_args(argv)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    stub = OllamaStub(args.host, args.port, args.name, args.models.split(","),
                      version=args.version, verbose=args.verbose).start()
    try:
        if args.pidfile:
            with open(args.pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        print(f"listening on {stub.url}", flush=True)
        done.wait()  # the main thread only waits; serving runs in stub's thread
    finally:
        stub.stop()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

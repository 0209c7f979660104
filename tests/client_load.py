"""
A client load across a change of the gateway (stdlib only): threads that send
mixed chat and streaming requests, some streams long (the stand-in's
"slowstream N"), each on a fresh connection, and record every outcome.

``failed``: no answer, a refused or reset connection, or a status other than
200. ``cut``: a stream that began (200 and at least one chunk) and ended
before ``data: [DONE]``. ``added wait``: a request's latency minus the median
latency of its kind measured before the change (``baseline``).

Plain http by default; with ``cafile`` (``Load``) or ``context``
(``one_request``) over https, the server's chain and name (or IP SAN)
verified against that CA, never unverified.
"""

import http.client
import json
import ssl
import statistics
import threading
import time

KINDS = ("chat", "stream", "long")


def _body(model, kind, long_s):
    text = f"slowstream {long_s}" if kind == "long" else f"load {kind}"
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": kind != "chat"}


def https_context(cafile):
    """A client context that verifies the server against ``cafile`` only (chain, hostname or IP SAN)."""
    return ssl.create_default_context(cafile=str(cafile))


def _connection(host, port, timeout, context):
    if context is None:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)


def one_request(port, key, model, kind, long_s=70, timeout=600, host="127.0.0.1", context=None):
    """One request (https with ``context``): ``{"kind", "start", "end", "ok", "cut", "error", "chunks"}``."""
    start = time.monotonic()
    out = {"kind": kind, "start": start, "end": None, "ok": False, "cut": False, "error": "", "chunks": 0}
    conn = _connection(host, port, timeout, context)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(_body(model, kind, long_s)),
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        response = conn.getresponse()
        if response.status != 200:
            out["error"] = f"HTTP {response.status}: {response.read(300)!r}"
        elif kind == "chat":
            json.loads(response.read())["choices"][0]["message"]["content"]  # noqa: B018
            out["ok"] = True
        else:
            done = False
            for line in response:
                if line.startswith(b"data: "):
                    if line.strip() == b"data: [DONE]":
                        done = True
                        break
                    out["chunks"] += 1
            out["ok"] = done
            out["cut"] = not done and out["chunks"] > 0
            if not done:
                out["error"] = f"stream ended after {out['chunks']} chunks without [DONE]"
    except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["cut"] = kind != "chat" and out["chunks"] > 0
    finally:
        conn.close()
        out["end"] = time.monotonic()
    return out


class Load:
    """
    ``clients`` threads, each sending requests back to back: every
    ``long_every``-th client sends long streams only, the others chat and
    short streams in turn. ``with Load(...) as load:`` runs it. ``cafile``:
    over https to ``host``, verified against that CA.
    """

    def __init__(self, port, key, model, clients=24, long_every=4, long_s=70, key_of=None, host="127.0.0.1",
                 cafile=None):
        self.port, self.key, self.model = port, key, model
        self.host, self.context = host, https_context(cafile) if cafile else None
        self.clients, self.long_every, self.long_s = clients, long_every, long_s
        self.key_of = key_of  # callable -> the key to use now (a key rotation changes it)
        self.results = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _client(self, index):
        turn = 0
        while not self._stop.is_set():
            if self.long_every and index % self.long_every == 0:
                kind = "long"
            else:
                kind = ("chat", "stream")[turn % 2]
            turn += 1
            key = self.key_of() if self.key_of else self.key
            result = one_request(self.port, key, self.model, kind, self.long_s, host=self.host, context=self.context)
            with self._lock:
                self.results.append(result)
            if not result["ok"]:
                time.sleep(0.2)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def stop(self):
        """Let every request in flight finish (long streams too), then stop."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def __exit__(self, *exc):
        self.stop()

    def in_flight(self):
        with self._lock:
            done = len(self.results)
        return self.clients, done

    def wait_for(self, count, timeout=120):
        """Wait until ``count`` requests have completed (the load is warm)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.results) >= count:
                    return True
            time.sleep(0.2)
        return False


def summary(results, window=None, baseline=None):
    """
    Counts and waits of ``results``: requests in flight at some moment of
    ``window`` (start, end; monotonic) are the change's (all when None);
    the added wait is over those that started in it. ``baseline``: median
    latency per kind (from ``baselines``).
    """
    # the change's requests: in flight at some moment of the window
    inside = [r for r in results if window is None or (r["start"] <= window[1] and r["end"] >= window[0])]
    failed = [r for r in inside if not r["ok"]]
    added = []
    for result in (r for r in inside if window is None or r["start"] >= window[0]):
        base = (baseline or {}).get(result["kind"])
        if base is not None and result["ok"] and result["kind"] != "long":
            added.append(max(0.0, result["end"] - result["start"] - base))
    return {
        "requests": len(results),
        "during_change": len(inside),
        "failed": len(failed),
        "cut_streams": sum(1 for r in inside if r["cut"]),
        "long_streams_ok": sum(1 for r in inside if r["kind"] == "long" and r["ok"]),
        "added_wait_p50_s": round(_pct(added, 50), 3) if added else None,
        "added_wait_p99_s": round(_pct(added, 99), 3) if added else None,
        "errors": sorted({r["error"][:160] for r in failed})[:5],
    }


def baselines(results):
    """Median latency per kind of ``results`` (requests before the change)."""
    out = {}
    for kind in KINDS:
        values = [r["end"] - r["start"] for r in results if r["kind"] == kind and r["ok"]]
        if values:
            out[kind] = statistics.median(values)
    return out


def _pct(values, pct):
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

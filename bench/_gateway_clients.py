"""
The clients of the gateway benchmarks (bench/gateway.py, bench/edge.py): timed
sequential requests, wrk at a concurrency, clients through a backend's
failure, and the wait for readiness. Nothing here starts or stops the host.
"""

import http.client
import json
import os
import re
import resource
import subprocess
import threading
import time
import urllib.request

N_C1 = 400
WARMUP = 100
CHAT = {"model": "chat-small", "messages": [{"role": "user", "content": "hi"}]}


def sequential(host, port, path, body, n, key=None, context=None, fresh=False):
    """n keep-alive POSTs one after the other; latencies in ms (all must be 200).

    context: an ssl.SSLContext (https, verified as the context says); fresh: a new
    connection for every request, so that its TCP (and TLS) handshake is timed too."""
    def connect():
        if context is not None:
            return http.client.HTTPSConnection(host, port, timeout=30, context=context)
        return http.client.HTTPConnection(host, port, timeout=30)

    conn = connect()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = json.dumps(body)
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            if fresh:
                conn.close()
                conn = connect()  # connects inside request(): timed
            conn.request("POST", path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()
            out.append((time.perf_counter() - t0) * 1000)
            if response.status != 200:
                raise SystemExit(f"POST {path} -> {response.status}")
    finally:
        conn.close()
    return out


def wrk(url, key, seconds, workdir, connections=20):
    """wrk -t2 -cN: (requests per second, requests, errors, wrk's CPU seconds)."""
    script = os.path.join(workdir, "post.lua")
    with open(os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(
            'wrk.method = "POST"\n'
            f"wrk.body = '{json.dumps(CHAT)}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script, f"{url}/v1/chat/completions"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rps, total, errors, cpu


def failover(url, key, stub, seconds=12.0, kill_at=3.0, restore_at=7.0, clients=4):
    """Clients for `seconds`; stub killed at kill_at, restarted at restore_at."""
    results, lock = [], threading.Lock()
    start = time.monotonic()
    stop = start + seconds
    host, port = url.split("//")[1].split(":")

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        while time.monotonic() < stop:
            try:
                conn.request("POST", "/v1/chat/completions", body=json.dumps(CHAT), headers=headers)
                response = conn.getresponse()
                response.read()
                row = (time.monotonic() - start, response.status == 200,
                       response.getheader("x-litellm-model-api-base") or "")
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                row = (time.monotonic() - start, False, "")
            with lock:
                results.append(row)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(kill_at)
    stub.stop()
    time.sleep(restore_at - kill_at)
    stub.start()
    restored = time.monotonic() - start
    for thread in threads:
        thread.join()
    ok = sum(1 for _, good, _ in results if good)
    again = [t for t, good, base in results if good and t >= restored and base.endswith(f":{stub.port}")]
    return {
        "requests": len(results),
        "ok": ok,
        "rate": ok / len(results) if results else 0.0,
        "reuse_s": (min(again) - restored) if again else None,
        "window_s": seconds - restored,
    }


def wait_ready(url, timeout=240, proc_check=None):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(url + "/health/readiness", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - t0
        except OSError:
            pass
        if proc_check:
            proc_check()
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")

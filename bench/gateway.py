#!/usr/bin/env python3
"""
The gateway under load: the formula's deployed service against LiteLLM's
stock start, in the same systemd-nspawn host, in front of two stand-in
Ollama servers that answer at once (tests/ollama_stub.py, on loopback).

Deploys the formula with salt-ssh, then starts every variant, each on its
own port (one at a time, to time its start), and measures them in rounds:
each round measures every variant in turn, alone on the 2 cores (the others
idle), so that noise from other work on this machine spreads over all of
them; the table gives medians over the rounds (and the spread of req/s):

* ``stock``: ``litellm --config stock.yaml`` as LiteLLM's docs start it (one
  uvicorn worker, default logging) from the same venv, a transient unit run
  as root; stock.yaml is the same model_list and master key with LiteLLM's
  default router settings; its env has only what LiteLLM needs offline
  (LITELLM_LOCAL_MODEL_COST_MAP, OLLAMA_API_BASE).
* ``formula``: the deployed ``litellm.service`` as the formula's defaults
  render it (config, env, hardened unit, uvicorn under the launcher on
  litellm.socket).
* with ``--sweep``: candidates for the defaults, each a copy of the deployed
  unit with only its uvicorn flags changed (workers, worker recycling),
  listening on its own port instead of the socket.

Per variant: start to ready; per round, overhead at concurrency 1
(sequential keep-alive requests through the gateway minus the median of the
same requests sent to a backend directly: p50/p95; sent in blocks of 50 that
alternate between the variants, so that all share the same noise) and
requests per second
at concurrency 20 (wrk with a Lua POST script, 2 threads; its CPU time is
printed to show it is not the bottleneck); then memory of every process of
the unit (RSS, and PSS, which counts pages shared between workers once)
after start and after 10,000 requests; failover: 4 clients for 12 s, backend
llm01 killed at 3 s and restarted at 7 s: success rate and time until llm01
serves again.

    .venv/bin/python bench/gateway.py [--sweep] [--rounds 3] [--duration 15]
    .venv/bin/python bench/gateway.py --client-key [--rounds 3] [--duration 15]

Goals (issue 5): >= 1.5x stock throughput at concurrency 20; p95 overhead at
concurrency 1 no worse than stock; failover 100 %.

With ``--client-key`` (issue 13) the formula is deployed with one client key
(litellm:keys, its hash) and the same service is measured with that key
against the master key, in the same rounds (c1 blocks alternate, c20 in
short windows that alternate, ABBA); the goals are judged on the medians of
the per-round pairs; both keys reach wrk through a 0600 Lua file, never
argv. Goals: the hook adds <= 1 ms to p95 at c1 and costs <= 5 % of
throughput at c20.
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from _lib import BenchSite, header, median, percentile, table, verdict
from tests.harness.site import free_port

VENV = "/opt/litellm/venv"
BENCH_DIR = "/etc/litellm-bench"
N_C1 = 400
WARMUP = 100
RECYCLE = 10000
TARGET_REQUESTS = 10000
WINDOWS = 5  # --client-key: wrk windows per key and round, alternating
CHAT = {"model": "chat-small", "messages": [{"role": "user", "content": "hi"}]}


def flags(workers, recycle=0):
    """uvicorn options of a candidate (the unit runs uvicorn under the formula's launcher)."""
    parts = [f"--workers {workers}"]
    if recycle:
        parts.append(f"--limit-max-requests {recycle} --limit-max-requests-jitter {recycle // 10}")
    return " ".join(parts)


def workers_in(exec_line):
    return int(re.search(r"--workers (\d+)", exec_line).group(1))


SWEEP = [
    ("uvicorn x1", flags(1)),
    ("uvicorn x3", flags(3)),
    ("uvicorn x2, recycle 10k", flags(2, RECYCLE)),
]


# --- clients ----------------------------------------------------------------------------


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


# --- the host side ----------------------------------------------------------------------


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


def unit_rss(site, unit):
    """[(pid, RSS MiB, command)] of the unit's processes, read from this machine's /proc."""
    ns = os.readlink(f"/proc/{site.host.pid1}/ns/pid")
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                continue
            with open(f"/proc/{entry}/cgroup") as handle:
                if not re.search(rf"/{re.escape(unit)}\.service$", handle.read(), re.M):
                    continue
            with open(f"/proc/{entry}/smaps_rollup") as handle:
                text = handle.read()
            rss = int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1)) / 1024
            pss = int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1)) / 1024
        except (OSError, AttributeError):
            continue
        rows.append((int(entry), rss, pss))
    return sorted(rows)


def describe_rss(rows):
    """'RSS total MiB (p1/p2/...), PSS total'."""
    if not rows:
        return "-"
    return (f"{sum(r for _, r, _ in rows):.0f} ({'/'.join(f'{r:.0f}' for _, r, _ in rows)}), "
            f"PSS {sum(p for _, _, p in rows):.0f}")


class Variant:
    def __init__(self, name, unit, url, start, stop):
        self.name, self.unit, self.url, self._start, self._stop = name, unit, url, start, stop
        self.port = int(url.rsplit(":", 1)[1])

    def start(self):
        self._start()

    def stop(self):
        self._stop()


def make_variants(site, sweep):
    host = site.host
    deployed = host.run(["cat", "/etc/systemd/system/litellm.service"]).stdout
    exec_line = next(line for line in deployed.splitlines() if line.startswith("ExecStart="))
    host.run(["mkdir", "-p", BENCH_DIR])
    config = json.loads(json.dumps(_yaml(host.run(["cat", "/etc/litellm/config.yaml"]).stdout)))
    stock_config = {
        "model_list": config["model_list"],
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    host.run(["tee", f"{BENCH_DIR}/stock.yaml"], input=json.dumps(stock_config, indent=2))
    env = (f"LITELLM_MASTER_KEY={site.master_key}\nLITELLM_LOCAL_MODEL_COST_MAP=True\n"
           f"OLLAMA_API_BASE={site.stubs[0].url}\n")
    host.run(["sh", "-c", f"umask 077; cat > {BENCH_DIR}/stock.env"], input=env)
    variants = []
    ports = iter(site_free_ports(site, 1 + len(sweep or [])))
    stock_port = next(ports)

    def stock_start():
        host.run(["systemd-run", "--unit=litellm-stock", "--property=WorkingDirectory=/root",
                  f"--property=EnvironmentFile={BENCH_DIR}/stock.env", "--setenv=HOME=/root",
                  f"{VENV}/bin/litellm", "--config", f"{BENCH_DIR}/stock.yaml", "--host", "127.0.0.1",
                  "--port", str(stock_port)])

    def stock_stop():
        host.run(["systemctl", "stop", "litellm-stock"], check=False)
        host.run(["systemctl", "reset-failed", "litellm-stock"], check=False)

    variants.append(Variant("stock: litellm --config (1 uvicorn worker, default logging)", "litellm-stock",
                            f"http://127.0.0.1:{stock_port}", stock_start, stock_stop))
    variants.append(Variant(f"formula defaults ({workers_in(exec_line)} uvicorn workers, on litellm.socket)",
                            "litellm", site.url,
                            lambda: host.run(["systemctl", "start", "litellm.socket", "litellm"]),
                            lambda: host.run(["systemctl", "stop", "litellm.socket", "litellm"])))
    for index, (label, extra) in enumerate(sweep or []):
        unit, port = f"litellm-sweep{index}", next(ports)
        # a candidate listens itself (no socket unit): the launcher takes uvicorn's --host/--port
        line = re.sub(r"--workers \d+", extra, exec_line.replace("--fd 3", f"--host 127.0.0.1 --port {port}"))
        text = "\n".join(row for row in deployed.replace(exec_line, line).splitlines()
                         if not row.startswith(("Requires=litellm.socket", "After=litellm.socket")))
        host.run(["tee", f"/etc/systemd/system/{unit}.service"], input=text + "\n")

        def start(unit=unit):
            host.run(["systemctl", "daemon-reload"])
            host.run(["systemctl", "start", unit])

        variants.append(Variant(f"candidate: {label}", unit, f"http://127.0.0.1:{port}", start,
                                lambda unit=unit: host.run(["systemctl", "stop", unit], check=False)))
    return variants


def site_free_ports(site, count):
    """count free loopback ports other than the gateway's (the host shares this machine's network)."""
    ports = set()
    while len(ports) < count:
        port = free_port()
        if port != site.port:
            ports.add(port)
    return sorted(ports)


def _yaml(text):
    import salt.utils.yaml

    return salt.utils.yaml.safe_load(text)


def start(site, variant):
    """Start a variant alone; its time to ready and memory after start."""
    variant.start()
    ready = wait_ready(variant.url)
    sequential("127.0.0.1", variant.port, "/v1/chat/completions", CHAT, WARMUP, site.master_key)
    return {"name": variant.name, "ready_s": ready, "rss_start": unit_rss(site, variant.unit),
            "served": WARMUP, "errors": 0, "rounds": []}


def latency_round(site, variants, records, blocks=8):
    """Overhead at concurrency 1: N_C1 sequential requests per variant, sent in blocks that
    alternate between the variants (and the backend alone), so that they share the same noise."""
    stub = site.stubs[1]
    size = N_C1 // blocks
    direct, gateway = [], [[] for _ in variants]
    for _ in range(blocks):
        direct += sequential("127.0.0.1", stub.port, "/api/chat",
                             {"model": "llama3.2:3b", "messages": CHAT["messages"], "stream": False}, size)
        for index, variant in enumerate(variants):
            gateway[index] += sequential("127.0.0.1", variant.port, "/v1/chat/completions", CHAT, size,
                                         site.master_key)
    base = median(direct)
    for record, latencies in zip(records, gateway):
        record["served"] += len(latencies)
        record["rounds"].append({"direct_p50": base, "p50": percentile(latencies, 50) - base,
                                 "p95": percentile(latencies, 95) - base})


def throughput_round(site, variant, record, duration, workdir):
    """Requests per second at concurrency 20."""
    rps, total, errors, wrk_cpu = wrk(variant.url, site.master_key, duration, workdir)
    record["served"] += total
    record["errors"] += errors
    record["rounds"][-1].update({"rps": rps, "wrk_cpu_per_s": wrk_cpu / duration})


def finish(site, variant, record, workdir, target):
    """Top up to `target` requests, memory after them, failover; then stop the variant."""
    pace = median([r["rps"] for r in record["rounds"]])
    while record["served"] < target:
        more = max(2, int((target - record["served"]) / max(pace, 1) * 1.1) + 1)
        pace, extra, extra_errors, _ = wrk(variant.url, site.master_key, more, workdir)
        record["served"] += extra
        record["errors"] += extra_errors
    record["rss_after"] = unit_rss(site, variant.unit)
    record["failover"] = failover(variant.url, site.master_key, site.stubs[0])
    variant.stop()
    for key in ("direct_p50", "p50", "p95", "rps", "wrk_cpu_per_s"):
        record[key] = median([r[key] for r in record["rounds"]])
    record["rps_all"] = [r["rps"] for r in record["rounds"]]
    return record


def _key_rounds(site, keys, rounds, duration, workdir):
    """Per key: c1 overhead p50/p95 (blocks alternating between the keys and the backend) and c20 req/s."""
    stub, size = site.stubs[1], N_C1 // 8
    out = {name: {"p50": [], "p95": [], "rps": [], "errors": 0} for name in keys}
    for index in range(rounds):
        direct, lat = [], {name: [] for name in keys}
        for _ in range(8):
            direct += sequential("127.0.0.1", stub.port, "/api/chat",
                                 {"model": "llama3.2:3b", "messages": CHAT["messages"], "stream": False}, size)
            for name, key in keys.items():
                lat[name] += sequential("127.0.0.1", site.port, "/v1/chat/completions", CHAT, size, key)
        base = median(direct)
        # c20 in WINDOWS short windows per key, ABBA order, so that both keys share the machine's drift
        served = {name: 0.0 for name in keys}
        for window in range(WINDOWS):
            order = list(keys) if (index + window) % 2 == 0 else list(reversed(keys))
            for name in order:
                rps, _, errors, _ = wrk(site.url, keys[name], max(1, duration // WINDOWS), workdir)
                served[name] += rps
                out[name]["errors"] += errors
        for name in keys:
            out[name]["rps"].append(served[name] / WINDOWS)
        for name in keys:
            out[name]["p50"].append(percentile(lat[name], 50) - base)
            out[name]["p95"].append(percentile(lat[name], 95) - base)
        print(f"  round {index + 1}: " + ", ".join(f"{n} {out[n]['rps'][-1]:.0f} req/s" for n in keys), flush=True)
    return {name: {k: (median(v) if isinstance(v, list) else v) for k, v in r.items()}
            | {"rps_all": r["rps"], "p95_all": r["p95"]} for name, r in out.items()}


def client_key_main(args):
    """The hook's cost: the same deployed service with a client key against the master key."""
    header("gateway: a client key (custom_auth hook) against the master key, same service, same run")
    t0 = time.monotonic()
    client_key = "sk-" + secrets.token_hex(24)
    keys_pillar = {"bench-client": {"hash": f"sha256:{hashlib.sha256(client_key.encode()).hexdigest()}",
                                    "models": ["chat-small"]}}
    with BenchSite("gateway-keys", settings={"health_check_interval": 300, "keys": keys_pillar}) as site, \
            tempfile.TemporaryDirectory() as workdir:
        site.salt_ssh("state.apply", "litellm").assert_ok("the deploy")
        flags_line = next(line for line in site.host.run(["cat", "/etc/systemd/system/litellm.service"])
                          .stdout.splitlines() if line.startswith("ExecStart="))
        print(f"deployed in {time.monotonic() - t0:.0f} s; {workers_in(flags_line)} "
              f"worker(s); {site.host.run(['nproc']).stdout.strip()} cores", flush=True)
        keys = {"master key": site.master_key, "client key": client_key}
        for key in keys.values():
            sequential("127.0.0.1", site.port, "/v1/chat/completions", CHAT, WARMUP, key)
        res = _key_rounds(site, keys, args.rounds, args.duration, workdir)
    master, client = res["master key"], res["client key"]
    table(["key", "c1 p50 ms", "c1 p95 ms", "c20 req/s (spread)", "errors"], [
        [name, f"{r['p50']:.2f}", f"{r['p95']:.2f}",
         f"{r['rps']:.0f} ({min(r['rps_all']):.0f}-{max(r['rps_all']):.0f})", r["errors"]]
        for name, r in res.items()])
    # paired per round (the two keys measured back to back): robust to the machine's drift
    p95_added = median([c - m for c, m in zip(client["p95_all"], master["p95_all"])])
    ratio = median([c / m for c, m in zip(client["rps_all"], master["rps_all"])])
    print("per round: c20 client/master " + ", ".join(
        f"{c / m:.2f}" for c, m in zip(client["rps_all"], master["rps_all"])) + "; c1 p95 added ms " + ", ".join(
        f"{c - m:+.2f}" for c, m in zip(client["p95_all"], master["p95_all"])))
    p95_ok, rps_ok = p95_added <= 1.0, ratio >= 0.95 and client["errors"] == 0
    print()
    table(["goal (client key vs master key)", "measured", "verdict"], [
        ["c1 p95 overhead added <= 1 ms (median of rounds)", f"{p95_added:+.2f} ms", verdict(p95_ok)],
        ["c20 throughput >= 95 % of the master key's (median of rounds)", f"{ratio:.1%}", verdict(rps_ok)],
    ])
    print(f"overhead = gateway latency minus the backend's own median; {args.rounds} round(s) of "
          f"{args.duration} s, medians; the master key passes the hook too (not a client key: handed on)")
    print(f"\ntotal bench time {time.monotonic() - t0:.0f} s; verdict: {'PASS' if p95_ok and rps_ok else 'FAIL'}")
    return 0 if p95_ok and rps_ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="also measure the candidate defaults")
    parser.add_argument("--client-key", action="store_true",
                        help="measure a client key against the master key on the formula's service (issue 13)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all variants; medians reported (3)")
    parser.add_argument("--duration", type=int, default=15, help="seconds of wrk at concurrency 20 per round (15)")
    parser.add_argument("--requests", type=int, default=TARGET_REQUESTS,
                        help=f"requests served before the second memory reading ({TARGET_REQUESTS})")
    args = parser.parse_args(argv)
    if args.client_key:
        return client_key_main(args)
    header("gateway: formula defaults vs LiteLLM's stock start, instant stand-in backends")
    t0 = time.monotonic()
    with BenchSite("gateway", settings={"health_check_interval": 300}) as site, \
            tempfile.TemporaryDirectory() as workdir:
        site.salt_ssh("state.apply", "litellm").assert_ok("the deploy")
        site.host.run(["systemctl", "stop", "litellm.socket", "litellm"])
        print(f"deployed in {time.monotonic() - t0:.0f} s; {site.host.run(['nproc']).stdout.strip()} cores",
              flush=True)
        variants = make_variants(site, SWEEP if args.sweep else None)
        records, results = [], []
        try:
            for variant in variants:
                records.append(start(site, variant))
                print(f"  started {variant.name}: ready in {records[-1]['ready_s']:.1f} s", flush=True)
            for index in range(1, args.rounds + 1):
                latency_round(site, variants, records)
                for variant, record in zip(variants, records):
                    throughput_round(site, variant, record, args.duration, workdir)
                print(f"  round {index}: " + ", ".join(f"{r['rounds'][-1]['rps']:.0f}" for r in records)
                      + " req/s", flush=True)
            for variant, record in zip(variants, records):
                results.append(finish(site, variant, record, workdir, args.requests))
        finally:
            for variant in variants[len(results):]:  # finish() stopped the others
                variant.stop()

    stock = results[0]
    formula = results[1]
    print(f"\nbackend alone (stand-in, direct): p50 {stock['direct_p50']:.2f} ms per request; wrk used "
          f"{max(r['wrk_cpu_per_s'] for r in results):.2f} CPU-s per s at most (of 2 cores); "
          f"{args.rounds} round(s) of {args.duration} s, medians")
    rows = []
    for r in results:
        f = r["failover"]
        reuse = f"{r['failover']['reuse_s']:.1f}" if f["reuse_s"] is not None else f"> {f['window_s']:.0f}"
        spread = "-".join(f"{v:.0f}" for v in (min(r["rps_all"]), max(r["rps_all"])))
        rows.append([
            r["name"], f"{r['ready_s']:.1f}", f"{r['p50']:.1f}", f"{r['p95']:.1f}",
            f"{r['p95'] / stock['p95']:.2f}", f"{r['rps']:.0f} ({spread})", f"{r['rps'] / stock['rps']:.2f}",
            r["errors"], f"{f['ok']}/{f['requests']} {f['rate']:.1%}", reuse,
            describe_rss(r["rss_start"]), r["served"], describe_rss(r["rss_after"]),
        ])
    table(["variant", "ready s", "c1 p50 ms", "c1 p95 ms", "p95 x stock", "c20 req/s", "x stock", "errors",
           "failover ok", "reuse s", "MiB after start", "requests", "MiB after"], rows)
    thr_ok = formula["rps"] >= 1.5 * stock["rps"]
    p95_ok = formula["p95"] <= stock["p95"]
    fail_ok = formula["failover"]["rate"] == 1.0
    print()
    table(["goal (formula defaults vs stock)", "measured", "verdict"], [
        ["c20 throughput >= 1.5x stock", f"{formula['rps'] / stock['rps']:.2f}x", verdict(thr_ok)],
        ["c1 p95 overhead <= stock", f"{formula['p95']:.1f} vs {stock['p95']:.1f} ms", verdict(p95_ok)],
        ["failover success 100 %", f"{formula['failover']['rate']:.1%} (stock {stock['failover']['rate']:.1%})",
         verdict(fail_ok)],
    ])
    print("overhead = gateway latency minus the backend's own median; memory: RSS total (per process: "
          "supervisor/workers), PSS total (shared pages counted once)")
    print(f"\ntotal bench time {time.monotonic() - t0:.0f} s; verdict: "
          f"{'PASS' if thr_ok and p95_ok and fail_ok else 'FAIL'}")
    return 0 if thr_ok and p95_ok and fail_ok else 1


if __name__ == "__main__":
    sys.exit(main())

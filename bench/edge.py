#!/usr/bin/env python3
"""
The edge's cost (issue 16): HTTPS on the listener (litellm:tls) and the
Prometheus metrics (litellm:metrics) against the plain http gateway, on one
booted systemd host, deployed with salt-ssh each way in the same run.

One host, one site (bench/_lib.py BenchSite, two stand-in Ollama servers
that answer at once), applied four times in this order, each pass measured
the same way once its apply has passed:

1. ``plain``: http, metrics off (the formula's defaults);
2. ``tls``: ``litellm:tls`` enabled, a certificate for ``localhost`` and
   ``127.0.0.1`` from a throw-away CA (tests/harness/pki.py), the key in the
   GPG-encrypted pillar (litellm:tls:key), ``base_url`` https://localhost;
   the client verifies the chain against that CA (never unverified);
3. ``metrics``: http, ``litellm:metrics`` enabled on loopback; its endpoint
   must answer ``/metrics/`` and count the requests of the pass;
4. ``plain again``: back to 1, to show the machine's drift over the run.

``--profile DIR``: in each http pass, one more wrk window while py-spy
(``pip install py-spy`` into the bench's venv) samples every worker from the
machine (the container's PIDs mapped to the machine's); DIR gets py-spy's
collapsed stacks per pass and worker.

The site CA is in ``litellm:ca_certificates`` in every pass (it costs nothing
at run time), so that only the listener and the callback differ.

Per pass: concurrency 1, sequential chats in blocks that alternate between
a new connection per request (its TCP and, over https, TLS handshake timed),
keep-alive, and the backend alone (direct); p50/p95 in ms, raw latency (not
minus the backend). Throughput: wrk at concurrency ``--connections`` in
``--rounds`` windows of ``--duration`` s (median, spread); over http only
(wrk does not verify certificates). Ratios are to the mean of the two plain
passes, which bracket the others.

    .venv/bin/python bench/edge.py [--rounds 3] [--duration 10] [--requests 240]
"""

import argparse
import json
import ssl
import sys
import tempfile
import time
import urllib.request

import _pyspy
from _lib import BenchSite, header, median, percentile, table
from _gateway_clients import CHAT, WARMUP, sequential, wrk
from tests.harness import pki, site as harness_site
from tests.harness.site import free_port, settings_with

BLOCKS = 8
COUNTER = "litellm_proxy_total_requests_metric_total"


def passes(base, cert, ca, tls_port, metrics_port):
    """(name, settings, tls?) in the order they are applied."""
    base = settings_with(base, ca_certificates={"edge-ca": ca})
    tls = settings_with(base, base_url=f"https://localhost:{tls_port}",
                        tls={"enabled": True, "certificate": cert})
    metrics = settings_with(base, metrics={"enabled": True, "bind_host": "127.0.0.1", "port": metrics_port})
    return [("plain", base, False), ("tls", tls, True), ("metrics", metrics, False), ("plain again", base, False)]


def write(bench, settings, tls_key=None):
    bench.settings = settings
    harness_site.write_pillar(bench.pillar_dir, settings, bench.gpg_home, bench.master_key)
    if tls_key:
        harness_site.append_tls_key(bench.pillar_dir, bench.gpg_home, tls_key)


def metrics_count(port):
    """(HTTP status, sum of the proxy's request counter) of the metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/", timeout=10) as response:
        text = response.read().decode()
        status = response.status
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith(COUNTER + "{") or line.startswith(COUNTER + " "))
    return status, total


def c1(bench, context, n):
    """Sequential chats: (new connection each, keep-alive, backend direct) latencies in ms, in alternating blocks."""
    stub, size = bench.stubs[1], max(1, n // BLOCKS)
    fresh, keep, direct = [], [], []
    direct_body = {"model": "llama3.2:3b", "messages": CHAT["messages"], "stream": False}
    for _ in range(BLOCKS):
        direct += sequential("127.0.0.1", stub.port, "/api/chat", direct_body, size)
        fresh += sequential("127.0.0.1", bench.port, "/v1/chat/completions", CHAT, size, bench.master_key,
                            context=context, fresh=True)
        keep += sequential("127.0.0.1", bench.port, "/v1/chat/completions", CHAT, size, bench.master_key,
                           context=context)
    return fresh, keep, direct


def profiled(bench, args, workdir, label):
    """One more wrk window while py-spy samples every worker: its summary (the window is not in the table)."""
    spies = _pyspy.record(_pyspy.worker_pids(bench.host), args.duration + 1, args.profile, label)
    wrk(bench.url, bench.master_key, args.duration, workdir, args.connections)
    for spy in spies:
        spy.wait(timeout=args.duration + 60)
    return _pyspy.summary(args.profile, label)


def measure(bench, context, args, workdir, metrics_port=None, label=""):
    sequential("127.0.0.1", bench.port, "/v1/chat/completions", CHAT, WARMUP, bench.master_key, context=context)
    fresh, keep, direct = c1(bench, context, args.requests)
    row = {"fresh": fresh, "keep": keep, "direct_p50": median(direct), "rps": [], "errors": 0, "wrk_cpu": 0.0}
    if context is None:
        before = metrics_count(metrics_port)[1] if metrics_port else None
        for _ in range(args.rounds):
            rps, total, errors, cpu = wrk(bench.url, bench.master_key, args.duration, workdir, args.connections)
            row["rps"].append(rps)
            row["errors"] += errors
            row["wrk_cpu"] = max(row["wrk_cpu"], cpu / args.duration)
            row.setdefault("requests", 0)
            row["requests"] += total
        if metrics_port:
            time.sleep(1)
            status, after = metrics_count(metrics_port)
            row["metrics"] = {"status": status, "counted": after - before, "sent": row["requests"]}
        if args.profile:
            row["profile"] = profiled(bench, args, workdir, label)
    return row


def print_profiles(results):
    for r in (r for r in results if "profile" in r):
        samples, share, incl, own = r["profile"]
        print(f"\nprofile {r['name']}: {samples} event-loop samples, {share} % in LiteLLM's prometheus callback")
        table(["inclusive %", "frame"], [[f"{pct}", frame[:150]] for pct, frame in incl])
        table(["self %", "frame"], [[f"{pct}", frame[:150]] for pct, frame in own])


def p(values, pct):
    return percentile(values, pct) if values else float("nan")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="wrk windows per http pass; median reported (3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk window (10)")
    parser.add_argument("--connections", type=int, default=20, help="wrk concurrency (20)")
    parser.add_argument("--requests", type=int, default=240,
                        help="c1 requests per pass and mode (new connection, keep-alive) (240)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy every worker in one more wrk window per http pass")
    return parser.parse_args(argv)


def run_passes(bench, args, workdir):
    """Apply every pass in turn (its own CA and certificate for https) and measure it: a row per pass."""
    results = []
    ca = pki.make_ca(bench.workdir / "pki" / "ca")
    cert_path, key_path = ca.issue(bench.workdir / "pki" / "gw", ["localhost", "127.0.0.1"], valid_days=90)
    context = ssl.create_default_context(cafile=str(ca.cert_path))  # verified: chain and IP SAN
    metrics_port = free_port()
    for name, settings, tls in passes(bench.settings, cert_path.read_text(), ca.cert_path.read_text(),
                                      bench.port, metrics_port):
        write(bench, settings, key_path.read_text() if tls else None)
        run = bench.salt_ssh("state.apply", "litellm").assert_ok(f"the {name} apply")
        state = run.states.get("litellm-service-running-service-running") or {}
        path = (state.get("changes") or {}).get("path", "-")
        uses_metrics = "metrics" in settings
        row = measure(bench, context if tls else None, args, workdir, metrics_port if uses_metrics else None,
                      label=name)
        row.update(name=name, apply_s=run.elapsed, path=path)
        results.append(row)
        print(f"  {name}: applied in {run.elapsed:.1f} s (path {path}); c1 new-connection p95 "
              f"{p(row['fresh'], 95):.2f} ms; " + (f"{median(row['rps']):.0f} req/s" if row["rps"] else "")
              + (f"; metrics {json.dumps(row['metrics'])}" if "metrics" in row else ""), flush=True)
    return results


def plain_bases(results):
    """(c1 p95 new connection, c1 p95 keep-alive, req/s): the means of the plain http passes."""
    plain = [r for r in results if r["name"].startswith("plain")]

    def base(key, pct):
        return sum(p(r[key], pct) for r in plain) / len(plain)

    return base("fresh", 95), base("keep", 95), sum(median(r["rps"]) for r in plain) / len(plain)


def pass_rows(results, bases):
    """The table's rows: every pass's numbers, ratios against the plain passes."""
    base_fresh95, base_keep95, base_rps = bases
    rows = []
    for r in results:
        rps = f"{median(r['rps']):.0f} ({min(r['rps']):.0f}-{max(r['rps']):.0f})" if r["rps"] else "-"
        rows.append([
            r["name"], f"{r['apply_s']:.1f}", r["path"],
            f"{p(r['fresh'], 50):.2f} / {p(r['fresh'], 95):.2f}", f"{p(r['fresh'], 95) / base_fresh95:.2f}",
            f"{p(r['keep'], 50):.2f} / {p(r['keep'], 95):.2f}", f"{p(r['keep'], 95) / base_keep95:.2f}",
            rps, f"{median(r['rps']) / base_rps:.2f}" if r["rps"] else "-", r["errors"],
        ])
    return rows


def print_costs(results, bases, args):
    """What https and metrics cost against plain http; True when the metrics endpoint counted the requests."""
    base_fresh95, base_keep95, base_rps = bases
    tls = next(r for r in results if r["name"] == "tls")
    metrics = next(r for r in results if r["name"] == "metrics")
    m = metrics["metrics"]
    metrics_ok = m["status"] == 200 and m["counted"] >= 0.99 * m["sent"]  # wrk counts only what it completed
    table(["edge cost (against the mean of the two plain passes)", "measured"], [
        ["handshake: c1 p95, new connection, https / http",
         f"{p(tls['fresh'], 95) / base_fresh95:.2f}x ({p(tls['fresh'], 95) - base_fresh95:+.2f} ms)"],
        ["c1 p95 keep-alive, https / http",
         f"{p(tls['keep'], 95) / base_keep95:.2f}x ({p(tls['keep'], 95) - base_keep95:+.2f} ms)"],
        [f"c{args.connections} throughput with metrics / without", f"{median(metrics['rps']) / base_rps:.2f}x"],
        ["metrics endpoint /metrics/ answers and counts the pass's requests",
         f"HTTP {m['status']}, {m['counted']:.0f} counted of {m['sent']} sent by wrk"],
    ])
    return metrics_ok


def main(argv=None):
    args = parse_args(argv)
    header("edge: https (litellm:tls) and metrics (litellm:metrics) against plain http, one host, same run")
    t0 = time.monotonic()
    with BenchSite("edge", settings={"health_check_interval": 300}) as bench, \
            tempfile.TemporaryDirectory() as workdir:
        results = run_passes(bench, args, workdir)
    bases = plain_bases(results)
    print(f"\nbackend alone (direct) p50: {median([r['direct_p50'] for r in results]):.2f} ms; wrk used "
          f"{max(r['wrk_cpu'] for r in results):.2f} CPU-s per s at most; c1: {args.requests} requests per mode "
          f"and pass in {BLOCKS} alternating blocks; c{args.connections}: {args.rounds} x {args.duration} s, median")
    table(["pass", "apply s", "path", "c1 new conn p50/p95 ms", "p95 x plain", "c1 keep-alive p50/p95 ms",
           "p95 x plain", f"c{args.connections} req/s", "x plain", "errors"], pass_rows(results, bases))
    print()
    metrics_ok = print_costs(results, bases, args)
    if args.profile:
        print_profiles(results)
    errors = sum(r["errors"] for r in results)
    print(f"\ntotal bench time {time.monotonic() - t0:.0f} s; errors {errors}; metrics endpoint "
          f"{'ok' if metrics_ok else 'MISSED'}")
    return 0 if metrics_ok and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

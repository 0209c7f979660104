#!/usr/bin/env python3
"""
Overload (issue 19): bursts of simultaneous streaming chat requests, far
beyond what the gateway admits, against the formula's deployed service and
today's defaults side by side, in the same systemd-nspawn host, in front of
two stand-in Ollama servers that stream one chunk a second
(tests/ollama_stub.py, ``chunk_delay_ms`` 1000: ~7 s a stream).

Deploys the formula with salt-ssh, then runs two units on their own ports:

* ``baseline``: today's defaults, the deployed unit with no resource limits
  (systemd's LimitNOFILE soft 1,024) and the deployed config without
  LiteLLM's admission control, started the way the unit started before
  issue 19 (the ``litellm`` CLI);
* ``formula``: ``litellm.service`` as the formula's defaults render it
  (litellm:capacity: admission, limits, backend pool).

For each burst size (500, 2,000, 4,000), each variant in turn gets the burst
(tests/burst.py: one connection per request, all opened at once, 120 s
time-out per request) and then a pause until its streams are done. Per
burst: served (200, whole stream), refused (429/503; "bare" = without
Retry-After or not OpenAI-shaped), reset (refused connection, reset or
closed without a whole answer), timed out, other statuses, p99 time to first
body byte of the served ones, wall time of the burst, the journal's "too
many open files" lines and the unit's NRestarts.

    .venv/bin/python bench/overload.py [--bursts 500,2000,4000] [--timeout 120]

Goal: for the formula, every request served or refused with Retry-After
(0 reset, 0 timed out, 0 EMFILE, 0 restarts) at every burst size.
"""

import argparse
import json
import re
import sys
import time
import urllib.request

from _lib import BenchSite, header, table, verdict
from tests import burst
from tests.harness.site import free_port

BENCH_DIR = "/etc/litellm-bench"
CHUNK_DELAY_MS = 1000
CAPACITY_LINES = ("LimitNOFILE=", "TasksMax=", "MemoryHigh=", "MemoryMax=", "Environment=AIOHTTP_")
ADMISSION_KEYS = ("max_in_flight_requests_per_worker", "max_queued_requests_per_worker",
                  "admission_queue_timeout_seconds")


def _yaml(text):
    import salt.utils.yaml

    return salt.utils.yaml.safe_load(text)


def baseline_unit(site, port):
    """litellm-baseline.service: the deployed unit without the capacity lines, the config without admission,
    ExecStart the litellm CLI as before issue 19 (same workers)."""
    host = site.host
    deployed = host.run(["cat", "/etc/systemd/system/litellm.service"]).stdout
    config = _yaml(host.run(["cat", "/etc/litellm/config.yaml"]).stdout)
    for key in ADMISSION_KEYS:
        config["general_settings"].pop(key, None)
    host.run(["mkdir", "-p", BENCH_DIR])
    host.run(["sh", "-c", f"umask 027; cat > {BENCH_DIR}/config.yaml; chgrp litellm {BENCH_DIR}/config.yaml; "
              f"chmod 0755 {BENCH_DIR}"], input=json.dumps(config, indent=2))
    workers = workers_of(deployed)
    lines = []
    for line in deployed.splitlines():
        if line.startswith(CAPACITY_LINES) or line.startswith("Sockets=") or line.startswith("Requires=litellm."):
            continue
        if line.startswith("ExecStart="):
            venv = re.search(r"ExecStart=(\S+)/bin/", line).group(1)
            line = (f"ExecStart={venv}/bin/litellm --config {BENCH_DIR}/config.yaml --host 127.0.0.1 "
                    f"--port {port} --num_workers {workers}")
        for directory in ("StateDirectory", "CacheDirectory", "RuntimeDirectory"):
            if line.startswith(f"{directory}="):
                line = f"{line}-baseline"  # its own: stopping one unit must not remove the other's
        lines.append(line)
    text = "\n".join(lines) + "\n"
    host.run(["tee", "/etc/systemd/system/litellm-baseline.service"], input=text)
    host.run(["systemctl", "daemon-reload"])
    return text


def workers_of(unit_text):
    match = re.search(r"--(?:num_)?workers[ =](\d+)", unit_text)
    return int(match.group(1)) if match else 1


def admitted_by(site):
    """(workers, admitted, queued, LimitNOFILE) of the deployed formula."""
    host = site.host
    unit = host.run(["cat", "/etc/systemd/system/litellm.service"]).stdout
    general = _yaml(host.run(["cat", "/etc/litellm/config.yaml"]).stdout)["general_settings"]
    workers = workers_of(unit)
    nofile = host.run(["systemctl", "show", "-p", "LimitNOFILE", "--value", "litellm"]).stdout.strip()
    return (workers, workers * general["max_in_flight_requests_per_worker"],
            workers * general["max_queued_requests_per_worker"], nofile)


def wait_ready(url, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health/readiness", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {timeout} s")


def journal_emfile(site, unit, since):
    out = site.host.run(["journalctl", "-u", unit, "--since", f"@{since:.0f}", "-o", "cat", "--no-pager"],
                        check=False).stdout
    return out.lower().count("too many open files")


def nrestarts(site, unit):
    return int(site.host.run(["systemctl", "show", "-p", "NRestarts", "--value", unit]).stdout.strip() or 0)


def settle(url, seconds):
    """Let the streams of the last burst end (their stand-in streams take ~7 s), then check it answers."""
    time.sleep(seconds)
    wait_ready(url, timeout=120)


def one_burst(site, name, unit, port, size, timeout):
    since = time.time() - 1
    restarts = nrestarts(site, unit)
    results, wall = burst.burst("127.0.0.1", port, site.master_key, "chat-small", size, timeout=timeout)
    counts = burst.summary(results)
    counts.update({"variant": name, "burst": size, "wall": wall,
                   "emfile": journal_emfile(site, unit, since), "restarts": nrestarts(site, unit) - restarts})
    print(f"  {name} x{size}: {json.dumps({k: v for k, v in counts.items() if k != 'variant'})}", flush=True)
    return counts


def row(r):
    ttfb = f"{r['ttfb_p99']:.1f}" if r["ttfb_p99"] is not None else "-"
    other = ",".join(f"{k}:{v}" for k, v in r["other_statuses"].items()) or "0"
    return [r["variant"], r["burst"], r["served"], f"{r['refused_429']}/{r['refused_503']}", r["refused_bare"],
            r["reset"], r["timeout"], other, ttfb, f"{r['wall']:.0f}", r["emfile"], r["restarts"]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--bursts", default="500,2000,4000", help="burst sizes, comma-separated")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request before it counts as "
                        "timed out (120)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.bursts.split(",")]
    limit = burst.raise_nofile(4 * max(sizes) + 1024)
    header("overload: bursts of simultaneous streaming requests, formula vs today's defaults")
    t0 = time.monotonic()
    with BenchSite("overload", settings={"health_check_interval": 300}) as site:
        site.salt_ssh("state.apply", "litellm").assert_ok("the deploy")
        for stub in site.stubs:
            request = urllib.request.Request(f"{stub.url}/_stub/config", data=json.dumps(
                {"chunk_delay_ms": CHUNK_DELAY_MS}).encode(), headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=5).read()
        workers, admitted, queued, nofile = admitted_by(site)
        print(f"deployed in {time.monotonic() - t0:.0f} s; the formula's defaults here: {workers} workers, "
              f"admit {admitted} requests at once and queue {queued} (1 s), LimitNOFILE {nofile}; "
              f"client RLIMIT_NOFILE {limit}", flush=True)
        port = free_port()
        baseline_unit(site, port)
        site.host.run(["systemctl", "start", "litellm-baseline"])
        variants = [("baseline: today's defaults", "litellm-baseline", port),
                    ("formula: litellm:capacity defaults", "litellm", site.port)]
        for _, _, variant_port in variants:
            wait_ready(f"http://127.0.0.1:{variant_port}")
        results = []
        try:
            for size in sizes:
                for name, unit, variant_port in variants:
                    results.append(one_burst(site, name, unit, variant_port, size, args.timeout))
                    settle(f"http://127.0.0.1:{variant_port}", 10)
        finally:
            site.host.run(["systemctl", "stop", "litellm-baseline"], check=False)
    print()
    table(["variant", "burst", "served", "refused 429/503", "bare", "reset", "timed out", "other", "ttfb p99 s",
           "wall s", "EMFILE", "restarts"], [row(r) for r in results])
    formula = [r for r in results if r["variant"].startswith("formula")]
    clean = all(r["reset"] == r["timeout"] == r["emfile"] == r["restarts"] == r["refused_bare"] == 0
                and not r["other_statuses"] for r in formula)
    print()
    table(["goal (formula)", "measured", "verdict"], [
        ["every request served or refused with Retry-After",
         ", ".join(f"x{r['burst']}: {r['served']} + {r['refused']}" for r in formula), verdict(clean)],
        ["served vs baseline", ", ".join(
            f"x{f['burst']}: {f['served']} vs {b['served']}" for f, b in
            zip(formula, [r for r in results if r["variant"].startswith("baseline")])), "-"],
    ])
    print(f"\ntotal bench time {time.monotonic() - t0:.0f} s; verdict: {'PASS' if clean else 'FAIL'}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())

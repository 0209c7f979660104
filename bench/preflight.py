"""
How long a healthy preflight takes on a real systemd host (goal: under 3 s).

Builds (or reuses the cached rootfs of) the harness host, starts two stand-in
Ollama servers on loopback, writes a test site pillar (the master key
GPG-encrypted, as in the integration tests), then runs
``salt-call --local litellm_preflight.run`` N times inside the container and
prints, per run, the module's own duration (the report's ``duration_ms``)
and the salt-call wall time, then p50/p95/max and their ratio to the goal.
Everything it starts (container, stubs, gpg-agent) is stopped in a finally.

    .venv/bin/python bench/preflight.py [--runs 10] [--warmup 1]

Needs root, systemd-nspawn and debootstrap (like the integration tests).
Exit status: 0 when every run is GO and the module's p95 is under the goal.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import salt.utils.yaml  # noqa: E402

import ollama_stub  # noqa: E402
from tests.harness import site  # noqa: E402
from tests.harness.systemd_host import SystemdHost, build_rootfs  # noqa: E402

from tests.harness.site import FORMULA_IN_HOST, GPG_IN_HOST, MINION_CONF_IN_HOST, PILLAR_IN_HOST  # noqa: E402
MODELS = ["llama3.2:3b", "qwen2.5:7b"]
GOAL_S = 3.0


def percentile(values, pct):
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


def salt_call(host, *args, timeout=120):
    start = time.monotonic()
    proc = host.run(
        ["salt-call", "-c", MINION_CONF_IN_HOST, "--local", "--out=json", *args], check=False, timeout=timeout
    )
    wall = time.monotonic() - start
    try:
        data = json.loads(proc.stdout)["local"]
    except (ValueError, KeyError, TypeError):
        raise SystemExit(
            f"salt-call {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        ) from None
    return data, wall


def measure(host, args):
    """Warm-up runs, then the measured ones: a row per run, and the last run's time per check."""
    for _ in range(args.warmup):
        salt_call(host, "litellm_preflight.run")
    rows = []
    for index in range(1, args.runs + 1):
        report, wall = salt_call(host, "litellm_preflight.run")
        if not isinstance(report, dict) or "duration_ms" not in report:
            raise SystemExit(f"run {index}: unexpected answer {report!r}")
        slowest = max(report["checks"], key=lambda c: c["duration_ms"])
        rows.append(
            {
                "run": index,
                "result": report["result"],
                "module_s": report["duration_ms"] / 1000,
                "wall_s": wall,
                "slowest": f"{slowest['name']} {slowest['duration_ms']:.0f} ms",
                "failed": report["failed"],
            }
        )
    return rows, {c["name"]: c["duration_ms"] for c in report["checks"]}


def print_report(rows, per_check, args, setup_s):
    """The runs, their percentiles against the goal, the last run per check; True when every run is GO in time."""
    print(f"litellm_preflight.run on a systemd-nspawn host, salt-call --local, {args.runs} runs "
          f"(+{args.warmup} warm-up); set-up {setup_s:.1f} s\n")
    print(f"{'run':>3}  {'result':<6}  {'module s':>8}  {'salt-call s':>11}  slowest check")
    for row in rows:
        extra = f"  failed: {', '.join(row['failed'])}" if row["failed"] else ""
        print(
            f"{row['run']:>3}  {row['result']:<6}  {row['module_s']:>8.3f}  {row['wall_s']:>11.3f}  "
            f"{row['slowest']}{extra}"
        )
    module = [row["module_s"] for row in rows]
    wall = [row["wall_s"] for row in rows]
    print()
    print(f"{'':<12}  {'p50':>7}  {'p95':>7}  {'max':>7}  {'p95 / 3 s goal':>14}")
    for label, values in (("module", module), ("salt-call", wall)):
        p50, p95, top = statistics.median(values), percentile(values, 95), max(values)
        print(f"{label:<12}  {p50:>7.3f}  {p95:>7.3f}  {top:>7.3f}  {p95 / GOAL_S:>13.0%}")
    print("\nlast run, per check (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in per_check.items()))
    return all(row["result"] == "GO" for row in rows) and percentile(module, 95) < GOAL_S


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured first runs (default 1)")
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        raise SystemExit("bench/preflight.py needs root (systemd-nspawn)")

    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="litellm-bench-preflight-"))
    stubs, host, gpg_home = [], None, None
    try:
        rootfs = build_rootfs()
        for name in ("llm01", "llm02"):
            stubs.append(ollama_stub.start_stub_process(name, MODELS))
        urls = [url for _, url in stubs]
        gpg_home = site.make_gpg_home(workdir / "gpg")
        pillar_dir = workdir / "pillar"
        site.write_pillar(pillar_dir, site.site_settings(urls, site.free_port()), gpg_home, site.new_master_key())

        host = SystemdHost(
            rootfs,
            name=f"litellm-bench-{os.getpid()}",
            binds_ro={str(REPO): FORMULA_IN_HOST, str(pillar_dir): PILLAR_IN_HOST, str(gpg_home): GPG_IN_HOST},
            workdir=workdir / "host",
        )
        host.start()
        minion = site.minion_config(FORMULA_IN_HOST, PILLAR_IN_HOST, GPG_IN_HOST)
        host.run(["mkdir", "-p", MINION_CONF_IN_HOST])
        host.run(["tee", f"{MINION_CONF_IN_HOST}/minion"], input=salt.utils.yaml.safe_dump(minion))
        setup_s = time.monotonic() - t0

        rows, per_check = measure(host, args)
    finally:
        if host is not None:
            host.stop()
        for proc, _ in stubs:
            ollama_stub.stop_stub_process(proc)
        if gpg_home is not None and shutil.which("gpgconf"):
            subprocess.run(["gpgconf", "--homedir", str(gpg_home), "--kill", "gpg-agent"], check=False)
        shutil.rmtree(workdir, ignore_errors=True)

    ok = print_report(rows, per_check, args, setup_s)
    print(f"total bench time {time.monotonic() - t0:.1f} s")
    print(f"verdict: {'PASS' if ok else 'FAIL'} (all GO: {all(row['result'] == 'GO' for row in rows)}, "
          f"module p95 < {GOAL_S:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

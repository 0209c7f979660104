#!/usr/bin/env python3
"""
Changes to a live gateway under a client load (issue 14): per change class,
failed requests, cut streams, p50/p99 added wait and the apply's duration,
with the stock restart (the formula before issue 14: the litellm CLI binding
its own port, every change a restart) side by side as the baseline, in the
same run.

Two sites, one after the other, each a booted systemd host with the same
pillar (2 workers, one client key for the load): the stock formula (``git
archive`` of ``--stock-ref`` into a temp dir) and this tree. On each, first
one alias is added with no load (the goal: <= 20 s), then, under one load of
24 clients (chat and short streams; every 4th client in streams of
``--long-s`` s), every change class is applied in turn: an alias added and
removed, a backend removed and added, a master key rotation, workers 2 -> 1
-> 2, an upgrade to 1.108.6 and the rollback by hand, and a change whose
smoke test fails (rolled back by itself).

A request counts for a change when it was in flight at some moment of the
apply; the added wait is its latency minus the median of its kind before
the first change (long streams left out: their length is the stand-in's).

    .venv/bin/python bench/reload.py [--long-s 65] [--stock-ref fc7b40c] [--only-new]

Goals (issue 14): 0 failed and 0 cut on every change; one alias <= 20 s.
"""

import argparse
import copy
import hashlib
import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import _lib
from _lib import REPO, BenchSite, header, table, verdict

import client_load
from tests.harness import site as harness_site

GOAL_ALIAS_S = 20.0
CLIENT_KEY = "sk-bench-" + secrets.token_hex(16)
EXTRA = {"name": "chat-extra", "provider": "ollama", "model": "llama3.2:3b"}
GHOST = {"name": "ghost", "provider": "ollama", "model": "ghost:1b"}


def _write(bench, settings, key=None):
    if key:
        bench.master_key = key
    bench.settings = settings
    harness_site.write_pillar(bench.workdir / "pillar", settings, bench.gpg_home, bench.master_key)


_with = harness_site.settings_with


def classes(base):
    """(name, settings or None, command, new master key?) in the order they run."""
    alias = _with(base, models=base["models"] + [EXTRA])
    bad = _with(base, models=base["models"] + [GHOST], preflight={"enabled": False})
    apply = ("state.apply", "litellm")
    return [
        ("alias added", alias, apply, False),
        ("alias removed", base, apply, False),
        ("backend removed", _with(base, backends=base["backends"][:1]), apply, False),
        ("backend added", base, apply, False),
        ("master key rotated", base, apply, True),
        ("workers 2 -> 1", _with(base, service__workers=1), apply, False),
        ("workers 1 -> 2", base, apply, False),
        ("upgrade 1.108.6", _with(base, version="1.108.6"), apply, False),
        ("rollback by hand", None, ("litellm_config.rollback",), False),
        ("failed smoke, rolled back", bad, apply, False),
    ]


def _path(run):
    if isinstance(run.data, dict) and run.data and not all("_|-" in key for key in run.data):
        return run.data.get("path", "restart")  # a module's answer (litellm_config.rollback), not states
    try:
        state = run.states.get("litellm-service-running-service-running") or {}
        return (state.get("changes") or {}).get("path") or "restart"
    except SystemExit:
        return "?"


def _split(run, top=6):
    """Where an apply's wall time went: the states' own durations (salt-ssh's JSON, ms), the rest
    being ship/thin + render; the slowest states by name."""
    try:
        durations = {sid: float(st.get("duration") or 0) / 1000 for sid, st in run.states.items()}
    except (SystemExit, IndexError):
        return None
    states = sum(durations.values())
    slowest = sorted(durations.items(), key=lambda item: -item[1])[:top]
    return {"wall_s": round(run.elapsed, 1), "states_s": round(states, 1),
            "ship_thin_render_s": round(run.elapsed - states, 1),
            "slowest": {sid: round(d, 1) for sid, d in slowest}}


def _memory(bench):
    """The service's memory after the first deploy: each process's PSS (MiB; a page shared by n
    processes counts 1/n in each, so the sum is what they take together) and their sum."""
    time.sleep(5)
    script = ("main=$(systemctl show -P MainPID litellm.service); "
              "for p in $main $(ps -o pid= --ppid $main); do "
              "awk -v p=$p '/^Pss:/ {print p, $2}' /proc/$p/smaps_rollup; done")
    out = bench.host.run(["sh", "-c", script], check=False).stdout
    per_process = sorted((round(int(kib) / 1024, 1) for _pid, kib in (line.split() for line in out.splitlines())),
                         reverse=True)
    return {"pss_mib": per_process, "pss_total_mib": round(sum(per_process), 1)}


def measure(bench, long_s):
    """Deploy, one alias without load, then every change class under the load: {class: row}."""
    base = copy.deepcopy(bench.settings)
    base["service"] = dict(base.get("service") or {}, workers=2)
    base["keys"] = {"bench": {"hash": "sha256:" + hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}}
    _write(bench, base)
    bench.salt_ssh("state.apply", "litellm").assert_ok("the first deploy")
    rows = {"memory": _memory(bench)}
    _write(bench, _with(base, models=base["models"] + [EXTRA]))
    quiet = bench.salt_ssh("state.apply", "litellm").assert_ok("one alias, no load")
    rows["one alias, no load"] = {"apply_s": quiet.elapsed, "path": _path(quiet), "split": _split(quiet)}
    _write(bench, base)
    bench.salt_ssh("state.apply", "litellm").assert_ok("the alias removed again")
    with client_load.Load(bench.port, CLIENT_KEY, "chat-small", clients=24, long_every=4, long_s=long_s) as load:
        load.wait_for(40)
        baseline = client_load.baselines(list(load.results))
        for name, settings, command, rotate in classes(base):
            if settings is not None:
                _write(bench, settings, harness_site.new_master_key() if rotate else None)
            t0 = time.monotonic()
            run = bench.salt_ssh(*command)
            window = (t0, time.monotonic())
            time.sleep(2)
            rows[name] = {**client_load.summary(load.results, window, baseline), "apply_s": run.elapsed,
                          "path": _path(run)}
            print(f"  {name}: {json.dumps(rows[name])}", flush=True)
            if name in ("rollback by hand", "failed smoke, rolled back"):
                _write(bench, base)
                bench.salt_ssh("state.apply", "litellm")
    late = client_load.summary(load.results)
    rows["whole load"] = late
    return rows


def stock_tree(ref):
    """The formula as of ``ref`` (git archive) in a temp dir."""
    out = Path(tempfile.mkdtemp(prefix="litellm-bench-stock-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def run_site(label, tree, long_s):
    """One site with the formula of ``tree`` (this repo, or the stock tree)."""
    saved = (_lib.REPO, harness_site.REPO)
    _lib.REPO, harness_site.REPO = tree, tree
    try:
        with BenchSite(f"reload-{label}") as bench:
            print(f"{label}: host up ({bench.timings})", flush=True)
            return measure(bench, long_s)
    finally:
        _lib.REPO, harness_site.REPO = saved


def _cell(row, key, digits=1):
    value = (row or {}).get(key)
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long-s", type=int, default=65)
    parser.add_argument("--stock-ref", default="fc7b40c")
    parser.add_argument("--only-new", action="store_true", help="skip the stock baseline")
    args = parser.parse_args()
    header("Changes to a live gateway under load: stock restart vs. reload/held socket")
    stock = {} if args.only_new else run_site("stock", stock_tree(args.stock_ref), args.long_s)
    new = run_site("new", REPO, args.long_s)
    rows = []
    for name in new:
        if name in ("whole load", "memory"):
            continue
        s, n = stock.get(name), new[name]
        rows.append([
            name, n.get("path", "?"),
            _cell(s, "apply_s"), _cell(n, "apply_s"),
            _cell(s, "failed"), _cell(n, "failed"),
            _cell(s, "cut_streams"), _cell(n, "cut_streams"),
            f"{_cell(s, 'added_wait_p50_s', 2)} / {_cell(s, 'added_wait_p99_s', 2)}",
            f"{_cell(n, 'added_wait_p50_s', 2)} / {_cell(n, 'added_wait_p99_s', 2)}",
        ])
    table(["change", "path", "apply s stock", "apply s new", "failed stock", "failed new", "cut stock", "cut new",
           "added wait p50/p99 s stock", "new"], rows)
    changes = [row for name, row in new.items() if name not in ("whole load", "memory", "one alias, no load")]
    lost = sum(row.get("failed", 0) + row.get("cut_streams", 0) for row in changes)
    alias_s = new["one alias, no load"]["apply_s"]
    print(f"\nnew: {lost} failed or cut over every change ({verdict(lost == 0)}); one alias, no load: "
          f"{alias_s:.1f} s (goal <= {GOAL_ALIAS_S:.0f} s: {verdict(alias_s <= GOAL_ALIAS_S)})")
    for label, rows_of in (("stock", stock), ("new", new)):
        if rows_of:
            print(f"one alias, no load, {label}: " + json.dumps(rows_of["one alias, no load"].get("split")))
    memory = {label: (rows_of.get("memory") or {}) for label, rows_of in (("stock", stock), ("new", new))}
    pss = _lib.ratio(memory["new"].get("pss_total_mib") or 0, memory["stock"].get("pss_total_mib"))
    print(f"service memory after the first deploy (2 workers, PSS MiB per process): {json.dumps(memory)}; "
          f"PSS total new/stock {pss:.2f}x")
    print("whole load: stock " + json.dumps(stock.get("whole load")))
    print("            new   " + json.dumps(new["whole load"]))


if __name__ == "__main__":
    main()

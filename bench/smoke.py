#!/usr/bin/env python3
"""
How long does ``litellm_smoke.run`` take against a real LiteLLM 1.108.7?

Starts two stand-in Ollama servers (tests/ollama_stub.py) and a LiteLLM proxy
from the venv that the functional live tests build (tests/functional/conftest.py)
at /var/cache/litellm-salt/smoke-venv (built from the shipped hashed lock when
missing), all on loopback, runs the smoke test N times (default 10) the way
the formula's state does (chat_models first, concurrency 10, 10 latency
requests) and prints one row per run, then p50/p95/max and the ratio to the
5 s goal. Everything it started is stopped by PID at the end.

    .venv/bin/python bench/smoke.py [--runs 10] [--goal 5] [--chat-models first|all]
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.conftest import load_salt_module  # noqa: E402
from tests.functional.conftest import Stub, ensure_venv  # noqa: E402
from tests.functional.test_litellm_smoke_live import ALIASES, start_gateway  # noqa: E402

GOAL_S = 5.0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--goal", type=float, default=GOAL_S, help="seconds a run should stay under (5)")
    parser.add_argument("--chat-models", default="first", choices=("first", "all"))
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency-requests", type=int, default=10)
    parser.add_argument("--json", help="also write the numbers to this file")
    return parser.parse_args(argv)


def one_run(smoke, gateway, stubs, args, index):
    """One litellm_smoke.run as the formula's state runs it: its row, printed."""
    t0 = time.monotonic()
    report = smoke.run(
        url=gateway.url,
        master_key=gateway.key,
        models=ALIASES,
        backends=[stub.url for stub in stubs],
        concurrency=args.concurrency,
        latency_requests=args.latency_requests,
        chat_models=args.chat_models,
        timeout=10,
    )
    wall = time.monotonic() - t0
    assert gateway.key not in json.dumps(report), "the key leaked into the report"
    checks = {check["name"]: check for check in report["checks"]}
    slowest = max(report["checks"], key=lambda check: check["duration_ms"])
    row = {
        "run": index,
        "result": report["result"],
        "wall_s": round(wall, 3),
        "fanout_ms": checks["fanout"]["duration_ms"],
        "latency_ms": checks["latency"]["duration_ms"],
        "health_ms": checks["health"]["duration_ms"],
        "slowest": f"{slowest['name']} {slowest['duration_ms']} ms",
        "failed": [name for name, check in checks.items() if check["status"] == "fail"],
    }
    print(
        f"run {index:>2}  {row['result']:<4}  {row['wall_s']:>7.3f} s  fanout {row['fanout_ms']:>7.1f} ms  "
        f"latency {row['latency_ms']:>7.1f} ms  health {row['health_ms']:>7.1f} ms  "
        f"slowest: {row['slowest']}" + (f"  FAILED: {', '.join(row['failed'])}" if row["failed"] else "")
    )
    return row


def summarize(smoke, rows, goal):
    """p50/p95/max of the runs' wall time, and each against the goal."""
    walls = [row["wall_s"] * 1000.0 for row in rows]  # percentile() rounds to 0.1: work in ms
    summary = {
        "runs": len(rows),
        "passed": sum(row["result"] == "PASS" for row in rows),
        "p50_s": round(smoke.percentile(walls, 50) / 1000.0, 3),
        "p95_s": round(smoke.percentile(walls, 95) / 1000.0, 3),
        "max_s": round(max(walls) / 1000.0, 3),
        "goal_s": goal,
    }
    summary["p50_of_goal"] = round(summary["p50_s"] / goal, 3)
    summary["p95_of_goal"] = round(summary["p95_s"] / goal, 3)
    summary["max_of_goal"] = round(summary["max_s"] / goal, 3)
    return summary


def main(argv=None):
    args = parse_args(argv)
    config = load_salt_module("modules", "litellm_config")
    smoke = load_salt_module("modules", "litellm_smoke")
    smoke.__salt__ = {"litellm_config.local_url": config.local_url}  # everything else is passed in

    workdir = Path(tempfile.mkdtemp(prefix="litellm-smoke-bench-"))
    stubs, gateway = [], None
    rows = []
    try:
        started = time.monotonic()
        venv = ensure_venv()
        venv_s = time.monotonic() - started
        stubs = [Stub("llm01"), Stub("llm02")]
        gateway = start_gateway(venv, workdir, [stub.url for stub in stubs])
        print(f"LiteLLM {gateway.url} ready after {gateway.ready_after} s (venv ready in {venv_s:.1f} s); "
              f"stubs {', '.join(stub.url for stub in stubs)}")
        print(f"{args.runs} runs of litellm_smoke.run (chat_models={args.chat_models}, "
              f"concurrency={args.concurrency}, latency_requests={args.latency_requests})\n")
        for index in range(1, args.runs + 1):
            rows.append(one_run(smoke, gateway, stubs, args, index))
    finally:
        if gateway is not None:
            gateway.stop()
        for stub in stubs:
            stub.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    summary = summarize(smoke, rows, args.goal)
    print()
    print(f"{'':<6}{'seconds':>9}  {'of the ' + format(args.goal, 'g') + ' s goal':>16}")
    for name in ("p50", "p95", "max"):
        print(f"{name:<6}{summary[name + '_s']:>9.3f}  {summary[name + '_of_goal']:>15.1%}")
    print(f"\n{summary['passed']}/{summary['runs']} runs PASS; "
          f"{'within' if summary['max_s'] <= args.goal else 'OVER'} the {args.goal:g} s goal")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
    return 0 if summary["passed"] == summary["runs"] and summary["max_s"] <= args.goal else 1


if __name__ == "__main__":
    sys.exit(main())

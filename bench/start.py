#!/usr/bin/env python3
"""
Where "start to ready" of a cold deploy goes (issue 17), step by step.

Boots a fresh host (``BenchSite``), deploys with salt-ssh as ``bench/deploy.py``
does, and prints:

1. the ``litellm-service*`` states of that deploy (start, duration, comment),
   with the unit's start, its main process's start and the supervisor's status
   file (``/run/litellm/workers.json``) on the same clock;
2. the journal of the socket and the service for that start;
3. ``--probe N`` runs of the deployed launcher with the unit's own arguments
   on a port of its own (``bench/_start_probe.py`` under ``systemd-run`` as the
   service's user with its env file): each step timed from the process's start,
   and the modules compiled from source instead of loaded from bytecode;
4. ``--restarts N``: ``litellm_service.apply_change litellm restart`` through
   ``salt-call --local`` (the service state's own path and wait), timed.

    .venv/bin/python bench/start.py [--probe 3] [--restarts 3]
"""

import argparse
import datetime
import json
import shlex
import sys
import time

from _lib import FORMULA_IN_HOST, REPO, BenchSite, header, median, table

PROBE_IN_HOST = f"{FORMULA_IN_HOST}/bench/_start_probe.py"
PROBE_PORT = "4999"


def service_states(run):
    """(state id, start epoch, duration s, comment) of the deploy's litellm-service* states, in run order."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    rows = []
    for state_id, state in run.states.items():
        if not state_id.startswith("litellm-service"):
            continue
        clock = datetime.datetime.strptime(state["start_time"], "%H:%M:%S.%f").time()
        start = datetime.datetime.combine(today, clock, tzinfo=datetime.timezone.utc).timestamp()
        rows.append((state_id, start, float(state.get("duration") or 0) / 1000, str(state.get("comment", ""))))
    return sorted(rows, key=lambda row: row[1])


def show_states(site, run):
    rows = service_states(run)
    zero = rows[0][1]
    main_start = site.host.run(["systemctl", "show", "-P", "ExecMainStartTimestamp", "--timestamp=unix",
                                "litellm.service"]).stdout.strip().lstrip("@")
    status = json.loads(site.host.run(["cat", "/run/litellm/workers.json"]).stdout)
    table(["state (cold deploy)", "starts at s", "duration s", "comment"],
          [[sid, f"{start - zero:.2f}", f"{dur:.2f}", comment[:110]] for sid, start, dur, comment in rows])
    print(f"\nmain process started at {float(main_start) - zero:.2f} s; status file written at "
          f"{status['at'] - zero:.2f} s ({len(status['serving'])} workers); "
          f"ready state ends at {rows[-1][1] + rows[-1][2] - zero:.2f} s")
    journal = site.host.run(["journalctl", "-o", "short-unix", "--no-pager", "-u", "litellm.socket",
                             "-u", "litellm.service"]).stdout.splitlines()
    print("\njournal (s from the first service state):")
    for line in journal:
        stamp, _, text = line.partition(" ")
        try:
            print(f"  {float(stamp) - zero:7.2f}  {text[:150]}")
        except ValueError:
            print(f"  {line[:160]}")


def unit_args(site):
    """The unit's ExecStart words after the launcher."""
    text = site.host.run(["cat", "/etc/systemd/system/litellm.service"]).stdout
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.split("=", 1)[1])[2:]


def probe(site):
    """One run of the launcher under the probe: its steps, as dicts."""
    argv = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "-p", "User=litellm", "-p", "Group=litellm",
            "-p", "EnvironmentFile=/etc/litellm/litellm.env", "-p", "WorkingDirectory=/var/lib/litellm",
            "-p", "Environment=HOME=/var/lib/litellm XDG_CACHE_HOME=/var/cache/litellm PYTHONDONTWRITEBYTECODE=1 "
                  "PYTHONUNBUFFERED=1 CONFIG_FILE_PATH=/etc/litellm/config.yaml",
            "/opt/litellm/venv/bin/python", PROBE_IN_HOST, PROBE_PORT, "/tmp/litellm-probe-workers.json",
            *unit_args(site)]
    done = site.host.run(argv, check=False, timeout=300)
    steps = []
    for line in done.stderr.splitlines():
        if line.startswith("{"):
            steps.append(json.loads(line))
    if not any(s["step"] == "status file written" for s in steps):
        raise SystemExit(f"the probe did not get ready (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return steps


def show_probes(site, count):
    runs = [probe(site) for _ in range(count)]
    for index, steps in enumerate(runs, 1):
        print(f"\nprobe {index} (s from the process's start):")
        for step in steps:
            extra = {k: v for k, v in step.items() if k not in ("t", "at", "pid", "step")}
            print(f"  {step['t']:7.3f}  [{step['pid']}] {step['step']}  {json.dumps(extra) if extra else ''}")
    ready = [next(s["t"] for s in steps if s["step"] == "status file written") for steps in runs]
    print(f"\nprobe: process start to status file, median {median(ready):.2f} s "
          f"({', '.join(f'{v:.2f}' for v in ready)})")


SYSTEMCTL = (["systemctl", "is-enabled", "litellm.socket"], ["systemctl", "is-active", "litellm.service"],
             ["systemctl", "show", "-p", "ActiveState", "-p", "UnitFileState", "litellm.socket", "litellm.service"],
             ["systemctl", "show", "-p", "MainPID", "--value", "litellm.service"],
             ["ps", "-e", "-o", "pid=,ppid=,args="],
             ["systemctl", "daemon-reload"], ["systemctl", "enable", "litellm.socket"],
             ["systemctl", "enable", "litellm.socket", "litellm.service"],
             ["systemctl", "enable", "--no-reload", "litellm.socket", "litellm.service"])


def command_costs(site, rounds=5):
    """What each command the service states run costs in the host (median of ``rounds``, via nsenter)."""
    rows = []
    for argv in SYSTEMCTL:
        took = []
        for _ in range(rounds):
            done = site.host.run(["sh", "-c", 'a=$(date +%s%N); "$@" >/dev/null 2>&1; b=$(date +%s%N); '
                                              'echo $(( (b - a) / 1000 ))', "x", *argv])
            took.append(int(done.stdout.strip()) / 1e6)
        rows.append([" ".join(argv), f"{median(took):.3f}"])
    table(["command (in the host)", "median s"], rows)


def restarts(site, count):
    rows = []
    for _ in range(count):
        t0 = time.monotonic()
        run = site.salt_call("litellm_service.apply_change", "litellm", "restart", "workers=2", f"url={site.url}")
        out = run.data or {}
        rows.append([f"{time.monotonic() - t0:.2f}", str(out.get("waited")), str(out.get("ok")),
                     str(out.get("detail"))[:80]])
        time.sleep(1)
    table(["salt-call wall s", "waited s (workers)", "ok", "detail"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--probe", type=int, default=3, help="probe runs of the launcher (default 3)")
    parser.add_argument("--restarts", type=int, default=3, help="timed restarts through salt-call (default 3)")
    args = parser.parse_args(argv)
    header("start to ready, step by step (cold deploy, then the launcher probed)")
    with BenchSite("start", control_master=True) as site:
        run = site.salt_ssh("state.apply", "litellm")
        run.assert_ok("the cold deploy")
        print(f"cold deploy: {run.elapsed:.1f} s, {len(run.changed())} states changed\n")
        show_states(site, run)
        if args.probe:
            show_probes(site, args.probe)
        print()
        command_costs(site)
        if args.restarts:
            print()
            restarts(site, args.restarts)
    print(f"\n(repo {REPO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

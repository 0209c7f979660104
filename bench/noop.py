#!/usr/bin/env python3
"""
No-op re-apply: ``state.apply litellm`` on a deployed, healthy host, with
``salt-call --local`` (inside the host) and with salt-ssh (from this
machine), against Salt's own floor over the same transport (``test.ping``).

Salt has two floors per transport: ``test.ping`` (one remote call), and a
state run that does nothing (``state.single test.nop``: for salt-ssh that is
two remote calls, the target's options then the state run, plus rendering
and shipping the state tarball); the table shows both, and how much the
formula adds over the second.

Boots a systemd-nspawn host, deploys the formula once with salt-ssh, then
runs rounds; each round runs every row once, in the same order, so noise from
other work on the machine spreads over all rows: salt-call test.ping,
salt-call state.apply, salt-ssh test.ping and state.apply without ssh
ControlMaster, then the same with ControlMaster/ControlPersist (the roster's
``ssh_options``; the first connection of each round opens the master, as a
real operator's first command would, so the persisted connection from the
previous round is closed first unless --keep-master). Every apply must
report 0 changes and keep the service's MainPID.

No network access, proven: one more no-op apply of each kind runs under
``strace -f -e trace=connect,execve`` (salt-call: the nsenter'd process
tree; salt-ssh: the container's sshd and everything it starts). The table
lists every connect() by destination (loopback ports named: the gateway, the
stand-in backends) and every program run that could reach a package
index (pip, uv, apt, curl, wget); a no-op must show no non-loopback
destination and none of those programs.

    .venv/bin/python bench/noop.py [--rounds 5] [--no-strace]

Goals (issue 5): 0 changes; no network; salt-call <= 2 s; salt-ssh <= 5 s.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _lib import MINION_CONF_IN_HOST, BenchSite, container_pids, header, median, percentile, table, verdict

GOAL_CALL_S = 2.0
GOAL_SSH_S = 5.0
INDEX_PROGRAMS = ("pip", "pip3", "uv", "apt", "apt-get", "curl", "wget")
CONNECT_RE = re.compile(r"connect\(\d+, \{sa_family=(AF_\w+)(.*?)\}")
INET_RE = re.compile(r'sin6?_port=htons\((\d+)\).*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')
EXEC_RE = re.compile(r'execve\("([^"]+)".*= 0$')  # programs that did run


def host_pid(site, container_pid):
    """The pid on this machine of a process whose pid inside the container is container_pid."""
    for pid in container_pids(site.host):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M)
        if nspid and int(nspid.group(1).split()[-1]) == container_pid:
            return pid
    raise SystemExit(f"no process {container_pid} in the container")


def main_pid(site):
    return site.host.run(["systemctl", "show", "-P", "MainPID", "litellm"]).stdout.strip()


def parse_trace(path, names):
    """(destinations Counter, programs run that could reach an index)."""
    dests, programs = collections.Counter(), collections.Counter()
    running = {}  # pid -> the last program it executed
    for line in Path(path).read_text(errors="replace").splitlines():
        pid = line.split(None, 1)[0]
        started = re.search(r'execve\("[^"]+", \[(.*?)\]', line)
        if started and line.rstrip().endswith("= 0"):
            running[pid] = started.group(1).replace('"', "")[:60]
        match = CONNECT_RE.search(line)
        if match:
            family, rest = match.groups()
            if family == "AF_UNIX":
                dests["unix sockets (local)"] += 1
            elif family in ("AF_INET", "AF_INET6"):
                inet = INET_RE.search(rest)
                if not inet:
                    continue
                port, addr = int(inet.group(1)), inet.group(2) or inet.group(3)
                loop = addr.startswith("127.") or addr == "::1"
                where = f"{addr}:{port}" + (
                    f" ({names.get(port, '?')})" if loop else f" NOT LOOPBACK, by {running.get(pid, '?')}")
                dests[where] += 1
            else:
                dests[family] += 1
            continue
        match = EXEC_RE.search(line)
        if match and os.path.basename(match.group(1)) in INDEX_PROGRAMS:
            programs[match.group(1)] += 1
    return dests, programs


def traced_salt_call(site, out):
    """salt-call --local state.apply under strace (the nsenter'd tree, from this machine)."""
    argv = [
        "strace", "-f", "-qq", "-e", "trace=connect,execve", "-o", str(out),
        "nsenter", "-t", str(site.host.pid1), "-a", "--root", "--wd", "--",
        "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
        "LANG=C.UTF-8", "salt-call", "-c", MINION_CONF_IN_HOST, "--local", "--out=quiet", "state.apply", "litellm",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"traced salt-call failed ({done.returncode}): {done.stderr[-2000:]}")


def traced_salt_ssh(site, out):
    """salt-ssh state.apply while strace follows the container's sshd and all it starts."""
    sshd = int(site.host.run(["pgrep", "-o", "-x", "sshd"]).stdout.split()[0])
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "trace=connect,execve", "-o", str(out), "-p", str(host_pid(site, sshd))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.0)  # attached
        run = site.salt_ssh("state.apply", "litellm")
        run.assert_ok("traced salt-ssh no-op")
        return run
    finally:
        tracer.terminate()  # detaches; the traced sshd goes on
        tracer.wait(timeout=30)


NOP = ("state.single", "test.nop", "name=floor")
# (label, transport, ControlMaster, call): every round runs them all, in this order
PLAN = [
    ("salt-call --local test.ping", "call", None, ("test.ping",)),
    ("salt-call --local state.single test.nop", "call", None, NOP),
    ("salt-call --local state.apply litellm", "call", None, ("state.apply", "litellm")),
    ("salt-ssh test.ping", "ssh", False, ("test.ping",)),
    ("salt-ssh state.apply litellm", "ssh", False, ("state.apply", "litellm")),
    ("salt-ssh test.ping, ControlMaster", "ssh", True, ("test.ping",)),
    ("salt-ssh state.single test.nop, ControlMaster", "ssh", True, NOP),
    ("salt-ssh state.apply litellm, ControlMaster", "ssh", True, ("state.apply", "litellm")),
]


def run_rounds(site, args, rows, problems):
    """A warm-up of the plan, then args.rounds rounds of it: (seconds, changes) per row; changes are problems."""
    for label, how, cm, call in PLAN:  # warm-up: thin in place, caches filled
        if how == "ssh":
            site.write_roster(control_master=cm)
        (site.salt_call if how == "call" else site.salt_ssh)(*call).assert_ok(f"warm-up {label}")
    for _ in range(args.rounds):
        if not args.keep_master:
            site.stop_control_masters()
        for label, how, cm, call in PLAN:
            if how == "ssh":
                site.write_roster(control_master=cm)
            run = (site.salt_call if how == "call" else site.salt_ssh)(*call)
            run.assert_ok(label)
            changes = len(run.changed()) if call[0] == "state.apply" else 0
            if changes:
                problems.append(f"{label}: changed {run.changed()}")
            rows[label].append((run.elapsed, changes))


def trace_noops(site):
    """One more no-op apply of each kind under strace: per kind, its destinations and index programs."""
    names = {site.port: "gateway"}
    names.update({stub.port: f"backend {stub.name}" for stub in site.stubs})
    names[site.host.ssh_port] = "sshd"
    traces = {}
    with tempfile.TemporaryDirectory() as tmp:
        traced_salt_call(site, Path(tmp) / "call.trace")
        traces["salt-call --local"] = parse_trace(Path(tmp) / "call.trace", names)
        site.stop_control_masters()
        site.write_roster(control_master=False)
        traced_salt_ssh(site, Path(tmp) / "ssh.trace")
        traces["salt-ssh"] = parse_trace(Path(tmp) / "ssh.trace", names)
    return traces


def timing_rows(rows):
    """The table's rows (against the floors of the same transport); True when the formula's applies meet the goals."""
    out, ok = [], True
    for label, how, cm, call in PLAN:
        values = [e for e, _ in rows[label]]
        p50, p95 = median(values), percentile(values, 95)
        floor_label = "salt-call --local test.ping" if how == "call" else (
            "salt-ssh test.ping, ControlMaster" if cm else "salt-ssh test.ping")
        floor = median([e for e, _ in rows[floor_label]])
        state_floor_label = ("salt-call --local state.single test.nop" if how == "call"
                             else "salt-ssh state.single test.nop, ControlMaster")
        state_floor = median([e for e, _ in rows[state_floor_label]])
        own = f"{p50 - state_floor:+.2f}" if call[0] == "state.apply" and (how == "call" or cm) else ""
        goal, check = "", ""
        if call[0] == "state.apply":
            limit = GOAL_CALL_S if how == "call" else GOAL_SSH_S
            goal = f"<= {limit:.0f} s"
            met = p50 <= limit
            check = verdict(met)
            if how == "call" or cm:
                ok = ok and met  # the formula's configuration: ControlMaster for salt-ssh
        changes = max(c for _, c in rows[label]) if call[0] == "state.apply" else ""
        out.append([label, f"{p50:.2f}", f"{p95:.2f}", f"{min(values):.2f}", f"{p50 / floor:.2f}", own,
                    changes, goal, check])
    return out, ok


def print_traces(traces):
    """Each traced no-op's connect() table; True when none left loopback or ran an index program."""
    ok = True
    for where, (dests, programs) in traces.items():
        external = [d for d in dests if "NOT LOOPBACK" in d]
        clean = not external and not programs
        ok = ok and clean
        print(f"\nno-op {where} under strace: connect() by destination")
        table(["destination", "connects"], [[d, n] for d, n in sorted(dests.items())] or [["(none)", 0]])
        print(f"non-loopback destinations: {len(external)}; pip/uv/apt/curl/wget run: "
              f"{sum(programs.values())} {dict(programs) if programs else ''} -> {verdict(clean)}")
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-strace", action="store_true", help="skip the network-access proof")
    parser.add_argument("--keep-master", action="store_true",
                        help="keep the ControlPersist master between rounds (only the first run opens it)")
    args = parser.parse_args(argv)
    header("no-op re-apply: salt-call --local and salt-ssh, against test.ping over the same transport")
    t0 = time.monotonic()
    rows = collections.defaultdict(list)
    problems = []
    with BenchSite("noop") as site:
        site.write_roster(control_master=False)
        site.salt_ssh("state.apply", "litellm").assert_ok("the first deploy")
        pid = main_pid(site)
        print(f"deployed in {time.monotonic() - t0:.0f} s; MainPID {pid}; {args.rounds} rounds", flush=True)
        run_rounds(site, args, rows, problems)
        if main_pid(site) != pid:
            problems.append(f"MainPID changed: {pid} -> {main_pid(site)}")
        traces = {} if args.no_strace else trace_noops(site)

    out, ok = timing_rows(rows)
    ok = ok and not problems
    print(f"\n{args.rounds} rounds (+1 warm-up), seconds of wall time; Salt's floors over the same transport: "
          "test.ping, and a state run of one state that does nothing (state.single test.nop)")
    table(["command", "p50", "p95", "min", "x test.ping", "s over state floor", "changes", "goal (p50)",
           "verdict"], out)
    ok = print_traces(traces) and ok
    for problem in problems:
        print("PROBLEM:", problem)
    print(f"\ntotal bench time {time.monotonic() - t0:.0f} s; verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

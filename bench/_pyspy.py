"""
py-spy on the gateway's workers from the machine (not a benchmark itself):
the container's worker PIDs mapped to the machine's (``NSpid``), one
``py-spy record --nonblocking`` per worker while a load runs, and a summary
of the collapsed stacks of the workers' event-loop thread (top frames,
inclusive and self, all workers merged; the other threads, which py-spy
samples idle, are left out).
py-spy is not a dependency of the formula: ``uv pip install py-spy`` into the
bench's venv.
"""

import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PYSPY = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")


def worker_pids(host):
    """The machine's PIDs of the service's uvicorn workers (the supervisor's children, forked or spawned)."""
    from tests.conftest import load_salt_module  # pylint: disable=import-outside-toplevel

    main = host.run(["systemctl", "show", "-P", "MainPID", "litellm.service"]).stdout.strip()
    out = host.run(["ps", "-e", "-o", "pid=,ppid=,args="]).stdout.splitlines()
    inner = set(load_salt_module("utils", "litellm_unit").workers_of(out, main))  # the formula's readers' rule
    ns = os.readlink(f"/proc/{host.pid1}/ns/pid")
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                continue
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as status:
                nspid = next((line.split() for line in status if line.startswith("NSpid:")), [])
        except OSError:
            continue
        if nspid and int(nspid[-1]) in inner:
            found.append(int(entry))
    return sorted(found)


def record(pids, seconds, out_dir, label, rate=50):
    """Start py-spy on every PID for ``seconds``: the Popen objects (``wait`` for them)."""
    if not PYSPY:
        raise SystemExit("--profile needs py-spy in the bench's venv (uv pip install py-spy)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"\W+", "-", label)
    return [subprocess.Popen([PYSPY, "record", "--nonblocking", "-r", str(rate), "-d", str(seconds), "-f", "raw",
                              "-o", str(out_dir / f"{slug}-{pid}.txt"), "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]


def _frame(frame):
    return re.sub(r":\d+\)$", ")", re.sub(r"\(.*/site-packages/", "(", frame))


LOOP = "Server.run ("  # uvicorn's server: the stacks of a worker's event-loop thread
CALLBACK = "(prometheus.py:"  # LiteLLM's prometheus callback (py-spy names files without their directories)


def summary(out_dir, label, top=15, needle=CALLBACK):
    """(samples, share of samples with ``needle`` in the stack, top inclusive, top self) of one label."""
    slug = re.sub(r"\W+", "-", label)
    stacks = collections.Counter()
    for path in Path(out_dir).glob(f"{slug}-[0-9]*.txt"):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit() and LOOP in stack:
                stacks[stack] += int(count)
    total = sum(stacks.values()) or 1
    incl, own, hits = collections.Counter(), collections.Counter(), 0
    for stack, count in stacks.items():
        frames = [_frame(f) for f in stack.split(";") if f]
        own[frames[-1]] += count
        for key in set(frames):
            incl[key] += count
        hits += count if needle in stack else 0
    share = [(round(100 * c / total, 1), k) for k, c in incl.most_common(top)]
    mine = [(round(100 * c / total, 1), k) for k, c in own.most_common(top)]
    return sum(stacks.values()), round(100 * hits / total, 1), share, mine

"""Stopping and removing host instances, also those a crashed run left behind.

Every instance dir holds a pidfile with the owner (the Python process that
started it), the nspawn and container-PID-1 pids plus their start times (so a
recycled pid is never signalled), and the instance's network, if it has one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .common import HarnessError, alive, kill, log, nsenter_argv, run_cmd, wait_gone, write_atomic
from .mounts import mounts_under, remove_tree, unmount_all
from .network import teardown_net

DEFAULT_WORKROOT = Path(os.environ.get("LITELLM_HARNESS_WORKROOT", "/var/tmp/litellm-salt-hosts"))
#: how long a container gets to power off before it is killed
STOP_GRACE = 20.0
PIDFILE = "harness-pids.json"


def read_pidfile(instance_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((instance_dir / PIDFILE).read_text())
    except (OSError, ValueError):
        return None


def write_pidfile(instance_dir: Path, rec: Mapping[str, Any]) -> None:
    write_atomic(instance_dir / PIDFILE, json.dumps(rec, indent=2) + "\n")


def _stop_container(rec: Mapping[str, Any], grace: float, popen: subprocess.Popen | None, how: str) -> None:
    """Ask the container to power off (how: sigterm to nspawn, or poweroff
    inside), kill it after grace seconds."""
    nspawn = (rec.get("nspawn_pid"), rec.get("nspawn_start"))
    pid1 = (rec.get("pid1"), rec.get("pid1_start"))
    asked = False
    if how == "poweroff" and alive(*pid1):
        res = run_cmd(nsenter_argv(pid1[0], ["systemctl", "poweroff", "--no-block"]), check=False, timeout=15)
        asked = res.returncode == 0
    if not asked:
        # nspawn turns SIGTERM into the container's "power off" signal
        asked = kill(*nspawn, signal.SIGTERM)
    if not asked:
        # no nspawn (killed?) but an orphaned PID 1: SIGRTMIN+4 = poweroff
        kill(*pid1, signal.SIGRTMIN + 4)
    if not wait_gone([nspawn, pid1], grace, popen):
        log.warning("container %s did not stop within %.0fs; killing it", rec.get("name"), grace)
        # killing a pid namespace's init kills everything in it
        kill(*pid1, signal.SIGKILL)
        kill(*nspawn, signal.SIGKILL, group=True)
        if not wait_gone([nspawn, pid1], 10, popen):
            raise HarnessError(f"container {rec.get('name')} survived SIGKILL: {rec}")


def teardown(
    instance_dir: Path,
    rec: Mapping[str, Any] | None,
    *,
    grace: float = STOP_GRACE,
    popen: subprocess.Popen | None = None,
    how: str = "sigterm",
) -> dict[str, float]:
    """Stop the container described by rec, remove its network, unmount and
    remove instance_dir.  Returns timings (shutdown, cleanup)."""
    timings: dict[str, float] = {}
    rec = rec or {}
    t0 = time.monotonic()
    if alive(rec.get("nspawn_pid"), rec.get("nspawn_start")) or alive(rec.get("pid1"), rec.get("pid1_start")):
        _stop_container(rec, grace, popen, how)
        timings["shutdown"] = time.monotonic() - t0
    # processes started by run() (nsenter) that outlived the container's init
    if popen is not None:
        popen.poll()
    t1 = time.monotonic()
    teardown_net(rec.get("net"))
    remove_tree(instance_dir)
    timings["cleanup"] = time.monotonic() - t1
    return timings


def reap_stale(workroot: Path = DEFAULT_WORKROOT, *, force: bool = False, depth: int = 2) -> list[Path]:
    """Stop and remove instances under workroot whose owning process is gone.

    With force=True instances whose owner is still alive are reaped as well.
    ``depth``: how many directories below workroot an instance may be (pytest's
    temp dirs: ``pytest-N/popen-gw0/<fixture>0/host/instance`` is 4).
    """
    workroot = Path(workroot)
    reaped: list[Path] = []
    if not workroot.exists():
        return reaped
    candidates = set()
    for level in range(depth + 1):
        candidates.update(p.parent for p in workroot.glob("*/" * level + PIDFILE))
    for inst in sorted(candidates):
        rec = read_pidfile(inst) or {}
        if not force and alive(rec.get("owner_pid"), rec.get("owner_start")):
            continue
        log.warning("reaping stale host %s (%s)", inst, rec.get("name"))
        teardown(inst, rec, grace=10)
        reaped.append(inst)
        if inst.name == "instance":  # CLI layout: WORKDIR/host.json describes it
            (inst.parent / "host.json").unlink(missing_ok=True)
        owner_wd = rec.get("owned_workdir")
        if owner_wd and Path(owner_wd).exists() and Path(owner_wd) == inst.parent:
            remove_tree(Path(owner_wd))
    # overlay mounts whose pidfile got lost (crash between mount and write)
    for mp in mounts_under(workroot):
        inst = Path(mp).parent
        if not (inst / PIDFILE).exists():
            log.warning("unmounting orphaned mount %s", mp)
            unmount_all(Path(mp))
    return reaped


def finalize(rec: dict[str, Any], box: list) -> None:
    """weakref/atexit finalizer of a host: must not reference the host itself.
    box[0] is its systemd-nspawn Popen (or None)."""
    inst = rec.get("instance_dir")
    if not inst:
        return
    try:
        teardown(Path(inst), rec, popen=box[0])
        if rec.get("owned_workdir"):
            remove_tree(Path(rec["owned_workdir"]))
    except Exception as exc:  # noqa: BLE001 - finalizers must not raise
        print(f"litellm harness: cleanup of {inst} failed: {exc}", file=sys.stderr)

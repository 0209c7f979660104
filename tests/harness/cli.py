"""``python -m tests.harness.systemd_host build|up|down|reap``: the harness
from the command line (``make demo`` keeps its host up with ``up``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cleanup import DEFAULT_WORKROOT, STOP_GRACE, read_pidfile, reap_stale, teardown
from .common import HarnessError, alive, log, proc_start_time, wait_gone, write_atomic
from .instance import SystemdHost
from .rootfs import DEFAULT_CACHE_DIR, DEFAULT_SUITE, build_rootfs, salt_ssh_rootfs


def _cmd_build(args) -> int:
    build = salt_ssh_rootfs if args.salt_ssh_only else build_rootfs
    print(build(Path(args.cache_dir), args.suite))
    return 0


def _cmd_up(args) -> int:
    workdir = Path(args.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    hostjson = workdir / "host.json"
    hostjson.unlink(missing_ok=True)
    binds = {}
    for spec in args.bind_ro or []:
        src, _, dst = spec.partition(":")
        binds[src] = dst or src
    rootfs = Path(args.rootfs) if args.rootfs else build_rootfs(Path(args.cache_dir), args.suite)
    stop_evt = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop_evt.set())
    h = SystemdHost(rootfs, args.name, ssh_port=args.ssh_port, binds_ro=binds, workdir=workdir, network=args.network)
    try:
        h.start()
        info = h.info()
        info["supervisor_pid"] = os.getpid()
        info["supervisor_start"] = proc_start_time(os.getpid())
        info["timings"] = {k: round(v, 3) for k, v in h.timings.items()}
        write_atomic(hostjson, json.dumps(info, indent=2) + "\n")
        print(json.dumps(info), flush=True)
        while not stop_evt.wait(0.5):
            if not h.running:
                log.error("host %s went away by itself", h.name)
                return 1
        return 0
    finally:
        h.stop()
        hostjson.unlink(missing_ok=True)


def _cmd_down(args) -> int:
    workdir = Path(args.workdir).absolute()
    hostjson = workdir / "host.json"
    info: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(hostjson.read_text())
    sup = (info.get("supervisor_pid"), info.get("supervisor_start"))
    if alive(*sup):
        os.kill(sup[0], signal.SIGTERM)
        if not wait_gone([sup], args.timeout):
            log.warning("supervisor %s did not exit within %ss", sup[0], args.timeout)
    inst = workdir / "instance"
    if inst.exists():
        teardown(inst, read_pidfile(inst), grace=STOP_GRACE)
    hostjson.unlink(missing_ok=True)
    print(json.dumps({"down": str(workdir)}))
    return 0


def _cmd_reap(args) -> int:
    for p in reap_stale(Path(args.workroot), force=args.force):
        print(p)
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tests.harness.systemd_host", description="Disposable systemd-nspawn hosts for formula tests"
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the cached rootfs and print its path")
    b.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    b.add_argument("--suite", default=DEFAULT_SUITE)
    b.add_argument("--salt-ssh-only", action="store_true",
                   help="for hosts only salt-ssh deploys to: the test rootfs if cached, else one without Salt")
    b.set_defaults(func=_cmd_build)
    u = sub.add_parser("up", help="boot a host and keep it up until SIGTERM")
    u.add_argument("--name", default="litellm-test")
    u.add_argument("--ssh-port", type=int, default=None)
    u.add_argument("--network", choices=("host", "veth"), default="host")
    u.add_argument("--workdir", required=True)
    u.add_argument("--rootfs", help="use this rootfs instead of building/reusing the cached one")
    u.add_argument("--bind-ro", action="append", metavar="HOST[:CONTAINER]")
    u.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    u.add_argument("--suite", default=DEFAULT_SUITE)
    u.set_defaults(func=_cmd_up)
    d = sub.add_parser("down", help="stop the host described by WORKDIR/host.json")
    d.add_argument("--workdir", required=True)
    d.add_argument("--timeout", type=float, default=40.0)
    d.set_defaults(func=_cmd_down)
    r = sub.add_parser("reap", help="remove hosts left over by crashed runs")
    r.add_argument("--workroot", default=str(DEFAULT_WORKROOT))
    r.add_argument("--force", action="store_true", help="also those whose owner is alive")
    r.set_defaults(func=_cmd_reap)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

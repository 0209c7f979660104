"""
Is the key table in force on every worker? The formula's hook writes, per
worker, what it has loaded to ``<runtime dir>/client-keys.<pid>.json``
(names, models, limits, the table's SHA-256; no hash of a key). Here: the
live workers of the service (its cgroup's processes that hold its listening
socket; the supervisor only when it serves alone) and the comparison of
each one's status with the table on disk, by name and limits.
"""

import hashlib
import json
import os
import time

STATUS_FIELDS = ("models", "rpm", "tpm", "max_parallel", "expires", "disabled")
WAIT = 3.0  # the hook looks every 0.5 s; a change the run just made gets this long


def expected(table_bytes):
    """``(sha256, {client: {models, limits, expires, disabled}})`` of a key table's bytes; ValueError when bad."""
    data = json.loads(table_bytes.decode("utf-8"))
    clients = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(clients, dict):
        raise ValueError("no clients mapping")
    wanted = {
        str(name): {field: ([str(m) for m in spec.get(field) or []] if field == "models" else spec.get(field))
                    for field in STATUS_FIELDS}
        for name, spec in clients.items()
    }
    for spec in wanted.values():
        spec["disabled"] = bool(spec["disabled"])
    return hashlib.sha256(table_bytes).hexdigest(), wanted


def differences(want_sha, want, status):
    """What a worker's status (a dict, or None) has wrong: a list of short texts naming clients."""
    if not isinstance(status, dict):
        return ["no status (the hook has not loaded the table)"]
    if status.get("table_sha256") == want_sha and status.get("clients") == want:
        return []
    have = status.get("clients") if isinstance(status.get("clients"), dict) else {}
    out = [f"missing {name}" for name in sorted(set(want) - set(have))]
    out += [f"extra {name}" for name in sorted(set(have) - set(want))]
    out += [f"{name} differs" for name in sorted(set(want) & set(have)) if want[name] != have[name]]
    return out or ["an older table (same clients)"]


def read_status(runtime_dir, pid):
    try:
        with open(os.path.join(runtime_dir, f"client-keys.{pid}.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def live_workers(utils, service, port, main_pid):
    """The PIDs in ``<service>.service`` that hold a listening socket on ``port`` (without the supervisor)."""
    proc = utils.litellm_proc
    inodes = [s["inode"] for s in proc.tcp_sockets() if s["state"] == "LISTEN" and s["port"] == port]
    holders = sorted({pid for pids in proc.socket_holders(inodes).values() for pid in pids})
    holders = [pid for pid in holders if proc.in_service_cgroup(proc.process_cgroup(pid), service)]
    if len(holders) > 1 and main_pid in holders:
        holders.remove(main_pid)
    return holders


def in_force(table_path, runtime_dir, pids, wait=WAIT, clock=time.monotonic, sleep=time.sleep):
    """
    ``(problems, detail, numbers)``: every PID of ``pids()`` has the table at
    ``table_path`` in force, waited for up to ``wait`` seconds.
    """
    try:
        with open(table_path, "rb") as handle:
            want_sha, want = expected(handle.read())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return [f"key table {table_path}: {type(exc).__name__}"], "no key table", {}
    deadline = clock() + wait
    while True:
        workers = pids()
        wrong = {pid: differences(want_sha, want, read_status(runtime_dir, pid)) for pid in workers}
        wrong = {pid: why for pid, why in wrong.items() if why}
        if (workers and not wrong) or clock() >= deadline:
            break
        sleep(0.2)
    enabled = sorted(name for name, spec in want.items() if not spec["disabled"])
    numbers = {"workers": workers, "clients": enabled}
    if not workers:
        return ["no live worker found"], "no worker", numbers
    problems = [f"worker {pid}: {', '.join(why)}" for pid, why in sorted(wrong.items())]
    detail = f"{len(enabled)} enabled client(s) ({', '.join(enabled)}) in force on {len(workers) - len(wrong)}/" \
             f"{len(workers)} worker(s)"
    return problems, detail, numbers

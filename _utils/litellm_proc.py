"""
Host readers of ``/proc``: TCP sockets and the processes holding them, a
process's command line and cgroup, PID 1, memory. Read-only; ``PROC`` is
module-level so that tests can point it elsewhere.
"""

import ipaddress
import os
import re
import struct

PROC = "/proc"
TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


def _read(path, limit=1 << 20):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(limit)


def hex_to_ip(text):
    """An address of /proc/net/tcp(6): 32-bit words, each in host byte order."""
    raw = b"".join(struct.pack("=I", int(text[i : i + 8], 16)) for i in range(0, len(text), 8))
    return str(ipaddress.ip_address(raw))


def parse_proc_net_tcp(text):
    """
    Sockets of a ``/proc/net/tcp`` or ``/proc/net/tcp6`` text: a list of
    ``{"address", "port", "state", "uid", "inode"}`` (``state`` by name).
    """
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or ":" not in fields[1]:
            continue
        try:
            address, port = fields[1].rsplit(":", 1)
            sockets.append(
                {
                    "address": hex_to_ip(address),
                    "port": int(port, 16),
                    "state": TCP_STATES.get(fields[3].upper(), fields[3]),
                    "uid": int(fields[7]),
                    "inode": int(fields[9]),
                }
            )
        except (ValueError, struct.error):
            continue
    return sockets


def in_service_cgroup(cgroup_text, service):
    """Whether a ``/proc/<pid>/cgroup`` text puts the process in ``<service>.service``."""
    pattern = re.compile(r"/" + re.escape(service) + r"\.service(/|$)")
    return any(pattern.search(line.split(":", 2)[-1]) for line in cgroup_text.splitlines())


def tcp_sockets():
    """Every TCP socket of the host (IPv4 and IPv6)."""
    sockets = []
    for name in ("tcp", "tcp6"):
        try:
            sockets.extend(parse_proc_net_tcp(_read(os.path.join(PROC, "net", name), limit=64 << 20)))
        except OSError:
            continue
    return sockets


def socket_holders(inodes):
    """``{inode: [pid, ...]}``: which processes hold the sockets (readable fds only)."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    holders = {inode: [] for inode in inodes}
    try:
        pids = [int(entry) for entry in os.listdir(PROC) if entry.isdigit()]
    except OSError:
        return holders
    for pid in sorted(pids):
        fd_dir = os.path.join(PROC, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None and pid not in holders[inode]:
                holders[inode].append(pid)
    return holders


def process_command(pid):
    """``comm`` and the start of the command line of a process (for messages)."""
    try:
        cmdline = _read(os.path.join(PROC, str(pid), "cmdline"), limit=4096).replace("\0", " ").strip()
    except OSError:
        cmdline = ""
    if not cmdline:
        try:
            cmdline = "[" + _read(os.path.join(PROC, str(pid), "comm")).strip() + "]"
        except OSError:
            cmdline = "?"
    return cmdline if len(cmdline) <= 120 else cmdline[:117] + "..."


def process_cgroup(pid):
    try:
        return _read(os.path.join(PROC, str(pid), "cgroup"))
    except OSError:
        return ""


def pid1_name():
    try:
        return _read(os.path.join(PROC, "1", "comm")).strip()
    except OSError:
        return ""


def meminfo():
    """``/proc/meminfo`` as {key: kB}; raises OSError."""
    info = {}
    for line in _read(os.path.join(PROC, "meminfo")).splitlines():
        key, _, value = line.partition(":")
        fields = value.split()
        if fields and fields[0].isdigit():
            info[key.strip()] = int(fields[0])  # kB
    return info

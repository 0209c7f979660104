"""Networks of the test hosts.

``network="host"``: a host shares the machine's network, its sshd on a free
port of 127.0.0.1.  ``network="veth"``: a host gets its own network namespace
with one veth pair to the machine (a /30 out of 10.231.0.0/16: .1 on the
machine, .2 in the host), optionally NAT (nftables masquerade) to the machine's
uplinks, and a link that can be cut (loopback only) and restored.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .common import HarnessError, flock, run_cmd, tool

#: every veth host gets a /30 out of this /16: .1 on the machine, .2 in the host
NET_PREFIX = "10.231"
_NETNS_PREFIX = "lsh"
_NET_LOCK = "net.lock"
_MAX_NETS = 16384


#: the ports free_port hands out: below the kernel's ephemeral range (32768-60999),
#: so no outgoing connection takes one between its choice and its bind
PORT_RANGE = (20000, 32000)
#: one lock file a port: the process that holds its flock has the port
PORT_LOCKS = Path(os.environ.get("LITELLM_HARNESS_PORT_LOCKS", "/run/lock/litellm-salt-ports"))
_HELD_PORTS: dict[int, Any] = {}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on host now and reserved for this process while it
    lives: concurrent test runs (xdist workers, several worktrees) never get the
    same one, however long before its bind the port was chosen."""
    PORT_LOCKS.mkdir(parents=True, exist_ok=True)
    low, high = PORT_RANGE
    start = random.randrange(low, high)
    for offset in range(high - low):
        port = low + (start - low + offset) % (high - low)
        if port in _HELD_PORTS or port_in_use(port, host):
            continue
        handle = open(PORT_LOCKS / str(port), "a")  # held (and so the port) while this process lives
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _HELD_PORTS[port] = handle
        return port
    raise HarnessError(f"no free port in {low}-{high} on {host}")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def net_addresses(index: int) -> tuple[str, str]:
    """(machine side, host side) addresses of the /30 numbered index."""
    if not 0 <= index < _MAX_NETS:
        raise ValueError(f"network index {index} out of range")
    base = (index % 64) * 4
    third = index // 64
    return f"{NET_PREFIX}.{third}.{base + 1}", f"{NET_PREFIX}.{third}.{base + 2}"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cmd([tool("ip"), *args], check=check, timeout=30)


def _nft(script: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cmd([tool("nft"), "-f", "-"], input=script, check=check, timeout=30)


def setup_net(workroot: Path, nat: bool) -> dict[str, Any]:
    """Make a network namespace with a veth pair to the machine (and NAT to the
    machine's uplinks when nat), numbered by the first free index."""
    with flock(workroot / _NET_LOCK):
        taken = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        index = next(i for i in range(_MAX_NETS) if f"{_NETNS_PREFIX}{i}" not in taken)
        ns = f"{_NETNS_PREFIX}{index}"
        outer, inner = net_addresses(index)
        net = {"netns": ns, "veth": f"{ns}h", "address": inner, "gateway": outer,
               "nft_table": f"{ns}_nat" if nat else None}
        ip("netns", "add", ns)
    try:
        _link_veth(net)
        if nat:
            _masquerade(net)
    except BaseException:
        teardown_net(net)
        raise
    return net


def _link_veth(net: Mapping[str, Any]) -> None:
    ns, outer, inner = net["netns"], net["gateway"], net["address"]
    ip("link", "add", net["veth"], "type", "veth", "peer", "name", f"{ns}c")
    ip("link", "set", f"{ns}c", "netns", ns)
    ip("-n", ns, "link", "set", f"{ns}c", "name", "eth0")
    ip("addr", "add", f"{outer}/30", "dev", net["veth"])
    ip("link", "set", net["veth"], "up")
    ip("-n", ns, "addr", "add", f"{inner}/30", "dev", "eth0")
    ip("-n", ns, "link", "set", "lo", "up")
    link_up(net)


def _masquerade(net: Mapping[str, Any]) -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    _nft(
        f"table ip {net['nft_table']} {{\n"
        "  chain post {\n"
        "    type nat hook postrouting priority srcnat;\n"
        f"    ip saddr {net['address']} oifname != \"{net['veth']}\" masquerade\n"
        "  }\n"
        "}\n"
    )


def link_down(net: Mapping[str, Any]) -> None:
    """Take the host's end of the veth down: it keeps only its loopback."""
    ip("-n", net["netns"], "link", "set", "eth0", "down")


def link_up(net: Mapping[str, Any]) -> None:
    """The host's end of the veth up, with its default route via the machine."""
    ns = net["netns"]
    ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", ns, "route", "replace", "default", "via", net["gateway"])


def teardown_net(net: Mapping[str, Any] | None) -> None:
    """Remove the namespace (which takes the veth pair with it) and the NAT table."""
    if not net:
        return
    if net.get("nft_table"):
        run_cmd([tool("nft"), "delete", "table", "ip", net["nft_table"]], check=False, timeout=30)
    if os.path.exists(f"/run/netns/{net['netns']}"):
        ip("netns", "delete", net["netns"], check=False)
    if os.path.exists(f"/sys/class/net/{net['veth']}"):
        ip("link", "delete", net["veth"], check=False)

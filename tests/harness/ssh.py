"""ssh into the test hosts: sshd inside (its host key and config, root's
authorized key), the client's key, ssh argv, and salt-ssh's roster entry.

Every host is new and disposable, its host key made per instance, so clients
neither check nor record host keys (``StrictHostKeyChecking=no``,
``UserKnownHostsFile=/dev/null``).  salt-ssh's roster adds ControlMaster: the
ssh round trips of one salt-ssh run share one connection, and the next run
reuses it.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .common import CONTAINER_PATH, HarnessError, run_cmd, tool

#: options of every client: no host key checks, no known_hosts, quiet
CLIENT_OPTIONS: tuple[str, ...] = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR")
#: one connection shared by the ssh round trips of a salt-ssh run and the next (bench/noop.py: ~-2.5 s)
CONTROL_OPTIONS: tuple[str, ...] = (
    "ControlMaster=auto",
    "ControlPath=/tmp/litellm-salt-ssh-%C",
    "ControlPersist=60s",
)
SSHD_DROPIN = "etc/ssh/sshd_config.d/00-litellm-harness.conf"
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"


def keygen(path: Path, comment: str) -> Path:
    """A new ed25519 key pair at path (and path.pub), replacing any old one."""
    for p in (path, path.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    run_cmd([tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], timeout=60)
    return path


def configure_sshd(root: Path, name: str, client_key: Path, listen: str, port: int) -> None:
    """In the host's tree root: a new client key pair (at client_key, on the
    machine) allowed for root, a new host key, and sshd on listen:port only,
    keys only."""
    keygen(client_key, f"litellm-harness@{name}")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    ak = ssh_dir / "authorized_keys"
    ak.write_text(client_key.with_suffix(".pub").read_text())
    os.chmod(ak, 0o600)
    keygen(root / HOST_KEY, f"root@{name}")
    dropin = root / SSHD_DROPIN
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(
        "# written by tests/harness/ssh.py\n"
        f"Port {port}\n"
        f"ListenAddress {listen}\n"
        "AddressFamily inet\n"
        f"HostKey /{HOST_KEY}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UseDNS no\n"
    )


def ssh_argv(
    host: str, port: int, client_key: Path | str, cmd: Sequence[str] | str | None = None, *extra_opts: str
) -> list[str]:
    """argv for ssh to root@host:port with client_key (and cmd, if given)."""
    opts = ("IdentitiesOnly=yes", "BatchMode=yes", *CLIENT_OPTIONS, "ConnectTimeout=10")
    argv = [tool("ssh"), "-F", "/dev/null", "-i", str(client_key)]
    for opt in opts:
        argv += ["-o", opt]
    argv += [*extra_opts, "-p", str(port), f"root@{host}"]
    if cmd is not None:
        argv.append(cmd if isinstance(cmd, str) else shlex.join(cmd))
    return argv


def wait_ssh(host: str, port: int, timeout: float, gone: Callable[[], bool]) -> float:
    """Wait until sshd on host:port sends its banner; return how long it took.

    Stops early when gone() says the host went away.  Raises HarnessError."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(5)
                banner = s.recv(256)
            if banner.startswith(b"SSH-"):
                return time.monotonic() - t0
            last = f"unexpected banner {banner!r}"
        except OSError as exc:
            last = exc
        if gone():
            break
        time.sleep(0.05)
    raise HarnessError(f"sshd did not accept connections on {host}:{port} within {timeout:.0f}s ({last})")


def run_ssh(
    label: str,
    argv: list[str],
    cmd: Sequence[str] | str,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 300,
) -> subprocess.CompletedProcess:
    return run_cmd(argv, check=check, input=input, timeout=timeout, what=f"[{label}] ssh command", shown=cmd)


def roster(name: str, ssh_port: int, client_key: Path | str, host: str = "127.0.0.1") -> dict:
    """salt-ssh roster with one entry: root@host:ssh_port with client_key."""
    return {
        name: {
            "host": host,
            "port": ssh_port,
            "user": "root",
            "priv": str(client_key),
            # the thin needs a PATH that reaches the target's own python3
            "set_path": CONTAINER_PATH,
            # a roster entry's ssh_options replace the master's: ControlMaster goes here
            "ssh_options": [*CLIENT_OPTIONS, *CONTROL_OPTIONS],
        }
    }

"""A booted test host: a throw-away instance of a cached rootfs (overlay or
copy) booted with ``systemd-nspawn -b``, systemd as its PID 1; commands run in
it with nsenter, or over ssh; stopped and removed again (also by a finalizer
when its owner forgets, and by reap_stale when its owner crashed)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from . import network, ssh
from .cleanup import DEFAULT_WORKROOT, STOP_GRACE, finalize, read_pidfile, reap_stale, teardown, write_pidfile
from .common import HOST_CA_BUNDLE, HarnessError, alive, check_prerequisites, children, file_tail, log
from .common import nsenter_argv, nspawn_bind_ro, nspid_tail, pdeathsig, proc_start_time, run_cmd, tool
from .mounts import ROOTFS_MODES, remove_tree, writable_tree

#: where every host sees the machine's CA bundle (read-only bind mount)
CONTAINER_CA_BUNDLE = "/etc/litellm-test/ca-bundle.crt"
_MACHINE_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,62})$")


class SystemdHost:
    """A booted systemd-nspawn container.

    ``mode``: ``overlay`` mounts an overlayfs (lower = the cached rootfs, upper
    in the instance dir) - instant; ``copy`` does ``cp -a --reflink=auto``;
    ``auto`` (default) tries overlay, then copies.  ``stop_how``: ``sigterm``
    (SIGTERM to nspawn, which powers the container off with SIGRTMIN+4) or
    ``poweroff`` (``systemctl poweroff`` inside).  ``network``: ``host``
    (default) shares the machine's network, sshd on 127.0.0.1:<port>;
    ``veth`` gives the host its own network namespace with one veth pair to
    the machine (host at ``address``, the machine at ``gateway``, a /30 out of
    10.231.0.0/16), sshd on ``address``:22, and with ``nat`` (default) NAT to
    the machine's uplinks; :meth:`cut_network` leaves it loopback only.  With ``die_with_parent``
    (default) nspawn gets SIGTERM when the *thread* that called start() exits:
    start hosts from the main thread or a thread that outlives them.

    >>> with SystemdHost(build_rootfs(), "web1") as h:
    ...     h.run(["systemctl", "is-active", "ssh"])
    ...     subprocess.run(h.ssh_argv("id -u"))
    """

    host = "127.0.0.1"
    BOOT_TIMEOUT = 60.0
    STOP_GRACE = STOP_GRACE

    def __init__(
        self,
        rootfs: Path,
        name: str,
        ssh_port: int | None = None,
        binds_ro: dict[str, str] | None = None,
        workdir: Path | None = None,
        *,
        mode: str | None = None,
        ca_bundle: str | None = None,
        stop_how: str = "sigterm",
        die_with_parent: bool = True,
        network: str = "host",
        nat: bool = True,
    ):
        # Concurrent test runs (xdist workers, several worktrees) would register
        # the same machine name with machined; a per-run suffix keeps them apart.
        name = name + os.environ.get("LITELLM_HARNESS_SUFFIX", "")
        if not _MACHINE_NAME.match(name):
            raise ValueError(f"invalid machine name {name!r} (letters, digits, '-', max 63)")
        self.rootfs = Path(rootfs).absolute()
        self.name = name
        self._ssh_port = ssh_port
        self.binds_ro = dict(binds_ro or {})
        self._given_workdir = Path(workdir).absolute() if workdir else None
        self.workdir: Path | None = self._given_workdir
        self.mode = mode or os.environ.get("LITELLM_HARNESS_ROOTFS_MODE", "auto")
        if self.mode not in ROOTFS_MODES:
            raise ValueError(f"mode must be auto, overlay or copy, not {self.mode!r}")
        self.ca_bundle = ca_bundle or os.environ.get("LITELLM_HARNESS_CA_BUNDLE", HOST_CA_BUNDLE)
        self.stop_how = stop_how
        self.die_with_parent = die_with_parent
        if network not in ("host", "veth"):
            raise ValueError(f"network must be host or veth, not {network!r}")
        self.network = network
        self.nat = nat
        self.timings: dict[str, float] = {}
        self._proc: subprocess.Popen | None = None
        self._pid1: int | None = None
        self._rec: dict[str, Any] = {}
        # the nspawn Popen, shared with the finalizer (which must not reference self)
        self._proc_box: list = [None]
        self._lock = threading.Lock()
        self._state = "new"  # new -> starting -> running -> stopped
        self._finalizer: weakref.finalize | None = None
        self.used_mode: str | None = None

    # -- properties --------------------------------------------------------
    @property
    def pid1(self) -> int:
        if self._pid1 is None:
            raise HarnessError(f"host {self.name} is not running")
        return self._pid1

    @property
    def nspawn_pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def ssh_port(self) -> int:
        if self._ssh_port is None:
            raise HarnessError("ssh port not chosen yet (call start())")
        return self._ssh_port

    @property
    def address(self) -> str:
        """Where the machine reaches this host (sshd, services bound to 0.0.0.0)."""
        return self.host

    @property
    def gateway(self) -> str:
        """Where this host reaches the machine (veth only; 127.0.0.1 when shared)."""
        net = self._rec.get("net")
        return net["gateway"] if net else "127.0.0.1"

    @property
    def instance_dir(self) -> Path:
        assert self.workdir is not None, "not started"
        return self.workdir / "instance"

    @property
    def rootfs_dir(self) -> Path:
        """The container's / as seen from the host (overlay merge or copy)."""
        return self.instance_dir / "rootfs"

    @property
    def client_key(self) -> Path:
        assert self.workdir is not None, "not started"
        return self.workdir / "id_ed25519"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "not started"
        return self.workdir / "nspawn.log"

    @property
    def running(self) -> bool:
        return self._state == "running" and self._proc is not None and self._proc.poll() is None

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid1": self.pid1,
            "ssh_port": self.ssh_port,
            "client_key": str(self.client_key),
            "rootfs_dir": str(self.rootfs_dir),
            "nspawn_pid": self.nspawn_pid,
            "workdir": str(self.workdir),
            "instance_dir": str(self.instance_dir),
            "log": str(self.log_path),
            "mode": self.used_mode,
            "ca_bundle": CONTAINER_CA_BUNDLE,
            "network": self.network,
            "address": self.address,
            "gateway": self.gateway,
        }

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Self:
        with self._lock:
            if self._state != "new":
                raise HarnessError(f"host {self.name} already {self._state}")
            self._state = "starting"
        problems = check_prerequisites(need_build=False)
        if problems:
            raise HarnessError("cannot start host: " + "; ".join(problems))
        if not (self.rootfs / "sbin/init").exists() and not (self.rootfs / "lib/systemd/systemd").exists():
            raise HarnessError(f"{self.rootfs} does not look like a bootable rootfs")
        if not os.path.isfile(self.ca_bundle):
            raise HarnessError(f"CA bundle {self.ca_bundle} not found")
        t_start = time.monotonic()
        try:
            self._prepare_workdir()
            self._finalizer = weakref.finalize(self, finalize, self._rec, self._proc_box)
            self._prepare_rootfs()
            self._launch()
            self._wait_booted()
            self._wait_ssh()
        except BaseException:
            try:
                self.stop()
            except Exception as exc:  # noqa: BLE001 - best effort, the original error wins
                log.error("cleanup after failed start of %s failed: %s", self.name, exc)
            raise
        self.timings["start_total"] = time.monotonic() - t_start
        self._state = "running"
        took = ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        log.info("host %s up: pid1=%s ssh=%s:%s (%s)", self.name, self._pid1, self.host, self._ssh_port, took)
        return self

    def _prepare_workdir(self) -> None:
        if self._given_workdir is None:
            DEFAULT_WORKROOT.mkdir(parents=True, exist_ok=True)
            reap_stale(DEFAULT_WORKROOT)
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=DEFAULT_WORKROOT))
            self._rec["owned_workdir"] = str(self.workdir)
        else:
            self.workdir = self._given_workdir
            self.workdir.mkdir(parents=True, exist_ok=True)
            if self.instance_dir.exists():
                # a previous run in the same workdir; only reap it if its owner is dead
                rec = read_pidfile(self.instance_dir) or {}
                if alive(rec.get("owner_pid"), rec.get("owner_start")):
                    raise HarnessError(f"{self.instance_dir} is in use by pid {rec.get('owner_pid')}")
                teardown(self.instance_dir, rec, grace=10)
        self._choose_ssh_port()
        self.instance_dir.mkdir()
        me = os.getpid()
        self._rec.update(name=self.name, owner_pid=me, owner_start=proc_start_time(me),
                         instance_dir=str(self.instance_dir), ssh_port=self._ssh_port)
        self._write_pidfile()
        if self.network == "veth":
            self._rec["net"] = network.setup_net(DEFAULT_WORKROOT, self.nat)  # one lock for every run
            self._write_pidfile()
            self.host = self._rec["net"]["address"]

    def _choose_ssh_port(self) -> None:
        if self.network == "veth":
            self._ssh_port = self._ssh_port or 22
        elif self._ssh_port is None:
            self._ssh_port = network.free_port()
        elif network.port_in_use(self._ssh_port):
            raise HarnessError(f"127.0.0.1:{self._ssh_port} is already in use on this machine")

    def _write_pidfile(self) -> None:
        write_pidfile(self.instance_dir, self._rec)

    def _prepare_rootfs(self) -> None:
        t0 = time.monotonic()
        root, self.used_mode = writable_tree(self.rootfs, self.instance_dir, self.mode)
        self._rec["mode"] = self.used_mode
        self._write_pidfile()
        self.timings["rootfs_" + self.used_mode] = time.monotonic() - t0
        t1 = time.monotonic()
        ssh.configure_sshd(root, self.name, self.client_key, self.host, self.ssh_port)
        _set_hostname(root, self.name)
        self.timings["configure"] = time.monotonic() - t1

    def _nspawn_argv(self) -> list[str]:
        argv = [tool("systemd-nspawn"), "-b", "--register=no", "--keep-unit", "-D", str(self.rootfs_dir),
                f"--machine={self.name}", "--link-journal=no", "--console=read-only", "--kill-signal=SIGRTMIN+4",
                nspawn_bind_ro(os.path.realpath(self.ca_bundle), CONTAINER_CA_BUNDLE)]
        if self.network == "veth":
            argv += [f"--network-namespace-path=/run/netns/{self._rec['net']['netns']}", "--resolv-conf=copy-host"]
        for host_path, cont_path in self.binds_ro.items():
            if not os.path.exists(host_path):
                raise HarnessError(f"bind source {host_path} does not exist")
            argv.append(nspawn_bind_ro(os.path.abspath(host_path), cont_path))
        return argv

    def _launch(self) -> None:
        argv = self._rec["argv"] = self._nspawn_argv()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_SOCKET", "LISTEN_"))}
        env["SYSTEMD_LOG_COLOR"] = "0"
        env["TERM"] = "dumb"  # nspawn passes TERM on; "dumb" keeps colour codes out of the log
        t0 = time.monotonic()
        with open(self.log_path, "ab", buffering=0) as logf:  # nspawn keeps its own copy of the fd
            logf.write(f"=== {time.strftime('%F %T')} {shlex.join(argv)}\n".encode())
            self._proc = subprocess.Popen(
                pdeathsig(argv) if self.die_with_parent else argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        self._proc_box[0] = self._proc
        self._rec.update(nspawn_pid=self._proc.pid, nspawn_start=proc_start_time(self._proc.pid))
        self._write_pidfile()
        self._pid1 = self._find_pid1()
        self._rec.update(pid1=self._pid1, pid1_start=proc_start_time(self._pid1))
        self._write_pidfile()
        self.timings["pid1_found"] = time.monotonic() - t0

    def _find_pid1(self, timeout: float = 15) -> int:
        """Container PID 1: the nspawn child whose pid in its own namespace is 1."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise HarnessError(f"systemd-nspawn exited with {self._proc.returncode}:\n" + file_tail(self.log_path))
            for child in children(self._proc.pid):
                if nspid_tail(child) == 1:
                    return child
            if time.monotonic() > deadline:
                raise HarnessError("container PID 1 did not appear:\n" + file_tail(self.log_path))
            time.sleep(0.01)

    def _boot_failure(self, why: str) -> HarnessError:
        extra = ""
        if self._proc is not None and self._proc.poll() is None and self._pid1:
            res = self.run("systemctl --failed --no-pager; journalctl -b --no-pager -n 40", check=False, timeout=20)
            extra = f"\n--- inside ---\n{res.stdout}{res.stderr}"
        return HarnessError(
            f"host {self.name}: {why}\n--- {self.log_path} (tail) ---\n{file_tail(self.log_path)}{extra}"
        )

    def _check_nspawn(self) -> None:
        if self._proc.poll() is not None:
            raise self._boot_failure(f"systemd-nspawn exited ({self._proc.returncode}) during boot")

    def _wait_booted(self) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.BOOT_TIMEOUT
        # wait for PID 1 to have exec'd systemd (before that it is nspawn's inner child)
        while True:
            self._check_nspawn()
            try:
                if Path(f"/proc/{self._pid1}/comm").read_text().strip() == "systemd":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise self._boot_failure("PID 1 never became systemd")
            time.sleep(0.01)
        self.boot_state = self._wait_system_running(deadline)
        self.timings["boot"] = time.monotonic() - t0

    def _wait_system_running(self, deadline: float) -> str:
        state = ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._boot_failure(f"not booted within {self.BOOT_TIMEOUT:.0f}s (state {state!r})")
            self._check_nspawn()
            try:
                res = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=max(1.0, left))
            except HarnessError:
                continue
            state = res.stdout.strip()
            if state in ("running", "degraded"):
                return state
            if state in ("maintenance", "stopping"):
                raise self._boot_failure(f"system is {state}")
            # "offline" + "Failed to connect to bus": PID 1 is systemd but its
            # private socket is not up yet; "initializing"/"starting": --wait gave up
            time.sleep(0.05)

    def _wait_ssh(self, timeout: float = 30.0) -> None:
        try:
            took = ssh.wait_ssh(self.host, self.ssh_port, timeout, gone=lambda: self._proc.poll() is not None)
        except HarnessError as exc:
            raise self._boot_failure(str(exc)) from None
        self.timings["ssh_ready"] = took

    def stop(self) -> None:
        """Power the container off, kill it if it hangs, remove the instance dir.

        Idempotent; safe from finalizers/atexit.
        """
        with self._lock:
            if self._state in ("stopped", "new"):
                self._state = "stopped"
                return
            self._state = "stopping"
        try:
            if self.workdir is not None and (self.instance_dir.exists() or self._rec.get("nspawn_pid")):
                t = teardown(self.instance_dir, self._rec, grace=self.STOP_GRACE, popen=self._proc, how=self.stop_how)
                self.timings.update({f"stop_{k}": v for k, v in t.items()})
            if self._proc is not None:
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            owned = self._rec.get("owned_workdir")
            if owned:
                remove_tree(Path(owned))
        finally:
            self._state = "stopped"
            self._pid1 = None
            if self._finalizer is not None:
                self._finalizer.detach()

    # -- network (veth only) ---------------------------------------------------
    def _net(self) -> dict[str, Any]:
        net = self._rec.get("net")
        if not net:
            raise HarnessError(f"host {self.name} shares the machine's network; start it with network='veth'")
        return net

    def cut_network(self) -> None:
        """Take the veth link down: the host keeps only its loopback."""
        network.link_down(self._net())

    def restore_network(self) -> None:
        network.link_up(self._net())

    # -- running things ------------------------------------------------------
    def run(
        self,
        cmd: Sequence[str] | str,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = 300,
        env: Mapping[str, str] | None = None,
        cwd: str = "/",
    ) -> subprocess.CompletedProcess:
        """Run cmd inside the container (nsenter into all namespaces of PID 1).

        A string is run with /bin/sh -c.  The environment is clean (PATH, HOME,
        LANG) plus env.  Returns a text-mode CompletedProcess; with check=True a
        non-zero exit raises CommandError carrying stdout/stderr.
        """
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        res = run_cmd(nsenter_argv(self.pid1, argv, env, cwd), check=check, input=input, timeout=timeout,
                      what=f"[{self.name}] command", shown=cmd)
        res.args = cmd
        return res

    def ssh_argv(self, cmd: Sequence[str] | str | None = None, *extra_opts: str) -> list[str]:
        """argv for ssh into the host as root with the generated key."""
        return ssh.ssh_argv(self.host, self.ssh_port, self.client_key, cmd, *extra_opts)

    def ssh(
        self, cmd: Sequence[str] | str, check: bool = True, input: str | None = None, timeout: float | None = 300
    ) -> subprocess.CompletedProcess:
        return ssh.run_ssh(self.name, self.ssh_argv(cmd), cmd, check=check, input=input, timeout=timeout)

    def __repr__(self) -> str:
        return f"<SystemdHost {self.name} {self._state} pid1={self._pid1} ssh={self.host}:{self._ssh_port}>"


def _set_hostname(root: Path, name: str) -> None:
    """/etc/hostname, and a 127.0.1.1 line for it in /etc/hosts: debootstrap
    writes none, and without it the host's own name does not resolve (the
    formula's preflight DNS check would say NO-GO)."""
    (root / "etc/hostname").write_text(name + "\n")
    hosts = root / "etc/hosts"
    text = hosts.read_text() if hosts.exists() else "127.0.0.1\tlocalhost\n"
    text = "".join(line for line in text.splitlines(True) if not line.startswith("127.0.1.1"))
    hosts.write_text(text + f"127.0.1.1\t{name}\n")

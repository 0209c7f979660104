"""What every part of the systemd host harness needs: errors, running commands,
looking at processes, a build lock, small file helpers (stdlib only)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger("litellm_harness")

HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: PATH of every command run inside a host or a rootfs
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: tool -> the Debian package that has it (anything else: util-linux)
_TOOL_PACKAGES = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "nft": "nftables",
}
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


class HarnessError(RuntimeError):
    """Anything the harness could not do; the message says what and why."""


class CommandError(HarnessError):
    def __init__(self, msg: str, result: subprocess.CompletedProcess):
        super().__init__(msg)
        self.result = result
        self.returncode = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr


def check_prerequisites(need_build: bool = True) -> list[str]:
    """Return a list of human-readable problems (empty when all is fine)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (systemd-nspawn, debootstrap, mount)")
    tools = ["systemd-nspawn", "nsenter", "unshare", "ssh", "ssh-keygen", "mount", "umount", "ip", "nft"]
    if need_build:
        tools.append("debootstrap")
    for name in tools:
        if _find_tool(name) is None:
            problems.append(f"{name} not found (apt-get install {_TOOL_PACKAGES.get(name, 'util-linux')})")
    return problems


def _find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def tool(name: str) -> str:
    """Absolute path of a required tool (also found in sbin dirs not on PATH)."""
    found = _find_tool(name)
    if found is None:
        raise HarnessError(f"required tool {name!r} not found")
    return found


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Host environment minus pip settings that would leak into our builds."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "PYTHON")) and k not in ("PIP_CERT",):
            env.pop(k)
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env.setdefault("PIP_DEFAULT_TIMEOUT", "120")
    if os.path.exists(HOST_CA_BUNDLE):
        env.setdefault("PIP_CERT", HOST_CA_BUNDLE)
        env.setdefault("SSL_CERT_FILE", HOST_CA_BUNDLE)
    env["UV_NATIVE_TLS"] = "1"
    env["LC_ALL"] = "C.UTF-8"
    env.pop("LANGUAGE", None)
    if extra:
        env.update(extra)
    return env


def show(cmd: Sequence[str] | str) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(map(str, cmd))


def run_cmd(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env=None,
    cwd=None,
    check: bool = True,
    input: str | None = None,
    what: str = "command",
    shown: Sequence[str] | str | None = None,
) -> subprocess.CompletedProcess:
    """subprocess.run, text mode, captured; a timeout raises HarnessError and
    (with check) a non-zero exit CommandError, both with the output's tail.
    ``what`` prefixes the messages ("[web1] command"); ``shown`` is the command
    they name (default argv)."""
    shown = argv if shown is None else shown
    log.debug("run: %s", show(argv))
    try:
        res = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            pass_fds=tuple(_HELD_LOCK_FDS),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{what} timed out after {timeout}s: {show(shown)}\n{_outputs(exc)}") from None
    if check and res.returncode != 0:
        raise CommandError(f"{what} failed (exit {res.returncode}): {show(shown)}\n{_outputs(res)}", res)
    return res


def _outputs(res) -> str:
    return f"--- stdout ---\n{tail(res.stdout)}\n--- stderr ---\n{tail(res.stderr)}"


def tail(text: str | bytes | None, lines: int = 60) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def file_tail(path: Path, lines: int = 80) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            return tail(fh.read(), lines)
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def pdeathsig(argv: Sequence[str]) -> list[str]:
    """Prefix argv so the command gets SIGTERM when the thread that started it
    dies (setpriv --pdeathsig; no preexec_fn, which is unsafe with threads).

    For systemd-nspawn that means a crashed test run powers its container off;
    for debootstrap/pip that a killed build does not go on in the background."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return list(argv)
    return [setpriv, "--pdeathsig", "TERM", "--", *map(str, argv)]


# -- processes -------------------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat after the command name (state first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm may contain spaces/parens: fields after the last ')'
    return data[data.rfind(b")") + 2 :].split()


def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of pid, or None if it is gone."""
    rest = _stat_fields(pid)
    try:
        if rest is None or rest[0] == b"Z":  # zombie: as good as gone
            return None
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def alive(pid: int | None, start: int | None) -> bool:
    """True if pid is running and (if start is given) is still the same process."""
    if not pid:
        return False
    st = proc_start_time(pid)
    if st is None:
        return False
    return start is None or st == start


def _ppid(pid: int) -> int | None:
    rest = _stat_fields(pid)
    try:
        return int(rest[1]) if rest is not None else None
    except (IndexError, ValueError):
        return None


def nspid_tail(pid: int) -> int | None:
    """pid of pid in its innermost pid namespace."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def children(pid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _ppid(int(e)) == pid]


def kill(pid: int | None, start: int | None, sig: int, group: bool = False) -> bool:
    """Signal pid if it is still the process that started at start."""
    if not alive(pid, start):
        return False
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise HarnessError(f"cannot signal {pid}: {exc}") from None


def wait_gone(
    pids: Sequence[tuple[int | None, int | None]], timeout: float, popen: subprocess.Popen | None = None
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None:
            popen.poll()  # reap our child so it stops being a zombie
        if not any(alive(p, s) for p, s in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# -- files and locks ---------------------------------------------------------------


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def nspawn_escape(p: str) -> str:
    return p.replace("\\", "\\\\").replace(":", "\\:")


def nspawn_bind_ro(host: str, container: str) -> str:
    return f"--bind-ro={nspawn_escape(host)}:{nspawn_escape(container)}"


def nspawn_exec(
    root: Path,
    argv: Sequence[str],
    binds_ro: Mapping[str, str] | None = None,
    timeout: float = 1800,
    setenv: Mapping[str, str] | None = None,
    binds: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run a command in root like a chroot (no boot), in nspawn's own mount ns,
    sharing the machine's network; binds_ro/binds: {host path: path inside}."""
    cmd = [tool("systemd-nspawn"), "--quiet", "--register=no", "--keep-unit", "--link-journal=no",
           "--console=pipe", "-D", str(root)]
    cmd += [nspawn_bind_ro(host, cont) for host, cont in (binds_ro or {}).items()]
    cmd += [f"--bind={nspawn_escape(host)}:{nspawn_escape(cont)}" for host, cont in (binds or {}).items()]
    cmd += [f"--setenv={k}={v}" for k, v in (setenv or {}).items()]
    return run_cmd(pdeathsig([*cmd, "--", *argv]), timeout=timeout, env=clean_env())


#: the environment of every command run in a host (plus what the caller adds)
CONTAINER_ENV = {"PATH": CONTAINER_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "USER": "root",
                 "LOGNAME": "root"}


def nsenter_argv(pid1: int, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str = "/") -> list[str]:
    """argv that runs argv in every namespace of the container whose PID 1 is
    pid1, with a clean environment (CONTAINER_ENV + env) in cwd."""
    envv = {**CONTAINER_ENV, **(env or {})}
    # --root/--wd without a value: PID 1's root and cwd.  (--wd=DIR would be
    # resolved on the host side, leaving the command with a dangling cwd.)
    return [tool("nsenter"), "-t", str(pid1), "-a", "--root", "--wd", "--", "/usr/bin/env", "-i", f"--chdir={cwd}",
            *(f"{k}={v}" for k, v in envv.items()), *argv]


# Build lock fds, passed on to every subprocess started while the lock is held:
# a flock lives as long as any process holds the open file, so if this process
# dies mid-build, a second builder waits for the orphaned debootstrap/dpkg to
# finish before it removes the leftovers (instead of racing them).
_HELD_LOCK_FDS: list[int] = []


@contextlib.contextmanager
def flock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        _HELD_LOCK_FDS.append(fh.fileno())
        t0 = time.monotonic()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for lock %s (another build is running)", path)
            fcntl.flock(fh, fcntl.LOCK_EX)
            log.info("got lock %s after %.1fs", path, time.monotonic() - t0)
        try:
            yield
        finally:
            # no LOCK_UN: that would drop the lock for orphaned children too;
            # closing our fd releases it once nobody else holds the file
            _HELD_LOCK_FDS.remove(fh.fileno())

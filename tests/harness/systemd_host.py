"""Disposable systemd hosts for integration tests (stdlib only, Python 3.11).

A *host* is a Debian rootfs booted with ``systemd-nspawn -b`` that shares the
machine's network, runs a real systemd as PID 1 and an sshd on
``127.0.0.1:<port>``.  Tests deploy the formula to it (``salt-call --local``
inside, or salt-ssh from outside) and inspect the result.

Pieces:

* :func:`build_rootfs` debootstraps a minbase rootfs (systemd, sshd, python3,
  Salt in ``/opt/salt``) once and caches it under ``cache_dir`` in a directory
  named by a hash of everything that goes into it.
* :class:`SystemdHost` boots a throw-away instance of that rootfs (an overlay
  on top of the cached tree, or a copy) and tears it down again.
* :func:`reap_stale` kills and removes instances left behind by a crashed run.
* CLI: ``python -m tests.harness.systemd_host build|up|down`` (see ``main``).

Requirements: root, ``debootstrap``, ``systemd-nspawn`` (systemd-container),
``nsenter``/``unshare`` (util-linux), ``ssh``/``ssh-keygen`` (openssh-client).

Environment knobs:

``LITELLM_SALT_VERSION``         Salt version installed in the rootfs (3008.4).
``LITELLM_DEBIAN_MIRROR``        Debian mirror (default: the host's apt config).
``LITELLM_HARNESS_CACHE``        default cache dir (/var/cache/litellm-salt).
``LITELLM_HARNESS_WORKROOT``     default parent of instance workdirs.
``LITELLM_HARNESS_ROOTFS_MODE``  ``overlay`` | ``copy`` | ``auto`` (default).
``LITELLM_HARNESS_CA_BUNDLE``    host CA bundle bind-mounted into hosts.
``LITELLM_HARNESS_PYTHON``       host CPython used to build the salt wheelhouse;
                                 must match the container's python3 X.Y.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

log = logging.getLogger("litellm_harness")

# Bump when the rootfs recipe changes in a way the hash inputs do not cover.
HARNESS_VERSION = "1"

DEFAULT_SUITE = "bookworm"
DEFAULT_SALT_VERSION = "3008.4"
DEFAULT_CACHE_DIR = Path(os.environ.get("LITELLM_HARNESS_CACHE", "/var/cache/litellm-salt"))
DEFAULT_WORKROOT = Path(os.environ.get("LITELLM_HARNESS_WORKROOT", "/var/tmp/litellm-salt-hosts"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: where every host sees the machine's CA bundle (read-only bind mount)
CONTAINER_CA_BUNDLE = "/etc/litellm-test/ca-bundle.crt"

ROOTFS_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "ca-certificates",
    "procps",
    "iproute2",
    "curl",
    "util-linux",
    "less",
    # salt-call --local decrypts the GPG pillar on the host itself
    "gnupg",
)

# Units that only add noise or lock contention (apt) in a short-lived test host.
MASKED_UNITS: tuple[str, ...] = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "apt-daily.service",
    "apt-daily-upgrade.service",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
)

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PIDFILE = "harness-pids.json"
_ROOTFS_META = "etc/litellm-harness-rootfs.json"


class HarnessError(RuntimeError):
    """Anything the harness could not do; the message says what and why."""


class CommandError(HarnessError):
    def __init__(self, msg: str, result: subprocess.CompletedProcess):
        super().__init__(msg)
        self.result = result
        self.returncode = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def check_prerequisites(need_build: bool = True) -> list[str]:
    """Return a list of human-readable problems (empty when all is fine)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (systemd-nspawn, debootstrap, mount)")
    tools = ["systemd-nspawn", "nsenter", "unshare", "ssh", "ssh-keygen", "mount", "umount", "ip", "nft"]
    if need_build:
        tools.append("debootstrap")
    for tool in tools:
        if not shutil.which(tool) and not any(
            os.access(os.path.join(d, tool), os.X_OK) for d in ("/usr/sbin", "/sbin")
        ):
            pkg = {
                "systemd-nspawn": "systemd-container",
                "debootstrap": "debootstrap",
                "ssh": "openssh-client",
                "ssh-keygen": "openssh-client",
                "ip": "iproute2",
                "nft": "nftables",
            }.get(tool, "util-linux")
            problems.append(f"{tool} not found (apt-get install {pkg})")
    return problems


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    raise HarnessError(f"required tool {name!r} not found")


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
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


def _run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env=None,
    cwd=None,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    log.debug("run: %s", shlex.join(str(a) for a in argv))
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
        raise HarnessError(
            f"timed out after {timeout}s: {shlex.join(map(str, argv))}\n"
            f"--- stdout ---\n{_tail(exc.stdout)}\n--- stderr ---\n{_tail(exc.stderr)}"
        ) from None
    if check and res.returncode != 0:
        raise CommandError(
            f"command failed (exit {res.returncode}): {shlex.join(map(str, argv))}\n"
            f"--- stdout ---\n{_tail(res.stdout)}\n--- stderr ---\n{_tail(res.stderr)}",
            res,
        )
    return res


def _tail(text: str | bytes | None, lines: int = 60) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def _file_tail(path: Path, lines: int = 80) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            return _tail(fh.read(), lines)
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def _proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of pid, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm may contain spaces/parens: fields after the last ')'
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        if rest[0] == b"Z":  # zombie: as good as gone
            return None
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def _alive(pid: int | None, start: int | None) -> bool:
    """True if pid is running and (if start is given) is still the same process."""
    if not pid:
        return False
    st = _proc_start_time(pid)
    if st is None:
        return False
    return start is None or st == start


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return int(data[data.rfind(b")") + 2 :].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _nspid_tail(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ppid(int(entry)) == pid:
            out.append(int(entry))
    return out


def _mounts_under(path: Path) -> list[str]:
    """Mount points (in this mount namespace) at or below path, deepest first."""
    prefix = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                mp = line.split()[4]
                mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp)  # \040
                if mp == prefix or mp.startswith(prefix.rstrip("/") + "/"):
                    found.append(mp)
    except OSError:
        pass
    return sorted(set(found), key=lambda m: m.count("/"), reverse=True)


def _unmount_all(path: Path) -> None:
    for mp in _mounts_under(path):
        res = _run([_tool("umount"), mp], check=False, timeout=60)
        if res.returncode != 0:
            log.warning("umount %s failed (%s); detaching lazily", mp, res.stderr.strip())
            _run([_tool("umount"), "-l", mp], check=False, timeout=60)
    left = _mounts_under(path)
    if left:
        raise HarnessError(f"could not unmount {left} under {path}")


def _remove_tree(path: Path) -> None:
    """rm -rf that refuses to cross into anything still mounted below path."""
    if not os.path.lexists(path):
        return
    _unmount_all(path)
    _run(["rm", "-rf", "--one-file-system", "--", str(path)], timeout=600)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _nspawn_escape(p: str) -> str:
    return p.replace("\\", "\\\\").replace(":", "\\:")


# Build lock fds, passed on to every subprocess started while the lock is held:
# a flock lives as long as any process holds the open file, so if this process
# dies mid-build, a second builder waits for the orphaned debootstrap/dpkg to
# finish before it removes the leftovers (instead of racing them).
_HELD_LOCK_FDS: list[int] = []


@contextlib.contextmanager
def _flock(path: Path):
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


# --------------------------------------------------------------------------
# rootfs build
# --------------------------------------------------------------------------


def _parse_apt_sources() -> list[tuple[str, list[str]]]:
    """(uri, suites) pairs of the host's 'deb' sources, in config order."""
    out: list[tuple[str, list[str]]] = []
    sl = Path("/etc/apt/sources.list")
    files = [sl] if sl.exists() else []
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    out.append((uri, fields.get("suites", "").split()))
        else:
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                if not line.startswith("deb "):
                    continue
                parts = line.split()[1:]
                if parts and parts[0].startswith("["):
                    while parts and not parts[0].endswith("]"):
                        parts.pop(0)
                    parts.pop(0) if parts else None
                if len(parts) >= 2:
                    out.append((parts[0], [parts[1]]))
    return [(u, s) for u, s in out if u.startswith(("http://", "https://"))]


def debian_mirror(suite: str = DEFAULT_SUITE) -> str:
    """The host's Debian mirror for suite (env LITELLM_DEBIAN_MIRROR wins)."""
    env = os.environ.get("LITELLM_DEBIAN_MIRROR")
    if env:
        return env
    for uri, suites in _parse_apt_sources():
        if suite in suites:
            return uri
    for uri, _suites in _parse_apt_sources():
        if not uri.rstrip("/").endswith("-security") and "debian" in uri:
            return uri
    return DEFAULT_MIRROR


def _security_mirror(suite: str) -> str:
    for uri, suites in _parse_apt_sources():
        if f"{suite}-security" in suites:
            return uri
    return DEFAULT_SECURITY_MIRROR


def salt_version() -> str:
    return os.environ.get("LITELLM_SALT_VERSION", DEFAULT_SALT_VERSION)


def rootfs_key(suite: str = DEFAULT_SUITE, packages: Iterable[str] = ROOTFS_PACKAGES, salt: str | None = None) -> str:
    data = json.dumps(
        {
            "suite": suite,
            "packages": sorted(packages),
            "harness": HARNESS_VERSION,
            "salt": salt or salt_version(),
            "masked": sorted(MASKED_UNITS),
        },
        sort_keys=True,
    )
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _ensure_uv(cache_dir: Path) -> tuple[Path, Path]:
    """A small venv under cache_dir with uv in it; returns (python, uv)."""
    venv = cache_dir / "tools-venv"
    py, uv = venv / "bin" / "python", venv / "bin" / "uv"
    if uv.exists() and _run([uv, "--version"], check=False, timeout=60).returncode == 0:
        return py, uv
    t0 = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    host_py = _host_python()
    _run([host_py, "-m", "venv", venv], env=_clean_env(), timeout=300)
    _run([py, "-m", "pip", "install", "--quiet", "uv"], env=_clean_env(), timeout=600)
    log.info("installed uv into %s in %.1fs", venv, time.monotonic() - t0)
    return py, uv


def _host_python() -> str:
    """Host CPython for the tools venv (and so for building the wheelhouse)."""
    env = os.environ.get("LITELLM_HARNESS_PYTHON")
    if env:
        return env
    base = getattr(sys, "_base_executable", None) or sys.executable
    if sys.version_info[:2] == (3, 11) and base and os.path.exists(base):
        return base
    return shutil.which("python3.11") or shutil.which("python3") or sys.executable


def _python_tag(python: str | Path) -> str:
    res = _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], env=_clean_env(), timeout=60)
    return res.stdout.strip()


def _ensure_wheelhouse(cache_dir: Path, salt: str, pyver: str) -> Path:
    """Wheels for salt==<salt> and its deps for CPython <pyver>, built once."""
    wh = cache_dir / "wheelhouse" / f"salt-{salt}-cp{pyver.replace('.', '')}"
    if wh.is_dir():
        return wh
    host_py, _ = _ensure_uv(cache_dir)
    have = _python_tag(host_py)
    if have != pyver:
        raise HarnessError(
            f"the host python {_host_python()} is {have} but the rootfs python3 is {pyver}; "
            f"set LITELLM_HARNESS_PYTHON to a CPython {pyver} so the salt wheelhouse "
            f"matches the container"
        )
    t0 = time.monotonic()
    wh.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{wh.name}-", dir=wh.parent))
    try:
        _run(
            _pdeathsig([host_py, "-m", "pip", "wheel", "--quiet", "--wheel-dir", tmp, f"salt=={salt}"]),
            env=_clean_env(),
            timeout=1800,
        )
        os.rename(tmp, wh)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built salt %s wheelhouse (%d wheels) in %.1fs", salt, len(list(wh.glob("*.whl"))), time.monotonic() - t0)
    return wh


def _rootfs_python_version(root: Path) -> str:
    target = os.readlink(root / "usr/bin/python3")
    m = re.fullmatch(r"python(\d+\.\d+)", os.path.basename(target))
    if not m:
        raise HarnessError(f"cannot tell python version from {root}/usr/bin/python3 -> {target}")
    return m.group(1)


def _nspawn_exec(
    root: Path,
    argv: Sequence[str],
    binds_ro: Mapping[str, str] = {},
    timeout: float = 1800,
    setenv: Mapping[str, str] = {},
) -> subprocess.CompletedProcess:
    """Run a command in root like a chroot (no boot), in nspawn's own mount ns."""
    cmd = [
        _tool("systemd-nspawn"),
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--link-journal=no",
        "--console=pipe",
        "-D",
        str(root),
    ]
    for host, cont in binds_ro.items():
        cmd.append(f"--bind-ro={_nspawn_escape(host)}:{_nspawn_escape(cont)}")
    for k, v in setenv.items():
        cmd.append(f"--setenv={k}={v}")
    cmd += ["--", *argv]
    return _run(_pdeathsig(cmd), timeout=timeout, env=_clean_env())


_UNSAFE_IO = "etc/dpkg/dpkg.cfg.d/00-litellm-harness-unsafe-io"


def _debootstrap(root: Path, suite: str, mirror: str, packages: Sequence[str], deb_cache: Path) -> None:
    # dpkg without fsync while bootstrapping (~10 s faster); removed afterwards
    (root / _UNSAFE_IO).parent.mkdir(parents=True, exist_ok=True)
    (root / _UNSAFE_IO).write_text("force-unsafe-io\n")
    deb_cache.mkdir(parents=True, exist_ok=True)
    # Own mount namespace: /proc etc. that debootstrap mounts in the target die
    # with it, even if it is interrupted.
    _run(
        _pdeathsig(
            [
                _tool("unshare"),
                "--mount",
                "--propagation",
                "private",
                "--",
                _tool("debootstrap"),
                "--variant=minbase",
                f"--cache-dir={deb_cache}",
                f"--include={','.join(packages)}",
                suite,
                str(root),
                mirror,
            ]
        ),
        env=_clean_env(),
        timeout=1800,
    )
    (root / _UNSAFE_IO).unlink()


def _configure_rootfs(root: Path, suite: str, mirror: str) -> None:
    sec = _security_mirror(suite)
    (root / "etc/apt/sources.list").write_text("")
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\n"
        f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {sec}\nSuites: {suite}-security\nComponents: main\n"
        f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    # every instance gets its own machine-id (empty file => transient id at boot)
    (root / "etc/machine-id").write_text("")
    dbus_mid = root / "var/lib/dbus/machine-id"
    if dbus_mid.exists() and not dbus_mid.is_symlink():
        dbus_mid.unlink()
        dbus_mid.symlink_to("/etc/machine-id")
    # sshd host keys are generated per instance
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    sysd = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = sysd / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    for timer in MASKED_UNITS:
        for wants in sysd.glob(f"*.wants/{timer}"):
            wants.unlink()
    # debris of the build (nspawn mounts a tmpfs on /run at boot anyway)
    for p in (root / "run").iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.name != "shm":
            p.unlink()
    # keep the image small
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/cache/debconf/*-old",
        "var/log/*.log",
        "var/log/apt/*",
    ):
        for p in root.glob(pattern):
            if p.is_file() or p.is_symlink():
                p.unlink()
            elif p.is_dir() and p.name != "partial":
                shutil.rmtree(p)


def _install_salt(root: Path, uv: Path, wheelhouse: Path, salt: str) -> None:
    script = (
        "set -e\n"
        "python3 -m venv /opt/salt\n"
        "/run/harness-uv pip install --python /opt/salt/bin/python --no-index "
        f"--find-links /run/wheelhouse --compile-bytecode --link-mode=copy 'salt=={salt}'\n"
        "ln -sf /opt/salt/bin/salt-call /usr/local/bin/salt-call\n"
        "/opt/salt/bin/salt-call --version\n"
    )
    res = _nspawn_exec(
        root,
        ["/bin/sh", "-c", script],
        binds_ro={str(uv.resolve()): "/run/harness-uv", str(wheelhouse): "/run/wheelhouse"},
        setenv={
            "UV_NO_CACHE": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "PATH": CONTAINER_PATH,
            "HOME": "/root",
            "LC_ALL": "C.UTF-8",
        },
    )
    log.info("salt in rootfs: %s", res.stdout.strip().splitlines()[-1:])
    if salt not in res.stdout:
        raise HarnessError(f"salt-call --version in the rootfs did not report {salt}:\n{res.stdout}")


def build_rootfs(cache_dir: Path = DEFAULT_CACHE_DIR, suite: str = DEFAULT_SUITE, *, salt: str | None = None) -> Path:
    """Return the path of a complete cached rootfs, building it if needed."""
    problems = check_prerequisites(need_build=True)
    if problems:
        raise HarnessError("cannot build rootfs: " + "; ".join(problems))
    cache_dir = Path(cache_dir).absolute()
    salt = salt or salt_version()
    name = f"rootfs-{suite}-{rootfs_key(suite, ROOTFS_PACKAGES, salt)}"
    final = cache_dir / name
    if (final / _ROOTFS_META).is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _flock(cache_dir / ".build.lock"):
        if (final / _ROOTFS_META).is_file():
            return final
        # leftovers of interrupted builds (we hold the lock, so nobody uses them)
        for stale in cache_dir.glob(".tmp-*"):
            log.warning("removing leftover of an interrupted build: %s", stale)
            _remove_tree(stale)
        for stale in (cache_dir / "wheelhouse").glob(".tmp-*"):
            _remove_tree(stale)
        mirror = debian_mirror(suite)
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=cache_dir))
        root = tmp / "rootfs"
        try:
            # debootstrap (I/O bound) and the wheelhouse (CPU bound) in parallel
            errors: list[BaseException] = []
            wh_box: dict[str, Path] = {}
            pyver_guess = {"bookworm": "3.11"}.get(suite)

            def _prep_wheels():
                try:
                    t = time.monotonic()
                    _, uv = _ensure_uv(cache_dir)
                    wh_box["uv"] = uv
                    if pyver_guess:
                        wh_box["wh"] = _ensure_wheelhouse(cache_dir, salt, pyver_guess)
                    timings["uv+wheelhouse"] = time.monotonic() - t
                except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                    errors.append(exc)

            th = threading.Thread(target=_prep_wheels, name="wheelhouse", daemon=True)
            th.start()
            t = time.monotonic()
            log.info("debootstrap %s from %s into %s", suite, mirror, root)
            try:
                _debootstrap(root, suite, mirror, ROOTFS_PACKAGES, cache_dir / "debs" / suite)
            finally:
                th.join()  # never leave the lock while the wheel build still runs
            timings["debootstrap"] = time.monotonic() - t
            if errors:
                raise errors[0]
            pyver = _rootfs_python_version(root)
            wh = wh_box.get("wh")
            if wh is None or pyver != pyver_guess:
                wh = _ensure_wheelhouse(cache_dir, salt, pyver)
            t = time.monotonic()
            _install_salt(root, wh_box["uv"], wh, salt)
            timings["salt-install"] = time.monotonic() - t
            _configure_rootfs(root, suite, mirror)
            size = _run(["du", "-sxm", str(root)], timeout=300).stdout.split()[0]
            meta = {
                "suite": suite,
                "mirror": mirror,
                "packages": list(ROOTFS_PACKAGES),
                "harness": HARNESS_VERSION,
                "salt": salt,
                "python": pyver,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "timings": {k: round(v, 1) for k, v in timings.items()},
                "size_mb": int(size),
            }
            (root / _ROOTFS_META).write_text(json.dumps(meta, indent=2) + "\n")
            os.rename(root, final)  # atomic: a partial build never has this name
        finally:
            _remove_tree(tmp)
        log.info(
            "built rootfs %s in %.1fs (%s, %s MB)",
            final,
            time.monotonic() - t0,
            ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()),
            size,
        )
        _gc_rootfs(cache_dir, keep=final)
    return final


def _gc_rootfs(cache_dir: Path, keep: Path) -> None:
    """Remove rootfs builds superseded by keep (same suite and salt version but
    an older recipe) that no running overlay still uses.  Builds for other
    salt versions stay, so switching LITELLM_SALT_VERSION back and forth does
    not rebuild every time."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        new = json.loads((keep / _ROOTFS_META).read_text())
    except (OSError, ValueError):
        return
    for old in cache_dir.glob("rootfs-*"):
        if old == keep or not old.is_dir():
            continue
        try:
            meta = json.loads((old / _ROOTFS_META).read_text())
        except (OSError, ValueError):
            meta = {}
        if (meta.get("suite"), meta.get("salt")) != (new["suite"], new["salt"]):
            continue
        if str(old) in mountinfo:  # lowerdir of a live instance
            continue
        log.info("removing superseded rootfs %s", old)
        with contextlib.suppress(HarnessError):
            _remove_tree(old)


# --------------------------------------------------------------------------
# private networks (network="veth")
# --------------------------------------------------------------------------

#: every veth host gets a /30 out of this /16: .1 on the machine, .2 in the host
NET_PREFIX = "10.231"
_NETNS_PREFIX = "lsh"
_NET_LOCK = "net.lock"


def net_addresses(index: int) -> tuple[str, str]:
    """(machine side, host side) addresses of the /30 numbered index."""
    if not 0 <= index < 16384:
        raise ValueError(f"network index {index} out of range")
    base = (index % 64) * 4
    third = index // 64
    return f"{NET_PREFIX}.{third}.{base + 1}", f"{NET_PREFIX}.{third}.{base + 2}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run([_tool("ip"), *args], check=check, timeout=30)


def _nft(script: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run([_tool("nft"), "-f", "-"], input=script, check=check, timeout=30)


def _setup_net(workroot: Path, nat: bool) -> dict[str, Any]:
    """Make a network namespace with a veth pair to the machine (and NAT to the
    machine's uplinks when nat), numbered by the first free index."""
    with _flock(workroot / _NET_LOCK):
        taken = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        index = next(i for i in range(16384) if f"{_NETNS_PREFIX}{i}" not in taken)
        ns = f"{_NETNS_PREFIX}{index}"
        outer, inner = net_addresses(index)
        net = {"netns": ns, "veth": f"{ns}h", "address": inner, "gateway": outer,
               "nft_table": f"{ns}_nat" if nat else None}
        _ip("netns", "add", ns)
    try:
        _ip("link", "add", net["veth"], "type", "veth", "peer", "name", f"{ns}c")
        _ip("link", "set", f"{ns}c", "netns", ns)
        _ip("-n", ns, "link", "set", f"{ns}c", "name", "eth0")
        _ip("addr", "add", f"{outer}/30", "dev", net["veth"])
        _ip("link", "set", net["veth"], "up")
        _ip("-n", ns, "addr", "add", f"{inner}/30", "dev", "eth0")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "route", "add", "default", "via", outer)
        if nat:
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
            _nft(
                f"table ip {net['nft_table']} {{\n"
                "  chain post {\n"
                "    type nat hook postrouting priority srcnat;\n"
                f"    ip saddr {inner} oifname != \"{net['veth']}\" masquerade\n"
                "  }\n"
                "}\n"
            )
    except BaseException:
        _teardown_net(net)
        raise
    return net


def _teardown_net(net: Mapping[str, Any] | None) -> None:
    """Remove the namespace (which takes the veth pair with it) and the NAT table."""
    if not net:
        return
    if net.get("nft_table"):
        _run([_tool("nft"), "delete", "table", "ip", net["nft_table"]], check=False, timeout=30)
    if os.path.exists(f"/run/netns/{net['netns']}"):
        _ip("netns", "delete", net["netns"], check=False)
    if os.path.exists(f"/sys/class/net/{net['veth']}"):
        _ip("link", "delete", net["veth"], check=False)


# --------------------------------------------------------------------------
# booted hosts
# --------------------------------------------------------------------------


def _read_pidfile(instance_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((instance_dir / _PIDFILE).read_text())
    except (OSError, ValueError):
        return None


def _kill(pid: int | None, start: int | None, sig: int, group: bool = False) -> bool:
    if not _alive(pid, start):
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


def _wait_gone(
    pids: Sequence[tuple[int | None, int | None]], timeout: float, popen: subprocess.Popen | None = None
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None:
            popen.poll()  # reap our child so it stops being a zombie
        if not any(_alive(p, s) for p, s in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _teardown(
    instance_dir: Path,
    rec: Mapping[str, Any] | None,
    *,
    grace: float = 20.0,
    popen: subprocess.Popen | None = None,
    how: str = "sigterm",
) -> dict[str, float]:
    """Stop the container described by rec, unmount and remove instance_dir."""
    timings: dict[str, float] = {}
    rec = rec or {}
    nspawn = (rec.get("nspawn_pid"), rec.get("nspawn_start"))
    pid1 = (rec.get("pid1"), rec.get("pid1_start"))
    t0 = time.monotonic()
    if _alive(*nspawn) or _alive(*pid1):
        asked = False
        if how == "poweroff" and _alive(*pid1):
            res = _run(
                [
                    _tool("nsenter"),
                    "-t",
                    str(pid1[0]),
                    "-a",
                    "--",
                    "/usr/bin/env",
                    "-i",
                    f"PATH={CONTAINER_PATH}",
                    "systemctl",
                    "poweroff",
                    "--no-block",
                ],
                check=False,
                timeout=15,
            )
            asked = res.returncode == 0
        if not asked:
            # nspawn turns SIGTERM into the container's "power off" signal
            asked = _kill(*nspawn, signal.SIGTERM)
        if not asked:
            # no nspawn (killed?) but an orphaned PID 1: SIGRTMIN+4 = poweroff
            _kill(*pid1, signal.SIGRTMIN + 4)
        if not _wait_gone([nspawn, pid1], grace, popen):
            log.warning("container %s did not stop within %.0fs; killing it", rec.get("name"), grace)
            # killing a pid namespace's init kills everything in it
            _kill(*pid1, signal.SIGKILL)
            _kill(*nspawn, signal.SIGKILL, group=True)
            if not _wait_gone([nspawn, pid1], 10, popen):
                raise HarnessError(f"container {rec.get('name')} survived SIGKILL: {rec}")
        timings["shutdown"] = time.monotonic() - t0
    # processes started by run() (nsenter) that outlived the container's init
    if popen is not None:
        popen.poll()
    t1 = time.monotonic()
    _teardown_net(rec.get("net"))
    _remove_tree(instance_dir)
    timings["cleanup"] = time.monotonic() - t1
    return timings


def reap_stale(workroot: Path = DEFAULT_WORKROOT, *, force: bool = False) -> list[Path]:
    """Stop and remove instances under workroot whose owning process is gone.

    Every instance dir holds a pidfile with the owner (the Python process that
    started it), nspawn and container-PID-1 pids plus their start times, so a
    recycled pid is never signalled.  With force=True instances whose owner is
    still alive are reaped as well.
    """
    workroot = Path(workroot)
    reaped: list[Path] = []
    if not workroot.exists():
        return reaped
    candidates = set()
    for pattern in (_PIDFILE, f"*/{_PIDFILE}", f"*/*/{_PIDFILE}"):
        candidates.update(p.parent for p in workroot.glob(pattern))
    for inst in sorted(candidates):
        rec = _read_pidfile(inst) or {}
        if not force and _alive(rec.get("owner_pid"), rec.get("owner_start")):
            continue
        log.warning("reaping stale host %s (%s)", inst, rec.get("name"))
        _teardown(inst, rec, grace=10)
        reaped.append(inst)
        if inst.name == "instance":  # CLI layout: WORKDIR/host.json describes it
            (inst.parent / "host.json").unlink(missing_ok=True)
        owner_wd = rec.get("owned_workdir")
        if owner_wd and Path(owner_wd).exists() and Path(owner_wd) == inst.parent:
            _remove_tree(Path(owner_wd))
    # overlay mounts whose pidfile got lost (crash between mount and write)
    for mp in _mounts_under(workroot):
        inst = Path(mp).parent
        if not (inst / _PIDFILE).exists():
            log.warning("unmounting orphaned mount %s", mp)
            _unmount_all(Path(mp))
    return reaped


_MACHINE_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,62})$")


class SystemdHost:
    """A booted systemd-nspawn container sharing the host's network.

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
    STOP_GRACE = 20.0

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
        if not _MACHINE_NAME.match(name):
            raise ValueError(f"invalid machine name {name!r} (letters, digits, '-', max 63)")
        self.rootfs = Path(rootfs).absolute()
        self.name = name
        self._ssh_port = ssh_port
        self.binds_ro = dict(binds_ro or {})
        self._given_workdir = Path(workdir).absolute() if workdir else None
        self.workdir: Path | None = self._given_workdir
        self.mode = mode or os.environ.get("LITELLM_HARNESS_ROOTFS_MODE", "auto")
        if self.mode not in ("auto", "overlay", "copy"):
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
            self._finalizer = weakref.finalize(self, _finalize, self._rec_ref(), self._proc_box)
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
        log.info(
            "host %s up: pid1=%s ssh=127.0.0.1:%s (%s)",
            self.name,
            self._pid1,
            self._ssh_port,
            ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()),
        )
        return self

    def _rec_ref(self) -> dict[str, Any]:
        return self._rec

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
                rec = _read_pidfile(self.instance_dir) or {}
                if _alive(rec.get("owner_pid"), rec.get("owner_start")):
                    raise HarnessError(f"{self.instance_dir} is in use by pid {rec.get('owner_pid')}")
                _teardown(self.instance_dir, rec, grace=10)
        if self.network == "veth":
            self._ssh_port = self._ssh_port or 22
        elif self._ssh_port is None:
            self._ssh_port = _free_port()
        elif _port_in_use(self._ssh_port):
            raise HarnessError(f"127.0.0.1:{self._ssh_port} is already in use on this machine")
        self.instance_dir.mkdir()
        me = os.getpid()
        self._rec.update(
            {
                "name": self.name,
                "owner_pid": me,
                "owner_start": _proc_start_time(me),
                "instance_dir": str(self.instance_dir),
                "ssh_port": self._ssh_port,
            }
        )
        self._write_pidfile()
        if self.network == "veth":
            self._rec["net"] = _setup_net(DEFAULT_WORKROOT, self.nat)  # one lock for every run
            self._write_pidfile()
            self.host = self._rec["net"]["address"]

    def _write_pidfile(self) -> None:
        _write_atomic(self.instance_dir / _PIDFILE, json.dumps(self._rec, indent=2) + "\n")

    def _prepare_rootfs(self) -> None:
        t0 = time.monotonic()
        mode = self.mode
        root = self.rootfs_dir
        root.mkdir()
        if mode in ("auto", "overlay"):
            upper, work = self.instance_dir / "upper", self.instance_dir / "work"
            upper.mkdir()
            work.mkdir()
            res = _run(
                [
                    _tool("mount"),
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    f"lowerdir={self.rootfs},upperdir={upper},workdir={work}",
                    str(root),
                ],
                check=False,
                timeout=60,
            )
            if res.returncode == 0:
                self.used_mode = "overlay"
            elif mode == "overlay":
                raise HarnessError(f"overlay mount failed: {res.stderr.strip()}")
            else:
                log.info("overlay mount failed (%s); copying the rootfs", res.stderr.strip())
                upper.rmdir()
                work.rmdir()
        if self.used_mode is None:
            root.rmdir()
            _run(["cp", "-a", "--reflink=auto", str(self.rootfs), str(root)], timeout=900)
            self.used_mode = "copy"
        self._rec["mode"] = self.used_mode
        self._write_pidfile()
        self.timings["rootfs_" + self.used_mode] = time.monotonic() - t0

        # client key
        t1 = time.monotonic()
        for p in (self.client_key, self.client_key.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        _run(
            [
                _tool("ssh-keygen"),
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"litellm-harness@{self.name}",
                "-f",
                str(self.client_key),
            ],
            timeout=60,
        )
        pub = self.client_key.with_suffix(".pub").read_text()
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(ssh_dir, 0o700)
        ak = ssh_dir / "authorized_keys"
        ak.write_text(pub)
        os.chmod(ak, 0o600)
        # host key, sshd drop-in
        hk = root / "etc/ssh/ssh_host_ed25519_key"
        for p in (hk, hk.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        _run(
            [_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.name}", "-f", str(hk)], timeout=60
        )
        dropin = root / "etc/ssh/sshd_config.d/00-litellm-harness.conf"
        dropin.parent.mkdir(parents=True, exist_ok=True)
        dropin.write_text(
            "# written by tests/harness/systemd_host.py\n"
            f"Port {self._ssh_port}\n"
            f"ListenAddress {self.host}\n"
            "AddressFamily inet\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UseDNS no\n"
        )
        (root / "etc/hostname").write_text(self.name + "\n")
        hosts = root / "etc/hosts"
        text = hosts.read_text() if hosts.exists() else "127.0.0.1\tlocalhost\n"
        text = "".join(l for l in text.splitlines(True) if not l.startswith("127.0.1.1"))
        hosts.write_text(text + f"127.0.1.1\t{self.name}\n")
        self.timings["configure"] = time.monotonic() - t1

    def _launch(self) -> None:
        ca_bind = f"{_nspawn_escape(os.path.realpath(self.ca_bundle))}:{_nspawn_escape(CONTAINER_CA_BUNDLE)}"
        argv = [
            _tool("systemd-nspawn"),
            "-b",
            "--register=no",
            "--keep-unit",
            "-D",
            str(self.rootfs_dir),
            f"--machine={self.name}",
            "--link-journal=no",
            "--console=read-only",
            "--kill-signal=SIGRTMIN+4",
            f"--bind-ro={ca_bind}",
        ]
        if self.network == "veth":
            argv += [f"--network-namespace-path=/run/netns/{self._rec['net']['netns']}", "--resolv-conf=copy-host"]
        for host_path, cont_path in self.binds_ro.items():
            if not os.path.exists(host_path):
                raise HarnessError(f"bind source {host_path} does not exist")
            argv.append(f"--bind-ro={_nspawn_escape(os.path.abspath(host_path))}:{_nspawn_escape(cont_path)}")
        self._rec["argv"] = argv
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_SOCKET", "LISTEN_"))}
        env["SYSTEMD_LOG_COLOR"] = "0"
        env["TERM"] = "dumb"  # nspawn passes TERM on; "dumb" keeps colour codes out of the log
        t0 = time.monotonic()
        with open(self.log_path, "ab", buffering=0) as logf:  # nspawn keeps its own copy of the fd
            logf.write(f"=== {time.strftime('%F %T')} {shlex.join(argv)}\n".encode())
            self._proc = subprocess.Popen(
                _pdeathsig(argv) if self.die_with_parent else argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                close_fds=True,
            )
        self._proc_box[0] = self._proc
        self._rec.update(nspawn_pid=self._proc.pid, nspawn_start=_proc_start_time(self._proc.pid))
        self._write_pidfile()
        # container PID 1: the nspawn child whose pid in its own namespace is 1
        deadline = time.monotonic() + 15
        while True:
            if self._proc.poll() is not None:
                raise HarnessError(f"systemd-nspawn exited with {self._proc.returncode}:\n" + _file_tail(self.log_path))
            for child in _children(self._proc.pid):
                if _nspid_tail(child) == 1:
                    self._pid1 = child
                    break
            if self._pid1 is not None:
                break
            if time.monotonic() > deadline:
                raise HarnessError("container PID 1 did not appear:\n" + _file_tail(self.log_path))
            time.sleep(0.01)
        self._rec.update(pid1=self._pid1, pid1_start=_proc_start_time(self._pid1))
        self._write_pidfile()
        self.timings["pid1_found"] = time.monotonic() - t0

    @property
    def _proc_box(self) -> list:
        # a mutable box shared with the finalizer (which must not reference self)
        box = self.__dict__.get("_box")
        if box is None:
            box = self.__dict__["_box"] = [None]
        return box

    def _boot_failure(self, why: str) -> HarnessError:
        extra = ""
        if self._proc is not None and self._proc.poll() is None and self._pid1:
            res = self.run("systemctl --failed --no-pager; journalctl -b --no-pager -n 40", check=False, timeout=20)
            extra = f"\n--- inside ---\n{res.stdout}{res.stderr}"
        return HarnessError(
            f"host {self.name}: {why}\n--- {self.log_path} (tail) ---\n{_file_tail(self.log_path)}{extra}"
        )

    def _wait_booted(self) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.BOOT_TIMEOUT
        # wait for PID 1 to have exec'd systemd (before that it is nspawn's inner child)
        while True:
            if self._proc.poll() is not None:
                raise self._boot_failure(f"systemd-nspawn exited ({self._proc.returncode}) during boot")
            try:
                if Path(f"/proc/{self._pid1}/comm").read_text().strip() == "systemd":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise self._boot_failure("PID 1 never became systemd")
            time.sleep(0.01)
        state = ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._boot_failure(f"not booted within {self.BOOT_TIMEOUT:.0f}s (state {state!r})")
            if self._proc.poll() is not None:
                raise self._boot_failure(f"systemd-nspawn exited ({self._proc.returncode}) during boot")
            try:
                res = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=max(1.0, left))
            except HarnessError:
                continue
            state = res.stdout.strip()
            if state in ("running", "degraded"):
                break
            if state in ("maintenance", "stopping"):
                raise self._boot_failure(f"system is {state}")
            # "offline" + "Failed to connect to bus": PID 1 is systemd but its
            # private socket is not up yet; "initializing"/"starting": --wait gave up
            time.sleep(0.05)
        self.boot_state = state
        self.timings["boot"] = time.monotonic() - t0

    def _wait_ssh(self, timeout: float = 30.0) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self._ssh_port), timeout=2) as s:
                    s.settimeout(5)
                    banner = s.recv(256)
                if banner.startswith(b"SSH-"):
                    self.timings["ssh_ready"] = time.monotonic() - t0
                    return
                last = f"unexpected banner {banner!r}"
            except OSError as exc:
                last = exc
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        raise self._boot_failure(
            f"sshd did not accept connections on {self.host}:{self._ssh_port} within {timeout:.0f}s ({last})"
        )

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
                t = _teardown(self.instance_dir, self._rec, grace=self.STOP_GRACE, popen=self._proc, how=self.stop_how)
                self.timings.update({f"stop_{k}": v for k, v in t.items()})
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=5)
            owned = self._rec.get("owned_workdir")
            if owned:
                _remove_tree(Path(owned))
        finally:
            self._state = "stopped"
            self._pid1 = None
            if self._finalizer is not None:
                self._finalizer.detach()

    # -- network (veth only) ---------------------------------------------------
    def _netns(self) -> str:
        net = self._rec.get("net")
        if not net:
            raise HarnessError(f"host {self.name} shares the machine's network; start it with network='veth'")
        return net["netns"]

    def cut_network(self) -> None:
        """Take the veth link down: the host keeps only its loopback."""
        _ip("-n", self._netns(), "link", "set", "eth0", "down")

    def restore_network(self) -> None:
        ns = self._netns()
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "route", "replace", "default", "via", self.gateway)

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
        envv = {
            "PATH": CONTAINER_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "USER": "root",
            "LOGNAME": "root",
        }
        envv.update(env or {})
        # --root/--wd without a value: PID 1's root and cwd.  (--wd=DIR would be
        # resolved on the host side, leaving the command with a dangling cwd.)
        full = [
            _tool("nsenter"),
            "-t",
            str(self.pid1),
            "-a",
            "--root",
            "--wd",
            "--",
            "/usr/bin/env",
            "-i",
            f"--chdir={cwd}",
            *(f"{k}={v}" for k, v in envv.items()),
            *argv,
        ]
        try:
            res = subprocess.run(
                full,
                capture_output=True,
                text=True,
                input=input,
                timeout=timeout,
                check=False,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(
                f"[{self.name}] timed out after {timeout}s: {_show(cmd)}\n"
                f"--- stdout ---\n{_tail(exc.stdout)}\n"
                f"--- stderr ---\n{_tail(exc.stderr)}"
            ) from None
        res.args = cmd
        if check and res.returncode != 0:
            raise CommandError(
                f"[{self.name}] command failed (exit {res.returncode}): {_show(cmd)}\n"
                f"--- stdout ---\n{_tail(res.stdout)}\n"
                f"--- stderr ---\n{_tail(res.stderr)}",
                res,
            )
        return res

    def ssh_argv(self, cmd: Sequence[str] | str | None = None, *extra_opts: str) -> list[str]:
        """argv for ssh into the host as root with the generated key."""
        argv = [
            _tool("ssh"),
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            *extra_opts,
            "-p",
            str(self.ssh_port),
            f"root@{self.host}",
        ]
        if cmd is not None:
            argv.append(cmd if isinstance(cmd, str) else shlex.join(cmd))
        return argv

    def ssh(
        self, cmd: Sequence[str] | str, check: bool = True, input: str | None = None, timeout: float | None = 300
    ) -> subprocess.CompletedProcess:
        argv = self.ssh_argv(cmd)
        try:
            res = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                input=input,
                timeout=timeout,
                check=False,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(
                f"[{self.name}] ssh timed out after {timeout}s: {_show(cmd)}\n{_tail(exc.stderr)}"
            ) from None
        if check and res.returncode != 0:
            raise CommandError(
                f"[{self.name}] ssh command failed (exit {res.returncode}): {_show(cmd)}\n"
                f"--- stdout ---\n{_tail(res.stdout)}\n"
                f"--- stderr ---\n{_tail(res.stderr)}",
                res,
            )
        return res

    def __repr__(self) -> str:
        return f"<SystemdHost {self.name} {self._state} pid1={self._pid1} ssh={self.host}:{self._ssh_port}>"


def _show(cmd: Sequence[str] | str) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def _pdeathsig(argv: Sequence[str]) -> list[str]:
    """Prefix argv so the command gets SIGTERM when the thread that started it
    dies (setpriv --pdeathsig; no preexec_fn, which is unsafe with threads).

    For systemd-nspawn that means a crashed test run powers its container off;
    for debootstrap/pip that a killed build does not go on in the background."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return list(argv)
    return [setpriv, "--pdeathsig", "TERM", "--", *map(str, argv)]


def _finalize(rec: dict[str, Any], box: list) -> None:
    """weakref/atexit finalizer: must not reference the SystemdHost itself."""
    inst = rec.get("instance_dir")
    if not inst:
        return
    try:
        _teardown(Path(inst), rec, grace=SystemdHost.STOP_GRACE, popen=box[0])
        if rec.get("owned_workdir"):
            _remove_tree(Path(rec["owned_workdir"]))
    except Exception as exc:  # noqa: BLE001 - finalizers must not raise
        print(f"litellm harness: cleanup of {inst} failed: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _cmd_build(args) -> int:
    print(build_rootfs(Path(args.cache_dir), args.suite))
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

    def _on_signal(signum, frame):
        stop_evt.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    h = SystemdHost(rootfs, args.name, ssh_port=args.ssh_port, binds_ro=binds, workdir=workdir, network=args.network)
    try:
        h.start()
        info = h.info()
        info["supervisor_pid"] = os.getpid()
        info["supervisor_start"] = _proc_start_time(os.getpid())
        info["timings"] = {k: round(v, 3) for k, v in h.timings.items()}
        _write_atomic(hostjson, json.dumps(info, indent=2) + "\n")
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
    if _alive(*sup):
        os.kill(sup[0], signal.SIGTERM)
        if not _wait_gone([sup], args.timeout):
            log.warning("supervisor %s did not exit within %ss", sup[0], args.timeout)
    inst = workdir / "instance"
    if inst.exists():
        _teardown(inst, _read_pidfile(inst), grace=SystemdHost.STOP_GRACE)
    hostjson.unlink(missing_ok=True)
    print(json.dumps({"down": str(workdir)}))
    return 0


def _cmd_reap(args) -> int:
    for p in reap_stale(Path(args.workroot), force=args.force):
        print(p)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.harness.systemd_host", description="Disposable systemd-nspawn hosts for formula tests"
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the cached rootfs and print its path")
    b.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    b.add_argument("--suite", default=DEFAULT_SUITE)
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
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())

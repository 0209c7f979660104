"""The rootfs of the test hosts: a minbase Debian (systemd, sshd, python3, Salt
in ``/opt/salt``) debootstrapped once per suite and recipe and cached under
``cache_dir`` in a directory named by the suite and a hash of everything that
goes into it (``rootfs-<suite>-<key>``), so suites are cached side by side.

Hosts that only salt-ssh deploys to (the demo) need no Salt in them: salt-ssh
ships its own thin.  :func:`salt_ssh_rootfs` gives them the test rootfs when the
cache has it, else a flavour without Salt (``rootfs-<suite>-nosalt-<key>``:
no wheelhouse, no Salt install, about 80 s less on a fresh machine)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import wheelhouse
from .common import CONTAINER_PATH, HarnessError, check_prerequisites, clean_env, flock, log, nspawn_exec, pdeathsig
from .common import run_cmd, tool
from .mounts import remove_tree

# Bump when the rootfs recipe changes in a way the hash inputs do not cover.
HARNESS_VERSION = "1"

#: Debian 13 (stable); "bookworm" (Debian 12, oldstable) is built on demand
DEFAULT_SUITE = "trixie"
#: python3 X.Y of each suite: its Salt wheels can be built while debootstrap runs
SUITE_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
DEFAULT_SALT_VERSION = "3008.4"
DEFAULT_CACHE_DIR = Path(os.environ.get("LITELLM_HARNESS_CACHE", "/var/cache/litellm-salt"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
ROOTFS_META = "etc/litellm-harness-rootfs.json"

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

# -- which mirror ----------------------------------------------------------------


def _parse_sources_stanzas(text: str) -> list[tuple[str, list[str]]]:
    """(uri, suites) of the enabled 'deb' stanzas of a deb822 .sources file."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        out += [(uri, fields.get("suites", "").split()) for uri in fields.get("uris", "").split()]
    return out


def _parse_list_lines(text: str) -> list[tuple[str, list[str]]]:
    """(uri, [suite]) of the 'deb' lines of a one-line-style .list file."""
    out = []
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
    return out


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
        out += _parse_sources_stanzas(text) if f.suffix == ".sources" else _parse_list_lines(text)
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


# -- the cache ---------------------------------------------------------------------


def salt_version() -> str:
    return os.environ.get("LITELLM_SALT_VERSION", DEFAULT_SALT_VERSION)


def rootfs_key(
    suite: str = DEFAULT_SUITE, packages: Iterable[str] = ROOTFS_PACKAGES, salt: str | None = None,
    *, with_salt: bool = True,
) -> str:
    recipe = {
        "suite": suite,
        "packages": sorted(packages),
        "harness": HARNESS_VERSION,
        "salt": salt or salt_version(),
        "masked": sorted(MASKED_UNITS),
    }
    if not with_salt:
        # only a key of its own: the test rootfs's recipe (and so its cached build) stays as it is
        recipe.update(salt=None, flavour="nosalt")
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def rootfs_path(cache_dir: Path, suite: str, salt: str | None = None, *, with_salt: bool = True) -> Path:
    key = rootfs_key(suite, ROOTFS_PACKAGES, salt, with_salt=with_salt)
    return Path(cache_dir).absolute() / (f"rootfs-{suite}-{key}" if with_salt else f"rootfs-{suite}-nosalt-{key}")


def rootfs_meta(rootfs: Path) -> dict[str, Any]:
    """What build_rootfs recorded: suite, mirror, packages, salt, python, timings..."""
    return json.loads((Path(rootfs) / ROOTFS_META).read_text())


def build_rootfs(
    cache_dir: Path = DEFAULT_CACHE_DIR, suite: str = DEFAULT_SUITE, *, salt: str | None = None,
    with_salt: bool = True,
) -> Path:
    """Return the path of a complete cached rootfs of suite, building it if needed
    (``with_salt=False``: the flavour without Salt, for hosts only salt-ssh deploys to)."""
    problems = check_prerequisites(need_build=True)
    if problems:
        raise HarnessError("cannot build rootfs: " + "; ".join(problems))
    cache_dir = Path(cache_dir).absolute()
    salt = salt or salt_version()
    final = rootfs_path(cache_dir, suite, salt, with_salt=with_salt)
    if (final / ROOTFS_META).is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with flock(cache_dir / ".build.lock"):
        if (final / ROOTFS_META).is_file():
            return final
        # leftovers of interrupted builds (we hold the lock, so nobody uses them)
        for stale in [*cache_dir.glob(".tmp-*"), *(cache_dir / "wheelhouse").glob(".tmp-*")]:
            log.warning("removing leftover of an interrupted build: %s", stale)
            remove_tree(stale)
        _build(cache_dir, suite, salt if with_salt else None, final)
        _gc_rootfs(cache_dir, keep=final)
    return final


def salt_ssh_rootfs(cache_dir: Path = DEFAULT_CACHE_DIR, suite: str = DEFAULT_SUITE) -> Path:
    """A rootfs for a host that only salt-ssh deploys to: the test rootfs when the
    cache has it already (its /opt/salt is simply not used: no second build, no
    second copy on disk), else the flavour without Salt, built if needed."""
    tested = rootfs_path(cache_dir, suite)
    if (tested / ROOTFS_META).is_file():
        return tested
    return build_rootfs(cache_dir, suite, with_salt=False)


def _build(cache_dir: Path, suite: str, salt: str | None, final: Path) -> None:
    """Build the rootfs into final; salt None: without Salt (nor the tools venv and wheels for it)."""
    mirror = debian_mirror(suite)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=cache_dir))
    root = tmp / "rootfs"
    try:
        if salt is None:
            t = time.monotonic()
            _debootstrap(root, suite, mirror, ROOTFS_PACKAGES, cache_dir / "debs" / suite)
            timings["debootstrap"] = time.monotonic() - t
            pyver = _rootfs_python_version(root)
        else:
            pyver = _debootstrap_and_salt(cache_dir, root, suite, salt, mirror, timings)
        _configure_rootfs(root, suite, mirror)
        size = run_cmd(["du", "-sxm", str(root)], timeout=300).stdout.split()[0]
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
        (root / ROOTFS_META).write_text(json.dumps(meta, indent=2) + "\n")
        os.rename(root, final)  # atomic: a partial build never has this name
    finally:
        remove_tree(tmp)
    took = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    log.info("built rootfs %s in %.1fs (%s, %s MB)", final, time.monotonic() - t0, took, size)


def _debootstrap_and_salt(
    cache_dir: Path, root: Path, suite: str, salt: str, mirror: str, timings: dict[str, float]
) -> str:
    """debootstrap, then Salt into /opt/salt; returns the rootfs's python X.Y."""
    uv, wh = _debootstrap_and_wheels(cache_dir, root, suite, salt, mirror, timings)
    pyver = _rootfs_python_version(root)
    if wh is None or pyver != SUITE_PYTHON.get(suite):
        t = time.monotonic()
        wh = wheelhouse.ensure_wheelhouse(cache_dir, salt, pyver, root)
        timings["wheelhouse"] = time.monotonic() - t
    t = time.monotonic()
    _install_salt(root, uv, wh, salt)
    timings["salt-install"] = time.monotonic() - t
    return pyver


def _debootstrap_and_wheels(
    cache_dir: Path, root: Path, suite: str, salt: str, mirror: str, timings: dict[str, float]
) -> tuple[Path, Path | None]:
    """debootstrap (I/O bound) and, in parallel, uv and the wheelhouse (CPU
    bound) when the host can build it for the suite's python.  Returns (uv,
    the wheelhouse or None)."""
    errors: list[BaseException] = []
    box: dict[str, Any] = {"wh": None}
    pyver_guess = SUITE_PYTHON.get(suite)

    def _prep_wheels():
        try:
            t = time.monotonic()
            _, box["uv"] = wheelhouse.ensure_uv(cache_dir)
            if pyver_guess and wheelhouse.host_can_build(cache_dir, pyver_guess):
                box["wh"] = wheelhouse.ensure_wheelhouse(cache_dir, salt, pyver_guess)
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
    return box["uv"], box["wh"]


def _rootfs_python_version(root: Path) -> str:
    target = os.readlink(root / "usr/bin/python3")
    m = re.fullmatch(r"python(\d+\.\d+)", os.path.basename(target))
    if not m:
        raise HarnessError(f"cannot tell python version from {root}/usr/bin/python3 -> {target}")
    return m.group(1)


_UNSAFE_IO = "etc/dpkg/dpkg.cfg.d/00-litellm-harness-unsafe-io"


def _debootstrap(root: Path, suite: str, mirror: str, packages: Sequence[str], deb_cache: Path) -> None:
    # dpkg without fsync while bootstrapping (~10 s faster); removed afterwards
    (root / _UNSAFE_IO).parent.mkdir(parents=True, exist_ok=True)
    (root / _UNSAFE_IO).write_text("force-unsafe-io\n")
    deb_cache.mkdir(parents=True, exist_ok=True)
    # Own mount namespace: /proc etc. that debootstrap mounts in the target die
    # with it, even if it is interrupted.
    argv = [tool("unshare"), "--mount", "--propagation", "private", "--", tool("debootstrap"), "--variant=minbase",
            f"--cache-dir={deb_cache}", f"--include={','.join(packages)}", suite, str(root), mirror]
    run_cmd(pdeathsig(argv), env=clean_env(), timeout=1800)
    (root / _UNSAFE_IO).unlink()


def _configure_rootfs(root: Path, suite: str, mirror: str) -> None:
    _write_sources(root, suite, mirror)
    # every instance gets its own machine-id (empty file => transient id at boot)
    (root / "etc/machine-id").write_text("")
    dbus_mid = root / "var/lib/dbus/machine-id"
    if dbus_mid.exists() and not dbus_mid.is_symlink():
        dbus_mid.unlink()
        dbus_mid.symlink_to("/etc/machine-id")
    # sshd host keys are generated per instance
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _mask_units(root)
    # debris of the build (nspawn mounts a tmpfs on /run at boot anyway)
    for p in (root / "run").iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.name != "shm":
            p.unlink()
    _shrink(root)


def _write_sources(root: Path, suite: str, mirror: str) -> None:
    sec = _security_mirror(suite)
    (root / "etc/apt/sources.list").write_text("")
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\n"
        f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {sec}\nSuites: {suite}-security\nComponents: main\n"
        f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


def _mask_units(root: Path) -> None:
    sysd = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = sysd / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    for unit in MASKED_UNITS:
        for wants in sysd.glob(f"*.wants/{unit}"):
            wants.unlink()


def _shrink(root: Path) -> None:
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


def _install_salt(root: Path, uv: Path, wheelhouse_dir: Path, salt: str) -> None:
    script = (
        "set -e\n"
        "python3 -m venv /opt/salt\n"
        "/run/harness-uv pip install --python /opt/salt/bin/python --no-index "
        f"--find-links /run/wheelhouse --compile-bytecode --link-mode=copy 'salt=={salt}'\n"
        "ln -sf /opt/salt/bin/salt-call /usr/local/bin/salt-call\n"
        "/opt/salt/bin/salt-call --version\n"
    )
    res = nspawn_exec(
        root,
        ["/bin/sh", "-c", script],
        binds_ro={str(uv.resolve()): "/run/harness-uv", str(wheelhouse_dir): "/run/wheelhouse"},
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


def _gc_rootfs(cache_dir: Path, keep: Path) -> None:
    """Remove rootfs builds superseded by keep (same suite and salt version but
    an older recipe; or, keep having Salt, the suite's flavour without, which
    salt_ssh_rootfs no longer picks) that no running overlay still uses.
    Builds for other suites and salt versions stay, so switching
    LITELLM_SALT_VERSION or the suite back and forth does not rebuild every time."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        new = rootfs_meta(keep)
    except (OSError, ValueError):
        return
    for old in cache_dir.glob("rootfs-*"):
        if old == keep or not old.is_dir():
            continue
        try:
            meta = rootfs_meta(old)
        except (OSError, ValueError):
            meta = {}
        if meta.get("suite") != new["suite"] or meta.get("salt") not in (new["salt"], None):
            continue
        if str(old) in mountinfo:  # lowerdir of a live instance
            continue
        log.info("removing superseded rootfs %s", old)
        with contextlib.suppress(HarnessError):
            remove_tree(old)

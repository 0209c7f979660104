"""The Salt wheelhouse of a rootfs: wheels of salt==<version> and its
dependencies for the rootfs's CPython X.Y, built once under the cache dir, and
the small tools venv with uv that installs them.

Salt and some of its dependencies (timelib) come as sources only, so the
wheels are built by a CPython of the rootfs's X.Y: the host's (the tools venv's
python, or ``LITELLM_HARNESS_PYTHON``) when it matches, else the rootfs's own
python3 in a throw-away overlay of the fresh rootfs with a C compiler and
python3-dev installed from the Debian mirror (nothing of that stays).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .common import CONTAINER_PATH, HOST_CA_BUNDLE, HarnessError, clean_env, log, nspawn_exec, pdeathsig, run_cmd
from .mounts import remove_tree, writable_tree

#: packages the build overlay gets to compile sdists for the rootfs's python3
BUILD_PACKAGES = ("gcc", "libc6-dev", "python3-dev")


def ensure_uv(cache_dir: Path) -> tuple[Path, Path]:
    """A small venv under cache_dir with uv in it; returns (python, uv)."""
    venv = cache_dir / "tools-venv"
    py, uv = venv / "bin" / "python", venv / "bin" / "uv"
    if uv.exists() and run_cmd([uv, "--version"], check=False, timeout=60).returncode == 0:
        return py, uv
    t0 = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    run_cmd([host_python(), "-m", "venv", venv], env=clean_env(), timeout=300)
    run_cmd([py, "-m", "pip", "install", "--quiet", "uv"], env=clean_env(), timeout=600)
    log.info("installed uv into %s in %.1fs", venv, time.monotonic() - t0)
    return py, uv


def host_python() -> str:
    """Host CPython for the tools venv (and so for building wheels on the host)."""
    env = os.environ.get("LITELLM_HARNESS_PYTHON")
    if env:
        return env
    base = getattr(sys, "_base_executable", None) or sys.executable
    if sys.version_info[:2] == (3, 11) and base and os.path.exists(base):
        return base
    return shutil.which("python3.11") or shutil.which("python3") or sys.executable


def python_tag(python: str | Path) -> str:
    """'3.11' for a CPython 3.11."""
    res = run_cmd([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], env=clean_env(), timeout=60)
    return res.stdout.strip()


def _path(cache_dir: Path, salt: str, pyver: str) -> Path:
    return cache_dir / "wheelhouse" / f"salt-{salt}-cp{pyver.replace('.', '')}"


def host_can_build(cache_dir: Path, pyver: str) -> bool:
    """Whether the tools venv's python is a CPython pyver (then wheels are built on the host)."""
    host_py, _ = ensure_uv(cache_dir)
    return python_tag(host_py) == pyver


def ensure_wheelhouse(cache_dir: Path, salt: str, pyver: str, rootfs: Path | None = None) -> Path:
    """The wheelhouse of salt==<salt> for CPython pyver: cached, or built on the
    host when its python matches, or else with the python3 of rootfs (a fresh
    debootstrap'd tree, not changed).  Without rootfs a mismatch is an error."""
    wh = _path(cache_dir, salt, pyver)
    if wh.is_dir():
        return wh
    if host_can_build(cache_dir, pyver):
        host_py, _ = ensure_uv(cache_dir)
        return _build(wh, lambda out: _pip_wheel_on_host(host_py, out, salt))
    if rootfs is None:
        raise HarnessError(
            f"the host python {host_python()} is not {pyver}; set LITELLM_HARNESS_PYTHON to a CPython "
            f"{pyver} so the salt wheelhouse matches the container"
        )
    log.info("no host CPython %s: building the salt %s wheels with the rootfs's python3", pyver, salt)
    return _build(wh, lambda out: _pip_wheel_in_rootfs(rootfs, cache_dir, out, salt))


def _build(wh: Path, build: Callable[[Path], None]) -> Path:
    """Run build(tmpdir) and rename the wheels into place (a partial build never has wh's name)."""
    t0 = time.monotonic()
    wh.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{wh.name}-", dir=wh.parent))
    try:
        build(tmp)
        os.chmod(tmp, 0o755)
        os.rename(tmp, wh)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built wheelhouse %s (%d wheels) in %.1fs", wh.name, len(list(wh.glob("*.whl"))), time.monotonic() - t0)
    return wh


def _pip_wheel_on_host(host_py: Path, out: Path, salt: str) -> None:
    run_cmd(
        pdeathsig([host_py, "-m", "pip", "wheel", "--quiet", "--wheel-dir", out, f"salt=={salt}"]),
        env=clean_env(),
        timeout=1800,
    )


_BUILD_SCRIPT = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -qq -o Acquire::Retries=3 update
apt-get -qq -y --no-install-recommends install {packages} >/dev/null
python3 -m venv /tmp/wheel-build
/tmp/wheel-build/bin/pip wheel --quiet --wheel-dir /run/wheelhouse 'salt=={salt}'
"""


def _pip_wheel_in_rootfs(rootfs: Path, cache_dir: Path, out: Path, salt: str) -> None:
    workspace = Path(tempfile.mkdtemp(prefix=".tmp-wheel-build-", dir=cache_dir))
    try:
        tree, _ = writable_tree(rootfs, workspace)
        nspawn_exec(
            tree,
            ["/bin/sh", "-c", _BUILD_SCRIPT.format(packages=" ".join(BUILD_PACKAGES), salt=salt)],
            binds_ro={os.path.realpath(HOST_CA_BUNDLE): "/run/harness-ca.crt"},
            binds={str(out): "/run/wheelhouse"},
            setenv={
                "PATH": CONTAINER_PATH,
                "HOME": "/root",
                "LC_ALL": "C.UTF-8",
                "PIP_CERT": "/run/harness-ca.crt",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1",
                "PIP_DEFAULT_TIMEOUT": "120",
            },
        )
    finally:
        remove_tree(workspace)

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

from .common import HarnessError, clean_env, log, pdeathsig, run_cmd

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


def ensure_wheelhouse(cache_dir: Path, salt: str, pyver: str) -> Path:
    """The wheelhouse of salt==<salt> for CPython pyver: cached, or built on the
    host, whose python must match."""
    wh = _path(cache_dir, salt, pyver)
    if wh.is_dir():
        return wh
    if host_can_build(cache_dir, pyver):
        host_py, _ = ensure_uv(cache_dir)
        return _build(wh, lambda out: _pip_wheel_on_host(host_py, out, salt))
    raise HarnessError(
        f"the host python {host_python()} is not {pyver}; set LITELLM_HARNESS_PYTHON to a CPython "
        f"{pyver} so the salt wheelhouse matches the container"
    )


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

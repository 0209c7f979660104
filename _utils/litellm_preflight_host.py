"""
Preflight checks of the host itself: ``runtime`` (the target python is
>=3.9,<3.14 and imports venv and ensurepip; glibc >= 2.28), ``resources``
(free disk at the venv's nearest existing parent, MemAvailable) and ``init``
(systemd is PID 1 and the system is running).
"""

import json
import os
import re

PYTHON_MIN = (3, 9)
PYTHON_BELOW = (3, 14)
GLIBC_MIN = (2, 28)

# Python the runtime check runs in the target interpreter: one JSON line.
RUNTIME_PROBE = (
    "import importlib, json, os, platform, sys\n"
    "mods = {}\n"
    "for name in ('venv', 'ensurepip'):\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "        mods[name] = ''\n"
    "    except Exception as exc:\n"
    "        mods[name] = type(exc).__name__ + ': ' + str(exc)\n"
    "try:\n"
    "    libc = os.confstr('CS_GNU_LIBC_VERSION') or ''\n"
    "except (AttributeError, ValueError, OSError):\n"
    "    libc = ''\n"
    "if not libc:\n"
    "    libc = ' '.join(platform.libc_ver())\n"
    "print(json.dumps({'version': list(sys.version_info[:3]), 'modules': mods, 'libc': libc.strip()}))\n"
)


def parse_version(text):
    """``'3.11.2'``, ``'glibc 2.36'`` or ``[3, 11, 2]`` -> ``(3, 11, 2)``; None when none."""
    if isinstance(text, (list, tuple)):
        try:
            return tuple(int(part) for part in text)
        except (TypeError, ValueError):
            return None
    match = re.search(r"(\d+(?:\.\d+)+)", str(text or ""))
    if not match:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def version_in_range(version, minimum, below):
    """``minimum <= version < below``, on the parts that are given."""
    return tuple(minimum) <= tuple(version) < tuple(below)


def _format(version):
    return ".".join(str(part) for part in version)


def _probe(ctx, python):
    """The runtime probe's answer from ``python``, or a fail detail."""
    answer = ctx.run([python, "-I", "-c", RUNTIME_PROBE])
    if answer.get("retcode") != 0:
        error = (answer.get("stderr") or answer.get("stdout") or "").strip().splitlines()
        return None, f"{python} -c failed (rc {answer.get('retcode')}): {error[-1] if error else 'no output'}"
    try:
        return json.loads(str(answer.get("stdout", "")).strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        return None, f"{python}: unexpected probe output"


def _python_part(python, probe):
    version = parse_version(probe.get("version"))
    if version and version_in_range(version, PYTHON_MIN, PYTHON_BELOW):
        return "pass", f"{python} {_format(version)}"
    return "fail", f"{python} {_format(version or ())} is outside >={_format(PYTHON_MIN)},<{_format(PYTHON_BELOW)}"


def _module_parts(lookup, probe):
    pkgs = lookup.get("pkgs") if isinstance(lookup.get("pkgs"), list) else []
    venv_pkg = next((p for p in pkgs if isinstance(p, str) and p.endswith("-venv")), None)
    for module, problem in (probe.get("modules") or {}).items():
        if not problem:
            yield None, f"{module} ok"
        elif venv_pkg:
            # A fresh host: the formula installs the package before it makes the venv.
            yield "warn", f"{module} not importable yet (the formula installs {venv_pkg})"
        else:
            yield "fail", f"{module} not importable ({problem})"


def _libc_part(probe):
    libc = str(probe.get("libc") or "")
    version = parse_version(libc)
    if not libc.lower().startswith("glibc") or version is None:
        return "fail", f"not glibc ({libc or 'unknown libc'}); LiteLLM's wheels need glibc >= 2.28"
    if version < GLIBC_MIN:
        return "fail", f"glibc {_format(version)} < {_format(GLIBC_MIN)}"
    return "pass", f"glibc {_format(version)}"


def check_runtime(ctx, settings):
    lookup = ctx.utils.litellm_settings.section(settings, "lookup")
    python = lookup.get("python")
    if python is None:
        return "skip", "litellm:lookup:python is not set (see the pillar check)"
    if not isinstance(python, str) or not os.path.isabs(python):
        return "fail", f"litellm:lookup:python {python!r} is not an absolute path"
    if not os.access(python, os.X_OK):
        return "fail", f"{python}: not found or not executable"
    probe, problem = _probe(ctx, python)
    if problem:
        return "fail", problem
    parts = [_python_part(python, probe), *_module_parts(lookup, probe), _libc_part(probe)]
    statuses = [status for status, _ in parts if status]
    return ctx.utils.litellm_preflight_report.worst(statuses), ", ".join(text for _, text in parts)


def free_bytes(path):
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _disk_part(settings, min_disk):
    venv = settings.get("venv")
    if not isinstance(venv, str) or not isinstance(min_disk, (int, float)) or isinstance(min_disk, bool):
        return "skip", "disk not checked (litellm:venv or litellm:preflight:min_disk_gib invalid)"
    where = nearest_existing(venv)
    try:
        free_gib = free_bytes(where) / 1024**3
    except OSError as exc:
        return "fail", f"free disk at {where}: {exc}"
    ok = free_gib >= min_disk
    return "pass" if ok else "fail", f"disk {free_gib:.1f} GiB free at {where} ({'>=' if ok else '<'} {min_disk} GiB)"


def _memory_part(ctx, min_memory):
    if not isinstance(min_memory, (int, float)) or isinstance(min_memory, bool):
        return "skip", "memory not checked (litellm:preflight:min_memory_mib invalid)"
    try:
        available = ctx.utils.litellm_proc.meminfo().get("MemAvailable")
    except OSError as exc:
        return "warn", f"memory unknown ({exc})"
    if available is None:
        return "warn", "memory unknown (no MemAvailable in /proc/meminfo)"
    mib = available / 1024
    ok = mib >= min_memory
    return "pass" if ok else "warn", f"memory {mib:.0f} MiB available ({'>=' if ok else '<'} {min_memory} MiB)"


def check_resources(ctx, settings):
    pf_get = ctx.utils.litellm_settings.pf_get
    parts = [
        _disk_part(settings, pf_get(settings, "min_disk_gib")),
        _memory_part(ctx, pf_get(settings, "min_memory_mib")),
    ]
    return ctx.utils.litellm_preflight_report.worst(s for s, _ in parts), "; ".join(text for _, text in parts)


def check_init(ctx, settings):  # pylint: disable=unused-argument
    pid1 = ctx.utils.litellm_proc.pid1_name()
    if pid1 != "systemd":
        return "fail", f"PID 1 is {pid1 or 'unknown'!r}, not systemd (the formula runs LiteLLM as a systemd service)"
    if not ctx.utils.litellm_systemd.booted(pid1):
        return "fail", "PID 1 is systemd but systemctl is not found"
    state = ctx.utils.litellm_systemd.system_state(ctx.run)
    if state in ("running", "degraded"):
        return "pass", f"systemd is PID 1, system {state}"
    if state in ("starting", "initializing"):
        return "warn", f"systemd is PID 1, system still {state}"
    return "fail", f"systemd is PID 1, but the system is {state}"

"""
Install LiteLLM into a venv from a lock file with hashes, reproducibly.

The venv records the digest of the lock it was installed from, so a re-apply
compares two hashes and touches no network. uv (pinned, hashed, in the lock
itself) does the install; pip only bootstraps uv. Credentials that may sit in
a package index URL go through the environment, never on a command line.
"""

import glob
import hashlib
import logging
import os
import tempfile

log = logging.getLogger(__name__)

__virtualname__ = "litellm_venv"

MARKER = ".litellm-salt-lock.sha256"
UV_CACHE_DIR = "/var/cache/litellm-salt/uv"
# pip's wheel as Debian's python3-venv ships it for ensurepip. pip runs from
# the wheel itself (``python pip-X.whl/pip``): installing uv that way into a
# venv made ``--without-pip`` skips ensurepip (measured: ~3.5 s of ~20 s).
PIP_WHEEL_GLOB = "/usr/share/python-wheels/pip-*.whl"


def __virtual__():
    return __virtualname__


# --- pure helpers ---------------------------------------------------------------


def lock_digest(lock_text):
    """sha256 of a lock file's text."""
    return hashlib.sha256(lock_text.encode()).hexdigest()


def requirement_block(lock_text, package):
    """
    The lines of one package (``name==version`` and its ``--hash`` lines) in
    a hashed lock, as a requirements text; None when it is not there.
    """
    block = []
    for line in lock_text.splitlines():
        stripped = line.strip()
        if block:
            if stripped.startswith("--hash"):
                block.append(stripped.rstrip("\\").strip())
                continue
            break
        name = stripped.split("==", 1)[0].split("[", 1)[0].strip().lower()
        if "==" in stripped and name == package:
            block.append(stripped.rstrip("\\").strip())
    if not block:
        return None
    return " \\\n    ".join(block) + "\n"


def installer_env(index_url="", extra_index_urls=(), ca_bundle=""):
    """Environment for pip and uv: index, trust store, no bytecode surprises."""
    env = {
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_PROGRESS": "1",
        "UV_CACHE_DIR": UV_CACHE_DIR,
        "UV_PYTHON_DOWNLOADS": "never",
        # Sites behind an internal CA: uv must use the system store (or the bundle).
        "UV_NATIVE_TLS": "1",
    }
    if index_url:
        env["PIP_INDEX_URL"] = env["UV_INDEX_URL"] = index_url
        env["UV_DEFAULT_INDEX"] = index_url
    if extra_index_urls:
        env["PIP_EXTRA_INDEX_URL"] = env["UV_EXTRA_INDEX_URL"] = " ".join(extra_index_urls)
    if ca_bundle:
        env["PIP_CERT"] = env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"] = ca_bundle
    return env


# --- thin wrappers (files, commands) ----------------------------------------------


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _installed_digest(venv):
    try:
        return _read(os.path.join(venv, MARKER)).strip()
    except OSError:
        return None


def status(name, lock_file):
    """
    Whether the venv ``name`` holds exactly what ``lock_file`` pins.

    Returns ``{"installed": bool, "wanted": digest, "current": digest|None}``.
    Reads two files; no network.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_venv.status /opt/litellm/venv /opt/litellm/venv/requirements.lock
    """
    wanted = lock_digest(_read(lock_file)) if os.path.exists(lock_file) else None
    current = _installed_digest(name)
    complete = os.path.exists(os.path.join(name, "bin", "litellm"))
    return {"installed": bool(wanted) and current == wanted and complete, "wanted": wanted, "current": current}


def _bundled_pip_wheel():
    """The newest pip wheel the OS ships for ensurepip, or None."""
    wheels = sorted(glob.glob(PIP_WHEEL_GLOB))
    return wheels[-1] if wheels else None


def _run(argv, env, what):
    result = __salt__["cmd.run_all"](argv, env=env, python_shell=False, output_loglevel="quiet", ignore_retcode=True)
    if result["retcode"] != 0:
        tail = "\n".join((result.get("stderr") or result.get("stdout") or "").splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {result['retcode']}):\n{tail}")
    return result


def install(name, lock_file, python="/usr/bin/python3", index_url="", extra_index_urls=None, ca_bundle=""):
    """
    Create the venv ``name`` if needed and make it hold exactly the packages
    of ``lock_file`` (hashes required; packages not in the lock are removed),
    then record the lock's digest. Raises with the installer's message on
    failure; the digest is only written after success.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_venv.install /opt/litellm/venv /opt/litellm/venv/requirements.lock
    """
    lock_text = _read(lock_file)
    env = installer_env(index_url, extra_index_urls or [], ca_bundle)
    venv_python = os.path.join(name, "bin", "python")
    uv = os.path.join(name, "bin", "uv")
    if not os.path.exists(venv_python):
        _run([python, "-m", "venv", "--without-pip", name], env, f"creating the venv {name} with {python}")
    if not os.path.exists(uv):
        uv_block = requirement_block(lock_text, "uv")
        if uv_block is None:
            raise RuntimeError(f"{lock_file} does not pin uv; regenerate it with `make lock`")
        wheel = _bundled_pip_wheel()
        if wheel:
            pip = [venv_python, os.path.join(wheel, "pip")]
        else:
            _run([venv_python, "-m", "ensurepip", "--default-pip"], env, "bootstrapping pip")
            pip = [venv_python, "-m", "pip"]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write(uv_block)
        try:
            _run(
                [*pip, "install", "-q", "--require-hashes", "--no-deps", "-r", handle.name],
                env,
                "installing uv (pinned in the lock) with pip",
            )
        finally:
            os.unlink(handle.name)
    _run(
        [uv, "pip", "sync", "--python", venv_python, "--require-hashes", "--compile-bytecode", lock_file],
        env,
        f"installing {lock_file} into {name}",
    )
    with open(os.path.join(name, MARKER), "w", encoding="utf-8") as handle:
        handle.write(lock_digest(lock_text) + "\n")
    return status(name, lock_file)

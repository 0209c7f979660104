"""
Install LiteLLM into a venv from a lock file with hashes, reproducibly, one
release at a time.

Each lock gets its own venv, a *release* in ``<venv>-releases/<version>-<digest>``;
the venv path the unit runs (``/opt/litellm/venv``) is a symlink to the active
one. A new release is built and checked while the old one still serves, then
the symlink is swapped atomically, so the service is down only for its
restart, and the previous release stays on disk for a rollback.

A release records the digest of the lock it was installed from, so a re-apply
compares two hashes and touches no network. uv (pinned, hashed, in the lock
itself) does the install; pip only bootstraps uv. Credentials that may sit in
a package index URL go through the environment, never on a command line.
"""

import glob
import ipaddress
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.parse

log = logging.getLogger(__name__)

__virtualname__ = "litellm_venv"

MARKER = ".litellm-salt-lock.sha256"
UV_CACHE_DIR = "/var/cache/litellm-salt/uv"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
DEFAULT_INDEX = "https://pypi.org/simple"  # pip's and uv's, when the pillar names none
LOCK_IN_RELEASE = "requirements.lock"
#: an upgrade must import the proxy before it goes live
VERIFY_IMPORT = "import litellm.proxy.proxy_server"
# Without it, importing LiteLLM fetches its model cost map from GitHub, and offline it
# retries for ~7 s before it falls back to the copy in the package (as the service does).
OFFLINE_IMPORT_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY_DISABLED": "true"}
# The files of a list (argv[1]) compiled as uv's --compile-bytecode does (compileall's
# defaults), on every core: compileall's own -i compiles them one after another.
COMPILE_LISTED = (
    "import compileall, concurrent.futures, functools, os, sys\n"
    "paths = [line for line in open(sys.argv[1]).read().splitlines() if line]\n"
    "with concurrent.futures.ProcessPoolExecutor(os.cpu_count() or 1) as pool:\n"
    "    done = list(pool.map(functools.partial(compileall.compile_file, quiet=1), paths, chunksize=32))\n"
    "sys.exit(0 if all(done) else 1)\n"
)
# pip's wheel as Debian's python3-venv ships it for ensurepip. pip runs from
# the wheel itself (``python pip-X.whl/pip``): installing uv that way into a
# venv made ``--without-pip`` skips ensurepip (measured: ~3.5 s of ~20 s).
PIP_WHEEL_GLOB = "/usr/share/python-wheels/pip-*.whl"


def __virtual__():
    return __virtualname__


# --- pure helpers ---------------------------------------------------------------


def lock_digest(lock_text):
    """sha256 of a lock file's text."""
    return __utils__["litellm_lock.digest"](lock_text)


def requirement_block(lock_text, package):
    """One package's lines (``name==version`` and its hashes) of a hashed lock, or None."""
    return __utils__["litellm_lock.requirement_block"](lock_text, package)


def releases_dir(venv):
    """Where the releases of the venv ``venv`` live: ``<venv>-releases``."""
    return venv.rstrip("/") + "-releases"


def locked_version(lock_text, package="litellm"):
    """The version a hashed lock pins for ``package``, or None."""
    return __utils__["litellm_lock.locked_version"](lock_text, package)


def release_name(lock_text):
    """``<litellm version>-<first 12 hex of the lock digest>``: one per lock."""
    version = locked_version(lock_text) or "unknown"
    return f"{re.sub(r'[^A-Za-z0-9.+_-]', '_', version)}-{lock_digest(lock_text)[:12]}"


def _pip_wheel_version(wheel):
    """(25, 1, 1) of '.../pip-25.1.1-py3-none-any.whl'; () when the name says no version."""
    match = re.search(r"pip-(\d+(?:\.\d+)*)-", os.path.basename(wheel or ""))
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _pip_legacy_certs(pip_version, index_urls):
    """
    Whether pip must verify TLS the pre-24.2 way: from 24.2 pip verifies with
    truststore, which fails for an index addressed by an IP literal
    ("check_hostname requires server_hostname", pypa/pip#12906; trixie ships
    pip 25.1.1). The legacy way verifies against PIP_CERT, which the
    installer always sets (the system store, or ca_bundle).
    """
    if pip_version < (24, 2):
        return False
    for url in index_urls:
        host = urllib.parse.urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        if url.startswith("https://"):
            return True
    return False


def installer_env(index_url="", extra_index_urls=(), ca_bundle=""):
    """Environment for pip and uv: index, trust store, no bytecode surprises."""
    env = {
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_PROGRESS": "1",
        "UV_CACHE_DIR": UV_CACHE_DIR,
        "UV_PYTHON_DOWNLOADS": "never",
        # Sites behind an internal CA: uv must use the system store (or the
        # bundle); UV_SYSTEM_CERTS is the newer name of UV_NATIVE_TLS.
        "UV_NATIVE_TLS": "1",
        "UV_SYSTEM_CERTS": "1",
    }
    if index_url:
        env["PIP_INDEX_URL"] = env["UV_INDEX_URL"] = index_url
        env["UV_DEFAULT_INDEX"] = index_url
    if extra_index_urls:
        env["PIP_EXTRA_INDEX_URL"] = env["UV_EXTRA_INDEX_URL"] = " ".join(extra_index_urls)
    if ca_bundle:
        env["PIP_CERT"] = env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"] = ca_bundle
    else:
        # pip trusts only certifi's CAs by default; a site CA is in the system store
        env["PIP_CERT"] = SYSTEM_CA_BUNDLE
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


def active_release(name):
    """The directory the venv path ``name`` runs from (its symlink's target), or None."""
    if not os.path.lexists(name):
        return None
    return os.path.realpath(name)


def status(name, lock_file):
    """
    Whether the venv ``name`` runs exactly what ``lock_file`` pins.

    Returns ``{"installed": bool, "wanted": digest, "current": digest|None,
    "release": dir to run it from, "active": dir running now}``. Reads a few
    files; no network.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_venv.status /opt/litellm/venv /opt/litellm/venv-releases/litellm-1.108.7.lock
    """
    lock_text = _read(lock_file) if os.path.exists(lock_file) else None
    wanted = lock_digest(lock_text) if lock_text is not None else None
    active = active_release(name)
    current = _installed_digest(active) if active else None
    complete = bool(active) and os.path.exists(os.path.join(active, "bin", "litellm"))
    release = os.path.join(releases_dir(name), release_name(lock_text)) if lock_text is not None else None
    return {
        "installed": bool(wanted) and current == wanted and complete,
        "wanted": wanted,
        "current": current,
        "release": release,
        "active": active,
    }


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


def _complete(release, digest):
    return _installed_digest(release) == digest and os.path.exists(os.path.join(release, "bin", "litellm"))


def _pip_argv(venv_python, env, index_urls):
    """How to run pip for the release: from the wheel the OS ships (no ensurepip),
    with pip's legacy TLS verification where its truststore fails."""
    wheel = _bundled_pip_wheel()
    if wheel:
        pip, pip_version = [venv_python, os.path.join(wheel, "pip")], _pip_wheel_version(wheel)
    else:
        _run([venv_python, "-m", "ensurepip", "--default-pip"], env, "bootstrapping pip")
        # no wheel to read the version from (Debian's python3-venv always brings one)
        pip, pip_version = [venv_python, "-m", "pip"], ()
    if _pip_legacy_certs(pip_version, index_urls):
        pip.append("--use-deprecated=legacy-certs")
    return pip


def _venv_with_uv(release, lock_text, lock_file, python, env, index_urls, ca_bundle=""):
    """A venv at ``release`` without pip, and in it uv as the lock pins it: out of its wheel, else by pip.
    Returns how uv came: ``"its wheel"`` or ``"pip"``."""
    _run([python, "-m", "venv", "--without-pip", release], env, f"creating the venv {release} with {python}")
    uv_block = requirement_block(lock_text, "uv")
    if uv_block is None:
        raise RuntimeError(f"{lock_file} does not pin uv; regenerate it with `make lock`")
    if __utils__["litellm_uv_wheel.install"](release, __utils__["litellm_lock.pinned"](uv_block),
                                             [url for url in index_urls if url] or [DEFAULT_INDEX], ca_bundle):
        return "its wheel"
    pip = _pip_argv(os.path.join(release, "bin", "python"), env, index_urls)
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
    return "pip"


def _compile_list(path, digest):
    """The site-packages paths of the compile list at ``path``, or None (no list, or not this lock's)."""
    if not path:
        return None
    try:
        return __utils__["litellm_bytecode.parse_list"](_read(path), digest)
    except (OSError, ValueError) as exc:
        log.warning("Compiling every file of the release: the compile list %s %s", path, exc)
        return None


def _compile_listed(release, venv_python, relative_paths, env):
    """Bytecode for the listed files that this Python's release has, one compiler a core."""
    site_packages = glob.glob(os.path.join(release, "lib", "python3*", "site-packages"))
    if len(site_packages) != 1:
        raise RuntimeError(f"{release} has no single site-packages directory: {site_packages}")
    paths = [os.path.join(site_packages[0], path) for path in relative_paths]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(path for path in paths if os.path.isfile(path)) + "\n")
    try:
        _run([venv_python, "-c", COMPILE_LISTED, handle.name], env, f"compiling the listed bytecode of {release}")
    finally:
        os.unlink(handle.name)


def _write_release_files(release, lock_text, digest):
    """The lock beside the release, then its digest (the marker of a complete build)."""
    with open(os.path.join(release, LOCK_IN_RELEASE), "w", encoding="utf-8") as handle:
        handle.write(lock_text)
    with open(os.path.join(release, MARKER), "w", encoding="utf-8") as handle:
        handle.write(digest + "\n")


def build(release, lock_file, python="/usr/bin/python3", index_url="", extra_index_urls=None, ca_bundle="",
          check_import=True, compile_list=""):
    """
    Build the release venv ``release`` from ``lock_file`` (hashes required;
    packages not in the lock are removed), compile their bytecode (the
    service runs read-only): the files ``compile_list`` names when it was
    made for this lock, else every file. Then check that it imports the
    proxy (``check_import``) and record the lock's digest. A half-built
    release is removed and built again; the digest is only written after
    success. Does not make it live.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_venv.build /opt/litellm/venv-releases/1.108.7-0123456789ab /tmp/litellm.lock
    """
    lock_text = _read(lock_file)
    digest = lock_digest(lock_text)
    if _complete(release, digest):
        return {"release": release, "built": False}
    if os.path.lexists(release):
        shutil.rmtree(release)
    os.makedirs(os.path.dirname(release), mode=0o755, exist_ok=True)
    env = installer_env(index_url, extra_index_urls or [], ca_bundle)
    venv_python = os.path.join(release, "bin", "python")
    seconds = {}
    started = time.monotonic()
    uv_from = _venv_with_uv(release, lock_text, lock_file, python, env, [index_url, *(extra_index_urls or [])],
                            ca_bundle)
    seconds["venv and uv"] = time.monotonic() - started
    listed = _compile_list(compile_list, digest)
    started = time.monotonic()
    _run(
        [os.path.join(release, "bin", "uv"), "pip", "sync", "--python", venv_python, "--require-hashes",
         *([] if listed else ["--compile-bytecode"]), lock_file],
        env,
        f"installing {lock_file} into {release}",
    )
    if listed:
        seconds["packages"] = time.monotonic() - started
        started = time.monotonic()
        _compile_listed(release, venv_python, listed, env)
        seconds["bytecode"] = time.monotonic() - started
    else:
        seconds["packages and bytecode"] = time.monotonic() - started
    if check_import:
        started = time.monotonic()
        _run([venv_python, "-c", VERIFY_IMPORT], {**env, **OFFLINE_IMPORT_ENV},
             f"checking that {release} imports the LiteLLM proxy")
        seconds["import check"] = time.monotonic() - started
    _write_release_files(release, lock_text, digest)
    return {"release": release, "built": True, "uv_from": uv_from,
            "seconds": {step: round(value, 1) for step, value in seconds.items()}}


def activate(name, release):
    """
    Point the venv path ``name`` at ``release`` (a symlink swapped atomically).
    A venv still installed in place at ``name`` (formula versions before
    releases) is first moved into the releases directory, so it stays
    available for a rollback. Returns ``{"previous", "active"}``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_venv.activate /opt/litellm/venv /opt/litellm/venv-releases/1.108.6-0123456789ab
    """
    release = os.path.realpath(release)
    if not os.path.exists(os.path.join(release, "bin", "python")):
        raise RuntimeError(f"{release} is not a venv")
    previous = active_release(name)
    if previous == release and os.path.islink(name):
        return {"previous": previous, "active": release}
    if os.path.isdir(name) and not os.path.islink(name):
        legacy = os.path.join(releases_dir(name), f"in-place-{_installed_digest(name) or 'unknown'}"[:40])
        os.makedirs(releases_dir(name), mode=0o755, exist_ok=True)
        if os.path.lexists(legacy):
            shutil.rmtree(legacy)
        os.rename(name, legacy)
        previous = legacy
    tmp = f"{name}.litellm-salt-{os.getpid()}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(release, tmp)
    os.replace(tmp, name)
    return {"previous": previous, "active": release}


def install(name, lock_file, python="/usr/bin/python3", index_url="", extra_index_urls=None, ca_bundle="",
            compile_list=""):
    """
    Make the venv path ``name`` run exactly what ``lock_file`` pins: build its
    release (unless already on disk) while the active one keeps serving, then
    point ``name`` at it. ``compile_list``: the lock's compile list (see
    ``build``). Raises with the installer's message on failure, in which case
    ``name`` still points where it did.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_venv.install /opt/litellm/venv /opt/litellm/venv-releases/litellm-1.108.7.lock
    """
    before = status(name, lock_file)
    # A first install has no gateway serving to protect: the config check that
    # follows (litellm --validate_config) imports the proxy from the new
    # release anyway, failing the run before the service starts. One import
    # of LiteLLM (~8-10 s) instead of two on a cold deploy.
    serving = bool(before["active"])
    built = build(before["release"], lock_file, python, index_url, extra_index_urls, ca_bundle, check_import=serving,
                  compile_list=compile_list)
    switched = activate(name, before["release"])
    after = status(name, lock_file)
    after.update(previous=switched["previous"], built=built["built"], seconds=built.get("seconds", {}),
                 uv_from=built.get("uv_from"))
    return after


def releases(name):
    """
    The releases of the venv path ``name``: ``[{"path", "digest", "active"}]``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_venv.releases /opt/litellm/venv
    """
    root = releases_dir(name)
    active = active_release(name)
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        path = os.path.join(root, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            out.append({"path": path, "digest": _installed_digest(path), "active": path == active})
    return out


def prune(name, keep=()):
    """
    Remove the releases of ``name`` other than the active one and ``keep``.
    Returns the paths removed.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_venv.prune /opt/litellm/venv
    """
    keep = {os.path.realpath(path) for path in keep if path}
    removed = []
    for release in releases(name):
        if release["active"] or release["path"] in keep:
            continue
        shutil.rmtree(release["path"])
        removed.append(release["path"])
    return removed

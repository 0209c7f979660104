"""
Known-good releases of the gateway, and rolling back to them.

A *release* is what served when a smoke test passed: ``config.yaml``,
``litellm.env`` and the venv release the venv symlink pointed at. After each
PASS that changed something, a new one is kept in
``/var/lib/litellm-salt/known-good/<UTC time>/`` (the newest ``keep``; the env
file holds the master key, so the store is root 0700 and its files root
0600). Venv releases that no kept release and no rollback needs are removed.

Rolling back restores a kept release (files atomically, the venv symlink
swapped) and puts it live only when the serving workers loaded what is being
replaced, the way a deploy does (``litellm_service.apply_change``: a rolling
reload for files, a restart behind the held socket for a venv), then waits
for readiness. No return value or log line ever
carries file contents.
"""

import datetime
import json
import logging
import os
import shutil

log = logging.getLogger(__name__)

__virtualname__ = "litellm_release"

STORE = "/var/lib/litellm-salt/known-good"
FILES = ("config.yaml", "litellm.env")
META = "release.json"
LIVE_MODE = 0o640  # as the formula manages config.yaml and litellm.env
STORE_DIR_MODE = 0o700
STORE_FILE_MODE = 0o600


def __virtual__():
    if "litellm_files.read_bytes" not in __utils__:
        return (False, "litellm_release needs the formula's _utils (saltutil.sync_utils, or utils_dirs)")
    return __virtualname__


# --- pure logic ---------------------------------------------------------------------


def generation_name(now):
    """The directory name of a release saved at ``now`` (aware UTC datetime); sorts by time."""
    return now.strftime("%Y%m%dT%H%M%S.%fZ")


def same(live, release):
    """
    Whether the live files and venv equal a kept release. A release saved
    without a venv (older store) matches on its files alone.
    """
    if any(live["files"].get(name) != release["files"].get(name) for name in FILES):
        return False
    return release.get("venv") is None or live.get("venv") == release.get("venv")


def differences(live, release):
    """What a rollback to ``release`` would replace: file names and/or ``venv``."""
    changed = [name for name in FILES if live["files"].get(name) != release["files"].get(name)]
    if release.get("venv") and live.get("venv") != release["venv"]:
        changed.append("venv")
    return changed


def rollback_target(releases, live, steps=1):
    """
    Index (in ``releases``, newest first) of the release to go back to, or
    None. When the live state is one of the releases, go ``steps`` older than
    it; when it is none of them (a change that never passed), the newest.
    """
    if not releases:
        return None
    for index, release in enumerate(releases):
        if same(live, release):
            target = index + steps
            return target if target < len(releases) else None
    return min(steps - 1, len(releases) - 1)


def venvs_to_keep(releases, active, keep_venvs):
    """
    The venv releases to keep: the active one and those of the newest
    ``keep_venvs`` kept releases that run another one.
    """
    keep = [active] if active else []
    others = []
    for release in releases:
        venv = release.get("venv")
        if venv and venv != active and venv not in others:
            others.append(venv)
    return keep + others[: max(0, keep_venvs)]


def needs_restart(ready, started_at, replaced_at):
    """
    Restart after a rollback unless the service is ready and its process
    started before the files and venv being replaced were written (it never
    loaded them: a change that failed before the restart).
    """
    if not ready or started_at is None or replaced_at is None:
        return True
    return started_at >= replaced_at


# --- the store ----------------------------------------------------------------------


def _read(path):
    """The bytes of ``path``, or None when it does not exist."""
    return __utils__["litellm_files.read_bytes"](path)


def _write_atomic(path, data, mode, uid=None, gid=None):
    """Write ``data`` next to ``path`` (``mode``, owner), fsync, rename over it."""
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.litellm-salt-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _private_dir(path):
    """``path`` (and its parent) as root-owned 0700 directories."""
    for directory in (os.path.dirname(path), path):
        os.makedirs(directory, mode=STORE_DIR_MODE, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(directory, 0, 0)
        os.chmod(directory, STORE_DIR_MODE)


def _migrate_flat_store(store):
    """Before releases, the store held one flat config/env pair: make it the oldest release."""
    if not all(os.path.isfile(os.path.join(store, name)) for name in FILES):
        return
    target = os.path.join(store, "00000000T000000.000000Z")
    _private_dir(target)
    for name in FILES:
        os.rename(os.path.join(store, name), os.path.join(target, name))


def live_state(config_dir, venv):
    """The live files (bytes or None) and the venv release the symlink points at."""
    return {
        "files": {name: _read(os.path.join(config_dir, name)) for name in FILES},
        "venv": os.path.realpath(venv) if venv and os.path.lexists(venv) else None,
    }


def load(store=STORE):
    """Kept releases, newest first: ``[{"name", "path", "files", "venv", "saved"}]`` (contents inside)."""
    if not os.path.isdir(store):
        return []
    _migrate_flat_store(store)
    releases = []
    for name in sorted(os.listdir(store), reverse=True):
        path = os.path.join(store, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        files = {item: _read(os.path.join(path, item)) for item in FILES}
        if any(data is None for data in files.values()):
            continue  # incomplete: a save that was interrupted
        try:
            meta = json.loads(_read(os.path.join(path, META)) or b"{}")
        except ValueError:
            meta = {}
        releases.append({"name": name, "path": path, "files": files, "venv": meta.get("venv"),
                         "saved": meta.get("saved")})
    return releases


def _public(release, live=None, venv_exists=None):
    """A release without its contents: safe to return and log."""
    out = {"name": release["name"], "path": release["path"], "venv": release.get("venv"),
           "saved": release.get("saved")}
    if live is not None:
        out["live"] = same(live, release)
    if venv_exists is not None:
        out["venv_on_disk"] = venv_exists
    return out


def save(config_dir="/etc/litellm", venv="/opt/litellm/venv", store=STORE, keep=5, keep_venvs=1):
    """
    Keep the live config, env and venv release as the newest known-good
    release (unless it already is), drop releases beyond the newest ``keep``,
    and remove venv releases that neither the active venv nor the newest
    ``keep_venvs`` other kept releases use.

    Returns ``{"action": "saved"|"kept", "release", "pruned", "pruned_venvs"}``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_release.save
    """
    live = live_state(config_dir, venv)
    missing = [name for name in FILES if live["files"][name] is None]
    if missing:
        raise FileNotFoundError(f"live file(s) missing in {config_dir}: {', '.join(missing)}")
    releases = load(store)
    out = {"action": "kept", "release": None, "pruned": [], "pruned_venvs": []}
    if releases and same(live, releases[0]) and releases[0].get("venv") == live["venv"]:
        out["release"] = releases[0]["name"]
    else:
        now = datetime.datetime.now(datetime.timezone.utc)
        name = generation_name(now)
        final = os.path.join(store, name)
        tmp = os.path.join(store, f".{name}.tmp")
        _private_dir(store)
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)
        _private_dir(tmp)
        owner = 0 if os.geteuid() == 0 else None
        for item in FILES:
            _write_atomic(os.path.join(tmp, item), live["files"][item], STORE_FILE_MODE, owner, owner)
        meta = {"venv": live["venv"], "saved": now.isoformat(timespec="seconds")}
        _write_atomic(os.path.join(tmp, META), json.dumps(meta).encode(), STORE_FILE_MODE, owner, owner)
        os.rename(tmp, final)
        out.update(action="saved", release=name)
        releases = load(store)
    for old in releases[max(1, keep) :]:
        shutil.rmtree(old["path"])
        out["pruned"].append(old["name"])
    kept = releases[: max(1, keep)]
    if venv and os.path.islink(venv):
        out["pruned_venvs"] = _salt()["litellm_venv.prune"](venv, venvs_to_keep(kept, live["venv"], keep_venvs))
    return out


def restore(release, config_dir="/etc/litellm", venv="/opt/litellm/venv", group="litellm", only=None):
    """
    Put a kept release (as ``load`` returns it) back: the files atomically,
    root:``group`` 0640, and the venv symlink when its release is still on
    disk. ``only`` limits what is restored (names from ``differences``).
    Returns what was restored (paths and ``venv``) and what could not be.
    """
    import grp  # pylint: disable=import-outside-toplevel

    only = list(only) if only is not None else [*FILES, "venv"]
    root = os.geteuid() == 0
    gid = grp.getgrnam(group).gr_gid if root else None
    restored, skipped = [], []
    for name in FILES:
        if name in only:
            _write_atomic(os.path.join(config_dir, name), release["files"][name], LIVE_MODE, 0 if root else None, gid)
            restored.append(os.path.join(config_dir, name))
    target = release.get("venv")
    if "venv" in only and target:
        if os.path.exists(os.path.join(target, "bin", "python")):
            _salt()["litellm_venv.activate"](venv, target)
            restored.append(f"venv -> {target}")
        else:
            skipped.append(f"venv {target} (removed since; the active venv stays)")
    return {"restored": restored, "skipped": skipped}


# --- the service --------------------------------------------------------------------


def _salt():
    return __salt__  # noqa: F821 - injected by the Salt loader


def _loaded_at(service):
    """When the serving workers loaded the config and env (epoch seconds), or None."""
    return _salt()["litellm_service.loaded_at"](service)


def _replaced_at(config_dir, venv, names):
    """When the oldest of the live things being replaced was written (epoch seconds)."""
    times = []
    for name in names:
        path = venv if name == "venv" else os.path.join(config_dir, name)
        try:
            times.append(os.lstat(path).st_mtime)
        except OSError:
            pass
    return min(times) if times else None


def recover(
    config_dir="/etc/litellm",
    venv="/opt/litellm/venv",
    service="litellm",
    group="litellm",
    url="http://127.0.0.1:4000",
    ready_timeout=180,
    store=STORE,
    steps=None,
    force_restart=False,
):
    """
    Go back to a kept release: the newest one (``steps`` None: undo a change
    that never passed) or ``steps`` older than the live one. Restores what
    differs, restarts ``service`` if its process loaded what was replaced (or
    ``force_restart``), waits for readiness.

    Returns ``{"action": "rolled_back"|"none", "reason", "release",
    "restored", "skipped", "restarted", "path" (reload or restart, when
    it went live), "ready"}``; never file contents.
    """
    out = {"action": "none", "reason": "", "release": None, "restored": [], "skipped": [], "restarted": False,
           "ready": None}
    releases = load(store)
    live = live_state(config_dir, venv)
    if not releases:
        out["reason"] = "no known-good release yet (no smoke test has passed here): nothing to roll back to"
        return out
    if steps is None:
        release = releases[0]
        if same(live, release):
            out["reason"] = "the live config, env and venv are the last known-good ones: nothing to roll back"
            return out
    else:
        index = rollback_target(releases, live, steps)
        if index is None:
            out["reason"] = f"no known-good release {steps} older than the live one (kept: {len(releases)})"
            return out
        release = releases[index]
    changed = differences(live, release)
    replaced_at = _replaced_at(config_dir, venv, changed)
    done = restore(release, config_dir, venv, group, only=changed)
    out.update(action="rolled_back", release=release["name"], restored=done["restored"], skipped=done["skipped"])
    out["reason"] = f"restored {', '.join(changed) or 'nothing'} of known-good release {release['name']}"
    wait = _salt()["litellm_service.wait_ready"]
    now = _salt()["litellm_service.readiness"](url)
    if force_restart or needs_restart(now["ready"], _loaded_at(service), replaced_at):
        # The same paths as a deploy: a new venv needs a new supervisor (behind
        # the held socket), restored files only new workers (a rolling reload).
        path = "restart" if "venv" in changed else "reload"
        log.warning("litellm: rolled back to %s (%s), %s of %s", release["name"], ", ".join(changed), path, service)
        change = _salt()["litellm_service.apply_change"](service, path, url=url, timeout=ready_timeout)
        out["restarted"] = True
        out["path"] = change["path"]
        out["main_pid"] = {"old": change["main_pid_before"], "new": change["main_pid"]}
        now = wait(url, timeout=ready_timeout)
        if not change["ok"]:
            now = {**now, "ready": False, "detail": change["detail"]}
    out["ready"] = {key: now.get(key) for key in ("ready", "status", "waited", "detail")}
    return out


def status(config_dir="/etc/litellm", venv="/opt/litellm/venv", store=STORE):
    """
    The kept known-good releases, newest first, which one is live, and
    whether each one's venv is still on disk (never file contents).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_release.status
    """
    live = live_state(config_dir, venv)
    releases = load(store)
    return {
        "store": store,
        "live_venv": live["venv"],
        "releases": [
            _public(release, live, bool(release.get("venv")) and os.path.isdir(release["venv"] or ""))
            for release in releases
        ],
    }


def rollback(
    steps=1,
    config_dir="/etc/litellm",
    venv="/opt/litellm/venv",
    service="litellm",
    group="litellm",
    url=None,
    ready_timeout=180,
    store=STORE,
):
    """
    Roll the gateway back ``steps`` known-good releases from the live one
    (config, env and venv), restart it and wait until it is ready. When the
    live state never passed a smoke test, go back to the newest known-good
    release. Settings left at their defaults come from pillar ``litellm:``
    when it is there. Pillar still says what the next ``state.apply`` will
    deploy: revert it too, to stay rolled back.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_release.rollback
        salt-call litellm_release.rollback steps=2
    """
    url = url or _salt()["litellm_config.local_url"]("127.0.0.1", 4000)
    result = recover(config_dir, venv, service, group, url, ready_timeout, store, steps=int(steps),
                     force_restart=True)
    return result

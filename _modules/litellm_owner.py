"""
What the formula owns on a host: the record, the takeover check, and removal.

Every deploy claims, before it creates anything, the paths, unit, user and
group it is about to create, in a root-only record on the host
(``/var/lib/litellm-salt/owned.json``, 0600). Anything that already exists and
is not in the record belongs to someone else: the run stops, naming the pillar
key, before the host changes. ``litellm.clean`` removes exactly what the record
lists, whatever pillar says at clean time; a host with no record gets a clean
that changes nothing.

Pure functions decide (``plan``, ``removal_order``); thin wrappers read the
host (``facts``) and act (``claim``, ``remove``).
"""

import datetime
import grp
import json
import logging
import os
import pwd
import shutil

log = logging.getLogger(__name__)

__virtualname__ = "litellm_owner"

STORE = "/var/lib/litellm-salt"
RECORD = f"{STORE}/owned.json"
RECORD_FORMAT = 1
# Where a unit of the same name would come from (systemd's search path).
UNIT_SEARCH_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/run/systemd/transient",
    "/run/systemd/generator",
    "/run/systemd/generator.late",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
def __virtual__():
    if not os.path.isfile("/etc/passwd"):
        return (False, "litellm_owner needs a Linux host (/etc/passwd)")
    if "litellm_owner_plan.plan" not in __utils__:
        return (False, "litellm_owner needs the formula's _utils (saltutil.sync_utils, or utils_dirs)")
    return __virtualname__


def _store():
    """The record's directory: ``litellm_owner_store`` in the minion options (tests), else STORE."""
    return __opts__.get("litellm_owner_store") or STORE


def _record():
    store = __opts__.get("litellm_owner_store")
    return os.path.join(store, "owned.json") if store else RECORD


def _plan(name, *args, **kwargs):
    """A pure function of litellm_owner_plan (the decisions)."""
    return __utils__[f"litellm_owner_plan.{name}"](*args, **kwargs)


# --- host I/O -------------------------------------------------------------------------


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _path_fact(path):
    try:
        if os.path.islink(path):
            return f"a symlink to {os.readlink(path)}"
        if os.path.isdir(path):
            return "a directory"
        if os.path.lexists(path):
            return "a file"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    return None


def _unit_fact(name):
    for directory in UNIT_SEARCH_DIRS:
        path = os.path.join(directory, name)
        if os.path.lexists(path):
            return path
    if os.path.isdir("/run/systemd/system") and "cmd.run_all" in __salt__:
        # An alias (sshd.service -> ssh.service) has no file of its own name.
        shown = __salt__["cmd.run_all"](
            ["systemctl", "show", "--property=LoadState,Id", name], python_shell=False, ignore_retcode=True
        )
        values = dict(line.partition("=")[::2] for line in shown.get("stdout", "").splitlines())
        if values.get("LoadState") not in (None, "", "not-found"):
            return f"loaded as {values.get('Id') or name}"
    return None


def _account_fact(kind, name):
    try:
        number = pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        return None
    label = "uid" if kind == "user" else "gid"
    return f"{label} {number}" + (", a system account" if number < 1000 else "")


def _pkg_fact(name):
    version = __salt__["pkg.version"](name) if "pkg.version" in __salt__ else ""
    return f"version {version} installed" if version else None


def _facts(entries, owned=()):
    """What exists on the host for each entry not already owned (and the directories on the way)."""
    found = {}
    for entry in entries:
        ident = _plan("identity", entry)
        if ident in owned and entry["kind"] != "runtime":
            continue
        if ident[0] == "path":
            for path in [ident[1]] + _plan("ancestors", ident[1]):
                found.setdefault(("path", path), _path_fact(path))
        elif ident[0] == "unit":
            found[ident] = _unit_fact(ident[1])
        elif ident[0] == "pkg":
            found[ident] = _pkg_fact(ident[1])
        else:
            found[ident] = _account_fact(*ident)
    return found


def _read_record(path=None):
    """The record as a dict, or None when the formula has no record on this host."""
    path = path or _record()
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{path}: the formula's record is unreadable ({exc}); nothing was changed") from exc
    if not isinstance(record, dict) or not isinstance(record.get("entries"), list):
        raise RuntimeError(f"{path}: the formula's record is not a record (no entries); nothing was changed")
    return record


def _write_record(record, path=None):
    path = path or _record()
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _ours(unit_path):
    """A unit file that carries the formula's header."""
    try:
        with open(unit_path, encoding="utf-8") as handle:
            return handle.read(len(_plan("managed_header"))) == _plan("managed_header")
    except OSError:
        return False


def _legacy_record(entries):
    """Adopt a deploy of a formula version before the record (see ``legacy_entries``)."""
    for entry in entries:
        if entry["kind"] == "unit" and entry["path"].endswith(".service") and os.path.isfile(entry["path"]):
            try:
                with open(entry["path"], encoding="utf-8") as handle:
                    adopted = _plan("legacy_entries", handle.read(), entry["path"])
            except OSError:
                return None
            # another unit it names (its socket) only when the formula wrote it too
            adopted = [e for e in adopted if e["path"] == entry["path"] or e["kind"] != "unit" or _ours(e["path"])]
            # and the formula's own directories (known-good releases, evidence, installer cache)
            adopted += [e for e in entries if e.get("key") is None or e["kind"] == "store" and
                        (e["path"] + "/").startswith(_store() + "/")]
            present = [e for e in adopted if e["kind"] == "unit" or _facts([e]).get(_plan("identity", e))]
            # the directories those deploys made on the way: the venv's home, the formula's store
            homes = {e.get("home") for e in entries if e["kind"] == "venv"} & {
                os.path.dirname(e["path"]) for e in present if e["kind"] == "venv"}
            for path in sorted(homes - {"", None}) + [_store()]:
                if os.path.isdir(path):
                    present.append({"kind": "parent", "key": None, "job": "owner", "path": path})
            if present:
                return {"format": RECORD_FORMAT, "adopted": _now(), "entries": [dict(e, recorded="adopted")
                                                                              for e in present]}
    return None


def check(entries):
    """
    Read-only: ``{"claims", "problems", "adopted"}`` for the layout ``entries``.

    CLI Example:

    .. code-block:: bash

        salt-call --local litellm_owner.check "$(salt-call --local --out=json litellm_config.layout)"
    """
    record = _read_record()
    adopted = None
    if record is None:
        adopted = _legacy_record(entries)
        record = adopted or {"entries": []}
    owned = {_plan("identity", e) for e in record["entries"]}
    claims, problems = _plan("plan", entries, record["entries"], _facts(entries, owned), stamp=_now(), record=_record())
    labels = [_plan("label", e) for e in (adopted or {}).get("entries", []) + claims]
    return {"claims": claims, "labels": labels, "problems": problems, "adopted": bool(adopted)}


def claim(entries):
    """
    Record as the formula's the entries of ``entries`` that do not exist yet,
    before they are created; refuses (raises, naming the pillar key) when one
    exists and is not the formula's. Returns the newly recorded entries.

    CLI Example:

    .. code-block:: bash

        salt-call --local litellm_owner.claim "$(salt-call --local --out=json litellm_config.layout)"
    """
    decided = check(entries)
    if decided["problems"]:
        raise RuntimeError("\n".join(decided["problems"]))
    record = _read_record() or {"format": RECORD_FORMAT, "entries": []}
    if decided["adopted"]:
        record = _legacy_record(entries)
    known = {_plan("identity", e) for e in record["entries"] + decided["claims"]}
    if decided["claims"] and not os.path.isdir(_store()) and ("path", _store()) not in known:
        # The record's own directory is the formula's too.
        decided["claims"].append({"kind": "parent", "key": None, "job": "owner", "path": _store(), "recorded": _now()})
    if decided["claims"] or decided["adopted"]:
        record["entries"] = record["entries"] + decided["claims"]
        _write_record(record)
    return decided["claims"]


def absent(path):
    """
    ``path`` and the directories on the way to it that do not exist yet
    (deepest first); [] when it exists. For what is created outside the
    claim (the preflight's evidence, written before the claim runs).

    CLI Example:

    .. code-block:: bash

        salt-call --local litellm_owner.absent /srv/litellm-evidence
    """
    if not path or _path_fact(path):
        return []
    found = [os.path.normpath(path)]
    for parent in _plan("ancestors", path):
        if _path_fact(parent):
            break
        found.append(parent)
    return found


def note(paths, key):
    """
    Record directories the formula has just created (``absent`` before, they
    exist now), the first as one it writes its files into, the others as the
    directories on the way; the ones that still do not exist are skipped.

    CLI Example:

    .. code-block:: bash

        salt-call --local litellm_owner.note "[/srv/litellm-evidence]" preflight:evidence_dir
    """
    made = [p for p in paths if os.path.isdir(p)]
    if not made:
        return []
    record = _read_record() or {"format": RECORD_FORMAT, "entries": []}
    known = {_plan("identity", e) for e in record["entries"]}
    new = [
        {"kind": "store" if position == 0 else "parent", "key": key, "job": "owner", "path": path, "recorded": _now()}
        for position, path in enumerate(made)
        if ("path", path) not in known
    ]
    if new:
        record["entries"] += new
        _write_record(record)
    return new


def show():
    """
    What the formula created on this host and will remove on ``litellm.clean``.

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_owner.show
    """
    record = _read_record()
    if record is None:
        return {"record": None, "comment": f"no record of the formula on this host ({_record()}): it owns nothing here"}
    return {"record": _record(), "entries": [dict(e, label=_plan("label", e)) for e in record["entries"]]}


def _remove_path(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    else:
        return False
    return True


def _systemd_running():
    return os.path.isdir("/run/systemd/system")


def _remove_unit(entry):
    if _systemd_running():
        __salt__["service.stop"](entry["name"])
        __salt__["service.disable"](entry["name"])
    return _remove_path(entry["path"])


def _remove_account(entry):
    if not _account_fact(entry["kind"], entry["name"]):
        return False
    delete = __salt__["user.delete" if entry["kind"] == "user" else "group.delete"]
    if not delete(entry["name"]):
        raise RuntimeError(f"could not delete {entry['kind']} {entry['name']}")
    return True


def _remove_pkg(entry):
    if not _pkg_fact(entry["name"]):
        return False
    if _systemd_running():
        __salt__["service.stop"](entry["name"])
    __salt__["pkg.purge"](entry["name"])
    return True


def _remove_one(entry):
    """Remove one entry; True when something was there."""
    kind = entry["kind"]
    if kind == "unit":
        return _remove_unit(entry)
    if kind in ("user", "group"):
        return _remove_account(entry)
    if kind == "pkg":
        return _remove_pkg(entry)
    if kind == "parent":
        try:
            os.rmdir(entry["path"])
        except FileNotFoundError:
            return False
        except OSError:
            raise RuntimeError(
                f"{entry['path']} was left: it is not empty (it holds files the formula did not put there)"
            ) from None
        return True
    return _remove_path(entry["path"])


def _after_removal(removed):
    kinds = {e["kind"] for e in removed}
    if "unit" in kinds and _systemd_running():
        __salt__["service.systemctl_reload"]()
    if any(e["kind"] == "file" and e["key"].startswith("ca_certificates:") for e in removed):
        __salt__["cmd.run_all"](["update-ca-certificates", "--fresh"], python_shell=False)


def remove(jobs, test=False):
    """
    Remove what the record lists for ``jobs`` (service, config, package,
    owner, redis), whatever pillar says now, and drop it from the record; the
    owner job last removes the record itself. Returns ``{"record", "removed",
    "left", "errors"}`` (labels); with ``test`` only what would be removed.

    CLI Example:

    .. code-block:: bash

        salt-call --local litellm_owner.remove '[service, config, package, owner]' test=True
    """
    record = _read_record()
    if record is None:
        return {"record": None, "removed": [], "left": [], "errors": []}
    todo = [e for e in _plan("removal_order", record["entries"], jobs) if e["kind"] != "parent"]
    if test:
        parents = _plan("parents_after", record["entries"], todo, jobs)
        return {"record": _record(), "removed": [_plan("label", e) for e in todo + parents], "left": [], "errors": []}
    removed, errors = [], []
    for entry in todo:
        try:
            if _remove_one(entry):
                removed.append(entry)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(f"{_plan('label', entry)}: {exc}")
            continue
        record["entries"].remove(entry)
        _write_record(record)
    _after_removal(removed)
    left = []
    if all(e["kind"] == "parent" for e in record["entries"]):
        # Nothing but the directories on the way is left: the record goes, then they do.
        parents = _plan("removal_order", record["entries"], ["owner"])
        os.unlink(_record())
        for entry in parents:
            try:
                if _remove_one(entry):
                    removed.append(entry)
            except RuntimeError as exc:
                left.append(str(exc))
    return {"record": _record(), "removed": [_plan("label", e) for e in removed], "left": left, "errors": errors}

"""
What the formula owns, decided without touching the host: which layout
entries it may claim (absent now, with the directories on the way), which
would be a takeover (the refusal names the pillar key and what was found),
the order a clean removes them in, and what a unit file of a formula version
from before the record says that deploy created. ``litellm_owner`` reads the
host and acts.
"""

import os

# Removal order inside one job; parents (directories made on the way to one
# of the formula's paths) go last, deepest first, and only when empty.
KIND_ORDER = ("unit", "runtime", "venv", "dir", "store", "file", "user", "group", "pkg", "parent")
# The order litellm.clean removes the jobs in (redis is litellm.redis.clean's own).
JOB_ORDER = ("service", "config", "package", "owner")
MANAGED_HEADER = "# Managed by Salt (litellm formula)"
ADVICE = {
    "pkg": "leave the key empty to use the one that is there",
    "": "choose another value",
}
WHAT = {
    "unit": "a unit",
    "user": "a user",
    "group": "a group",
    "pkg": "a package",
}


def identity(entry):
    """What an entry is on the host: ('path', '/etc/litellm'), ('user', 'litellm'), ..."""
    if entry["kind"] in ("user", "group", "pkg"):
        return (entry["kind"], entry["name"])
    if entry["kind"] == "unit":
        return ("unit", entry["name"])
    return ("path", os.path.normpath(entry["path"]))


def ancestors(path):
    """'/opt/litellm/venv' -> ['/opt/litellm', '/opt'] (never '/')."""
    found = []
    parent = os.path.dirname(os.path.normpath(path))
    while parent not in ("/", ""):
        found.append(parent)
        parent = os.path.dirname(parent)
    return found


def label(entry):
    if entry["kind"] in ("user", "group", "pkg"):
        return f"{'package' if entry['kind'] == 'pkg' else entry['kind']} {entry['name']!r}"
    if entry["kind"] == "unit":
        return entry["name"]
    return os.path.normpath(entry["path"])


def refusal(entry, found, record):
    key = f"litellm:{entry['key']}" if entry.get("key") else entry.get("what", "the formula")
    what = WHAT.get(entry["kind"], "a path")
    of = f" ({entry['what']})" if entry.get("what") and entry.get("key") else ""
    return (
        f"{key}: {label(entry)}{of} already exists on this host ({found}) and is not in the formula's record "
        f"({record}); the formula never takes over {what} it did not create: {ADVICE.get(entry['kind'], ADVICE[''])}"
    )


def plan(entries, record_entries, facts, stamp="", record="the record"):
    """
    Decide, for the layout ``entries`` (litellm_config.plan_layout), which are
    already the formula's, which it may claim (absent now, with the absent
    directories on the way to them), and which would be a takeover.

    ``facts`` maps an identity to what exists there (a short description) or
    None. Returns ``(claims, problems)``.
    """
    owned = {identity(e) for e in record_entries}
    claims, problems, claimed = [], [], set(owned)
    for entry in entries:
        ident = identity(entry)
        found = facts.get(ident)
        if entry["kind"] == "runtime":
            unit = ("unit", entry.get("unit") or f"{os.path.basename(entry['path'])}.service")
            if found and unit not in owned:
                problems.append(refusal(entry, found, record))
            continue
        if ident in owned:
            continue
        if found:
            if entry["kind"] != "store":  # the formula's files go into an existing one: not a takeover
                problems.append(refusal(entry, found, record))
            continue
        if ident in claimed:
            continue
        claimed.add(ident)
        claims.append(dict(entry, recorded=stamp))
        if ident[0] != "path" or entry.get("parents") is False:
            continue
        for parent in ancestors(ident[1]):
            if facts.get(("path", parent)) or ("path", parent) in claimed:
                break
            claimed.add(("path", parent))
            claims.append({"kind": "parent", "key": entry.get("key"), "job": "owner", "path": parent,
                           "recorded": stamp})
    return claims, problems


def removal_order(record_entries, jobs):
    """The record's entries of ``jobs``, in the order they are removed."""
    chosen = [e for e in record_entries if e.get("job") in jobs]
    return sorted(
        chosen,
        key=lambda e: (KIND_ORDER.index(e["kind"]) if e["kind"] in KIND_ORDER else len(KIND_ORDER),
                       -len(e.get("path") or "") if e["kind"] == "parent" else 0,
                       # a socket before its service: a connection could start the stopped service again
                       0 if str(e.get("name", "")).endswith(".socket") else 1),
    )


def managed_header():
    """The first line of every unit file the formula writes."""
    return MANAGED_HEADER


def legacy_entries(unit_text, unit_path):
    """
    A unit file written by a formula version from before the record (it
    carries the formula's header): what that deploy created, read from the
    unit itself (user, group, config dir, venv, systemd's directories).
    """
    if not unit_text.startswith(MANAGED_HEADER):
        return []
    fields = {}
    for line in unit_text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    name = os.path.basename(unit_path)[: -len(".service")]
    entries = [{"kind": "unit", "key": "service:name", "job": "service", "path": unit_path, "name": f"{name}.service"}]
    for kind in ("User", "Group"):
        if fields.get(kind):
            entries.append({"kind": kind.lower(), "key": f"service:{kind.lower()}", "job": "package",
                            "name": fields[kind], "path": ""})
    if fields.get("EnvironmentFile", "").startswith("/"):
        entries.append({"kind": "dir", "key": "config_dir", "job": "config",
                        "path": os.path.dirname(fields["EnvironmentFile"].lstrip("-"))})
    if fields.get("Requires") == f"{name}.socket":  # the zero-downtime unit's socket (kept only if it is ours)
        entries.append({"kind": "unit", "key": "service:name", "job": "service",
                        "path": os.path.join(os.path.dirname(unit_path), f"{name}.socket"), "name": f"{name}.socket"})
    program = fields.get("ExecStart", "").split(" ")[0]
    if program.endswith(("/bin/litellm", "/bin/python")):  # the CLI, or uvicorn under the launcher
        venv = os.path.dirname(os.path.dirname(program))
        entries.append({"kind": "venv", "key": "venv", "job": "package", "path": venv})
        entries.append({"kind": "dir", "key": "venv", "job": "package", "path": f"{venv}-releases"})
    for field, root in (("StateDirectory", "/var/lib"), ("CacheDirectory", "/var/cache"), ("RuntimeDirectory", "/run")):
        if fields.get(field):
            entries.append({"kind": "dir", "key": "service:name", "job": "package",
                            "path": f"{root}/{fields[field]}"})
    return entries




def parents_after(record_entries, removing, jobs):
    """
    The directories on the way that go too once ``removing`` (entries of
    ``jobs``) is gone: all of them when nothing else would be left, counting
    the jobs litellm.clean runs before the last of ``jobs`` as gone.
    """
    last = max((JOB_ORDER.index(j) for j in jobs if j in JOB_ORDER), default=-1)
    rest = [e for e in record_entries if e not in removing and not (
        e.get("job") in JOB_ORDER and JOB_ORDER.index(e["job"]) < last)]
    return removal_order(rest, ["owner"]) if all(e["kind"] == "parent" for e in rest) else []

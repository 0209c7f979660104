"""
Ownership: what the formula creates on a host (``plan_layout``), and where
it may (``dedicated_dir_problem``, ``check_ownership``). ``litellm.clean``
removes what the formula created, so none of its paths may be a directory of
the system or of another program, and none may overlap another (removing one
would remove the other). Pure functions; nothing here asks the host.
"""

import os

# The formula never writes below these.
FORBIDDEN_TREES = ("/boot", "/dev", "/proc", "/run", "/sys", "/home", "/root", "/tmp", "/var/tmp")
# System directories: never one of the formula's paths, and nothing is created
# inside them, except in DEDICATED_PARENTS, which hold one directory per program.
SYSTEM_DIRS = frozenset(
    "/ /bin /boot /dev /etc /home /lib /lib32 /lib64 /libx32 /media /mnt /opt /proc /root /run /sbin /srv /sys"
    " /tmp /usr /var /snap"
    " /usr/bin /usr/sbin /usr/lib /usr/lib32 /usr/lib64 /usr/libexec /usr/include /usr/share /usr/src /usr/games"
    " /usr/local /usr/local/bin /usr/local/sbin /usr/local/lib /usr/local/share /usr/local/include"
    " /usr/local/etc /usr/local/src /usr/local/games /usr/local/man /usr/local/share/ca-certificates"
    " /var/lib /var/cache /var/log /var/spool /var/tmp /var/mail /var/opt /var/run /var/lock /var/backups"
    " /var/local /var/www /var/lib/private /var/cache/private /var/lib/systemd /var/lib/dpkg /var/lib/apt"
    " /etc/systemd /etc/systemd/system /etc/ssh /etc/ssl /etc/default /etc/pam.d /etc/security /etc/sudoers.d"
    " /etc/apt /etc/cron.d /etc/network /etc/init.d /etc/profile.d /etc/sysctl.d /etc/alternatives"
    " /etc/ca-certificates /etc/salt /etc/redis /etc/dbus-1 /etc/logrotate.d /etc/modprobe.d /etc/udev"
    " /lib/systemd /usr/lib/systemd /usr/lib/systemd/system /lib/systemd/system".split()
)
DEDICATED_PARENTS = frozenset(
    ("/", "/etc", "/opt", "/srv", "/usr/local", "/usr/local/lib", "/usr/local/share", "/var/lib", "/var/cache",
     "/var/opt", "/var/log")
)
# Where the unit file and the site CAs may go (the only places systemd and
# update-ca-certificates read them from that are meant for the admin).
UNIT_DIRS = ("/etc/systemd/system", "/usr/local/lib/systemd/system")
CA_CERTIFICATES_DIRS = ("/usr/local/share/ca-certificates",)
# The formula's own directories (the record of what it owns, known-good
# releases, evidence; the installer's cache).
FORMULA_STORE = "/var/lib/litellm-salt"
FORMULA_CACHE = "/var/cache/litellm-salt"
RESERVED_ACCOUNTS = frozenset(("root", "nobody", "nogroup"))


def is_under(path, parent):
    return parent == "/" or path == parent or path.startswith(parent + "/")


def dedicated_dir_problem(path):
    """Why the absolute ``path`` cannot be one of the formula's own directories (SYSTEM_DIRS, FORBIDDEN_TREES,
    DEDICATED_PARENTS say where it may be), or None."""
    normal = os.path.normpath(path)
    if normal != path.rstrip("/") or path.startswith("//"):
        return f"{path!r} is not a normalized path (no '.', '..' or '//'); write it as {normal!r}"
    if normal in SYSTEM_DIRS:
        return f"{normal} is a system directory; use a dedicated one like /opt/litellm/venv or /etc/litellm"
    for tree in FORBIDDEN_TREES:
        if is_under(normal, tree):
            return f"{normal} is below {tree}, where the formula never creates anything"
    nearest = max((d for d in SYSTEM_DIRS if is_under(normal, d)), key=len)
    if nearest not in DEDICATED_PARENTS:
        return f"{normal} is inside the system directory {nearest}; use a dedicated one like /opt/litellm/venv"
    return None


def _mapping(settings, key):
    return settings.get(key) if isinstance(settings.get(key), dict) else {}


def _absolute(value):
    return value if isinstance(value, str) and value.startswith("/") else ""


def _service_entries(add, service, unit_dir):
    name = service.get("name") if isinstance(service.get("name"), str) else ""
    if name:
        # parents=False: it goes into a directory of the system's, never one of the formula's
        add("unit", "service:name", "service", f"{unit_dir}/{name}.socket", name=f"{name}.socket", parents=False)
        add("unit", "service:name", "service", f"{unit_dir}/{name}.service", name=f"{name}.service", parents=False)
        add("dir", "service:name", "package", f"/var/lib/{name}", what="systemd's StateDirectory")
        add("dir", "service:name", "package", f"/var/cache/{name}", what="systemd's CacheDirectory")
        add("runtime", "service:name", "service", f"/run/{name}", what="systemd's RuntimeDirectory")
    for key in ("user", "group"):
        if isinstance(service.get(key), str) and service.get(key):
            add(key, f"service:{key}", "package", name=service[key])


def _metrics_entries(add, settings, unit_dir):
    name = _mapping(settings, "service").get("name")
    if _mapping(settings, "metrics").get("enabled") is True and isinstance(name, str) and name:
        add("unit", "metrics:enabled", "service", f"{unit_dir}/{name}-metrics.service", name=f"{name}-metrics.service",
            parents=False)


def plan_layout(settings):
    """
    What the formula creates on a host for ``settings`` (the merged map):
    one entry per path, unit, user and group, each with the pillar key that
    names it (None for the formula's fixed directories) and the job (SLS)
    that removes it. Pure; tolerates bad values (validation reports them).
    """
    settings = settings if isinstance(settings, dict) else {}
    lookup = _mapping(settings, "lookup")
    entries = []

    def add(kind, key, job, path="", **extra):
        entries.append(dict(kind=kind, key=key, job=job, path=path, **extra))

    _service_entries(add, _mapping(settings, "service"), _absolute(lookup.get("systemd_unit_dir")) or UNIT_DIRS[0])
    if _absolute(settings.get("config_dir")):
        add("dir", "config_dir", "config", _absolute(settings["config_dir"]))
        if _mapping(settings, "tls").get("enabled") is True:
            for part, name in (("certificate", "tls.crt"), ("key", "tls.key")):
                add("file", f"tls:{part}", "config", f"{_absolute(settings['config_dir'])}/{name}", parents=False)
    _metrics_entries(add, settings, _absolute(lookup.get("systemd_unit_dir")) or UNIT_DIRS[0])
    venv = _absolute(settings.get("venv"))
    if venv:
        # home: the venv's own parent (/opt/litellm), made for it, unless it is a shared one (/opt)
        home = os.path.dirname(os.path.normpath(venv))
        add("venv", "venv", "package", venv, home=home if not dedicated_dir_problem(home) else "")
        add("dir", "venv", "package", venv.rstrip("/") + "-releases", what="its releases")
    # "store": the formula adds its own files to it; an existing one is used, not taken over.
    add("store", None, "package", FORMULA_CACHE, what="the formula's installer cache")
    add("dir", None, "owner", f"{FORMULA_STORE}/known-good", what="the formula's known-good releases")
    for section in ("preflight", "smoke"):
        evidence = _absolute(_mapping(settings, section).get("evidence_dir"))
        if evidence:
            add("store", f"{section}:evidence_dir", "owner", evidence)
    ca_dir = _absolute(lookup.get("ca_certificates_dir")) or CA_CERTIFICATES_DIRS[0]
    for ca_name in sorted(map(str, _mapping(settings, "ca_certificates"))):
        add("file", f"ca_certificates:{ca_name}", "package", f"{ca_dir}/litellm-salt-{ca_name}.crt", parents=False)
    return entries


# --- validation ------------------------------------------------------------------------


def _check_lookup_paths(utils, errors, lookup):
    v = utils.litellm_validate
    if not isinstance(lookup, dict):
        errors.append(f"litellm:lookup: must be a mapping, got {v.describe(lookup)}")
        return
    for key, allowed in (("systemd_unit_dir", UNIT_DIRS), ("ca_certificates_dir", CA_CERTIFICATES_DIRS)):
        value = lookup.get(key, allowed[0])
        if value not in allowed:
            errors.append(f"litellm:lookup:{key}: must be one of {', '.join(allowed)}, got {v.describe(value)}")
    for key in ("python", "nologin_shell"):
        if key in lookup:
            v.check_path(errors, f"lookup:{key}", lookup[key])


def _overlap_message(inner, outer):
    of = f"litellm:{outer['key']}" + (f" ({outer['what']})" if outer.get("what") else "")
    if outer["key"] is None:
        of = outer["what"]
    return (
        f"litellm:{inner['key']}: {os.path.normpath(inner['path'])} overlaps {os.path.normpath(outer['path'])}"
        f" of {of}; the formula's paths must not overlap (removing one would remove the other)"
    )


def _check_overlaps(errors, entries):
    dirs = [
        e for e in entries
        if e["kind"] in ("dir", "venv", "runtime", "store") and e["path"] and not dedicated_dir_problem(e["path"])
    ]
    reported = set()
    for position, first in enumerate(dirs):
        for second in dirs[position + 1 :]:
            a, b = os.path.normpath(first["path"]), os.path.normpath(second["path"])
            kinds = {first["kind"], second["kind"]}
            if "store" in kinds and (kinds == {"store"} or is_under(a, FORMULA_STORE) and is_under(b, FORMULA_STORE)):
                continue  # evidence and caches may share a directory, and live in the formula's store
            if not (is_under(a, b) or is_under(b, a)):
                continue
            # Blame a pillar key: the inner path, unless it is one of the formula's fixed ones.
            inner, outer = (first, second) if len(a) >= len(b) else (second, first)
            if inner["key"] is None:
                inner, outer = outer, inner
            if (inner["key"], outer["key"]) in reported:
                continue
            reported.add((inner["key"], outer["key"]))
            errors.append(_overlap_message(inner, outer))


def check_ownership(utils, errors, settings):
    """Paths, unit, user and group the formula may create, before the host is asked."""
    for key in ("venv", "config_dir", "preflight:evidence_dir", "smoke:evidence_dir"):
        section, _, field = key.rpartition(":")
        holder = settings.get(section) if section else settings
        value = holder.get(field, "") if isinstance(holder, dict) else ""
        if isinstance(value, str) and value.startswith("/") and not any(ch.isspace() for ch in value):
            problem = dedicated_dir_problem(value)
            if problem:
                errors.append(f"litellm:{key}: {problem}")
    _check_lookup_paths(utils, errors, settings.get("lookup", {}))
    service = _mapping(settings, "service")
    for key in ("user", "group"):
        if service.get(key) in RESERVED_ACCOUNTS - ({"root"} if key == "user" else set()):
            errors.append(
                f"litellm:service:{key}: {service[key]!r} is a system account; the formula runs the service "
                "as an account of its own that it creates"
            )
    _check_overlaps(errors, plan_layout(settings))

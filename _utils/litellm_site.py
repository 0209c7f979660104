"""
A new site, the seed's inventory step (``scripts/new-site``): the site's
answers (gateway host, backends, models) become a roster entry and the
site's pillar ``litellm:``; both are checked before anything is written,
with the same named-key errors as ``litellm_config.validate``. Pure
functions: the script does the files, GPG and the preflight.
"""

import re
import secrets

import salt.utils.dictupdate

ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
#: the keys of litellm: the site states; every other one keeps its default (pillar.example)
SITE_KEYS = ("bind_host", "bind_port", "base_url", "backends", "models", "ca_bundle", "package_index")


def parse_model(text):
    """``alias=ollama_model`` (or just ``ollama_model``, the alias made from it) -> a litellm:models entry."""
    alias, sep, model = str(text).partition("=")
    if not sep:
        model, alias = alias, re.sub(r"[^A-Za-z0-9._-]", "-", alias)
    return {"name": alias.strip(), "provider": "ollama", "model": model.strip()}


def site_pillar(answers):
    """The site's ``litellm:`` mapping: only the keys the site states, in a stable order."""
    pillar = {}
    for key in SITE_KEYS:
        value = answers.get(key)
        if value not in (None, "", [], {}):
            pillar[key] = value
    return pillar


def pillar_problems(utils, defaults, pillar):
    """The validation errors of defaults + ``pillar`` by pillar key (a throw-away master key stands in
    for the real one, which is generated and GPG-encrypted apart)."""
    stand_in = "sk-" + secrets.token_hex(24)
    merged = salt.utils.dictupdate.merge(
        dict(defaults), dict(pillar, master_key=stand_in), strategy="smart", merge_lists=False
    )
    return list(utils.litellm_validate.check_settings(utils, merged))


def roster_entry(host, user="root", port=22, priv=None, sudo=False, extra=None):
    """One roster entry; no ``ssh_options`` of its own, so it keeps the master's (ControlMaster)."""
    entry = {"host": host, "port": int(port), "user": user}
    if priv:
        entry["priv"] = str(priv)
    if sudo:
        entry["sudo"] = True
    entry.update(extra or {})
    return entry


def keep_control_master(entry, master_ssh_options):
    """An entry with its own ``ssh_options`` gets the master's ControlMaster options too (Salt's rule:
    the entry's replace the master's)."""
    own = entry.get("ssh_options")
    if not own:
        return entry
    names = {str(option).split("=", 1)[0].strip().lower() for option in own}
    added = [o for o in master_ssh_options or [] if str(o).split("=", 1)[0].strip().lower() not in names]
    return dict(entry, ssh_options=list(own) + added)


def roster_problems(alias, host, roster):
    """Errors of the roster entry, named like validation's (``roster:<alias>: ...``)."""
    problems = []
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        problems.append(f"roster:{alias}: an alias is letters, digits, '.', '_' or '-' (at most 63)")
    elif alias in (roster or {}):
        problems.append(f"roster:{alias}: duplicate alias: the roster already has it (pick another name)")
    if not isinstance(host, str) or not host.strip():
        problems.append(f"roster:{alias}:host: the gateway host is required (--host)")
    return problems

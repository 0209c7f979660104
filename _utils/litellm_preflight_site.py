"""
Preflight site checks, each skipped unless enabled under
``litellm:preflight:site``: ``site_realm`` (joined to a realm or domain),
``site_sudo`` (a sudoers rule for the admin group), ``site_netplan`` (exactly
one netplan file) and ``site_resolver`` (name servers, through
systemd-resolved's stub too). Paths are module-level so that tests can point
them elsewhere.
"""

import glob
import os
import re
import shutil

SUDOERS = "/etc/sudoers"
SUDOERS_D = "/etc/sudoers.d"
NETPLAN_DIR = "/etc/netplan"
RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
RESOLVED_STUBS = ("127.0.0.53", "127.0.0.54")
KRB5_CONF = "/etc/krb5.conf"
KRB5_KEYTAB = "/etc/krb5.keytab"
SSSD_CONF = "/etc/sssd/sssd.conf"


def read(path, limit=1 << 20):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(limit)


def nameservers(text):
    """The ``nameserver`` addresses of a resolv.conf text, in order."""
    found = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return found


def _sudoers_group_forms(group):
    escaped = re.sub(r"([ ,:=\\])", r"\\\1", group)
    return {f"%{group}", f"%{escaped}", f'%"{group}"', f"%:{group}", f"%:{escaped}", f'%:"{group}"'}


def sudoers_rules_for_group(text, group):
    """The sudoers lines of ``text`` that give ``%group`` a rule (comments skipped)."""
    forms = _sudoers_group_forms(group)
    rules = []
    joined = re.sub(r"\\\n", " ", text)  # continuation lines
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for form in forms:
            if line.startswith(form) and (len(line) == len(form) or line[len(form)] in " \t,"):
                rules.append(line)
                break
    return rules


def sudoers_include_name_ok(name):
    """sudo skips files of an includedir whose name has a '.' or ends with '~'."""
    return "." not in name and not name.endswith("~")


def _option(ctx, settings, name):
    return ctx.utils.litellm_settings.pf_get(settings, "site", name)


def _realm_list(ctx):
    """(status, detail) from ``realm list``, or None when it cannot tell."""
    if not shutil.which("realm"):
        return None
    answer = ctx.run(["realm", "list", "--name-only"], timeout=10)
    if answer.get("retcode") != 0:
        return None
    realms = [line.strip() for line in str(answer.get("stdout") or "").splitlines() if line.strip()]
    if realms:
        return "pass", f"joined to {', '.join(realms)} (realm list)"
    return "fail", "realm list: not joined to any realm or domain"


def _config_value(path, pattern):
    """The first match of ``pattern`` in the file at ``path`` (None: no match, or unreadable)."""
    try:
        match = re.search(pattern, read(path), re.M)
    except OSError:
        return None
    return match.group(1) if match else None


def _realm_files():
    """(evidence, domains) from the Kerberos and sssd configuration."""
    evidence, domains = [], []
    if os.path.exists(KRB5_CONF):
        realm = _config_value(KRB5_CONF, r"^\s*default_realm\s*=\s*(\S+)")
        evidence.append(f"{KRB5_CONF} default_realm {realm}" if realm else f"{KRB5_CONF} present")
    if os.path.exists(SSSD_CONF):
        listed = _config_value(SSSD_CONF, r"^\s*domains\s*=\s*(.+)$")
        domains = [d.strip() for d in listed.split(",")] if listed else []
        evidence.append(f"{SSSD_CONF} domains {', '.join(domains)}" if domains else f"{SSSD_CONF} present")
    if os.path.exists(KRB5_KEYTAB):
        evidence.append(f"{KRB5_KEYTAB} present")
    return evidence, domains


def check_site_realm(ctx, settings):
    if _option(ctx, settings, "realm") is not True:
        return "skip", "not enabled (litellm:preflight:site:realm)"
    answer = _realm_list(ctx)
    if answer:
        return answer
    evidence, domains = _realm_files()
    if not evidence:
        return "skip", f"no realm tool, {KRB5_CONF} or {SSSD_CONF}: domain membership cannot be told"
    if domains or os.path.exists(KRB5_KEYTAB) or os.path.exists(SSSD_CONF):
        return "pass", "; ".join(evidence)
    return "warn", "; ".join(evidence) + " (Kerberos client config only: no host keytab, no sssd)"


def check_site_sudo(ctx, settings):
    group = _option(ctx, settings, "admin_sudo_group")
    if not group:
        return "skip", "not enabled (litellm:preflight:site:admin_sudo_group)"
    files = [SUDOERS]
    try:
        files += sorted(
            os.path.join(SUDOERS_D, name) for name in os.listdir(SUDOERS_D) if sudoers_include_name_ok(name)
        )
    except OSError:
        pass
    unreadable = []
    for path in files:
        try:
            rules = sudoers_rules_for_group(read(path), group)
        except PermissionError:
            unreadable.append(path)
            continue
        except OSError:
            continue
        if rules:
            return "pass", f"{path}: {rules[0]}"
    if unreadable:
        return "warn", f"no rule for %{group} found; cannot read {', '.join(unreadable)} (not root?)"
    return "fail", f"no sudoers rule for %{group} in {SUDOERS} or {SUDOERS_D}"


def check_site_netplan(ctx, settings):
    if _option(ctx, settings, "netplan_single_file") is not True:
        return "skip", "not enabled (litellm:preflight:site:netplan_single_file)"
    if not os.path.isdir(NETPLAN_DIR):
        return "fail", f"{NETPLAN_DIR} does not exist"
    files = sorted(glob.glob(os.path.join(NETPLAN_DIR, "*.yaml")))
    if len(files) == 1:
        return "pass", f"one netplan file: {files[0]}"
    if not files:
        return "fail", f"no *.yaml in {NETPLAN_DIR}"
    return "fail", f"{len(files)} netplan files (one expected): {', '.join(files)}"


def check_site_resolver(ctx, settings):
    if _option(ctx, settings, "resolver") is not True:
        return "skip", "not enabled (litellm:preflight:site:resolver)"
    try:
        servers = nameservers(read(RESOLV_CONF))
    except OSError as exc:
        return "fail", f"{RESOLV_CONF}: {exc.strerror or exc}"
    if not servers:
        return "fail", f"{RESOLV_CONF} lists no nameserver"
    if not all(server in RESOLVED_STUBS for server in servers):
        return "pass", f"nameservers {', '.join(servers)}"
    stub = f"systemd-resolved stub {', '.join(servers)}"
    try:
        upstream = nameservers(read(RESOLVED_UPSTREAM))
    except OSError:
        return "pass", f"{stub} (upstream servers not readable)"
    if not upstream:
        return "fail", f"{stub} with no upstream DNS server"
    return "pass", f"{stub}; upstream {', '.join(upstream)}"

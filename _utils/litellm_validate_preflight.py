"""
Validation of ``litellm:preflight``, the settings of the read-only go/no-go
checks (``litellm_preflight``): thresholds, the evidence bundle, expected DNS
answers and the site's checks. ``litellm_validate.check_settings`` runs it
with every other section.
"""

import ipaddress

PREFLIGHT_KEYS = {
    "enabled",
    "min_disk_gib",
    "min_memory_mib",
    "evidence_dir",
    "keep_evidence",
    "offline_wheelhouse",
    "dns",
    "site",
}
PREFLIGHT_SITE_KEYS = {"realm": bool, "admin_sudo_group": str, "netplan_single_file": bool, "resolver": bool}


def _check_dns(utils, errors, dns):
    key = "litellm:preflight:dns"
    if not isinstance(dns, dict):
        errors.append(f"{key}: must be a mapping with expected and ptr")
        return
    utils.litellm_validate.unknown_keys(errors, key, dns, {"expected", "ptr"})
    if not isinstance(dns.get("ptr", False), bool):
        errors.append(f"{key}:ptr: must be true or false, got {dns.get('ptr')!r}")
    expected = dns.get("expected", {}) or {}
    if not isinstance(expected, dict):
        errors.append(f"{key}:expected: must be a mapping of host: [addresses]")
        return
    for host, addresses in expected.items():
        if not isinstance(addresses, list) or not addresses:
            errors.append(f"{key}:expected:{host}: must be a non-empty list of IP addresses")
            continue
        for address in addresses:
            try:
                ipaddress.ip_address(str(address))
            except ValueError:
                errors.append(f"{key}:expected:{host}: {address!r} is not an IP address")


def _check_site(errors, site):
    key = "litellm:preflight:site"
    if not isinstance(site, dict):
        errors.append(f"{key}: must be a mapping")
        return
    for name, value in site.items():
        if name not in PREFLIGHT_SITE_KEYS:
            errors.append(f"{key}: unknown key {name!r}; allowed: {', '.join(PREFLIGHT_SITE_KEYS)}")
        elif value not in (None, "", False) and not isinstance(value, PREFLIGHT_SITE_KEYS[name]):
            errors.append(f"{key}:{name}: must be a {PREFLIGHT_SITE_KEYS[name].__name__}, got {value!r}")


def check_preflight(utils, errors, preflight):
    """litellm:preflight (not a mapping: check_settings says so)."""
    if not isinstance(preflight, dict):
        return
    v = utils.litellm_validate
    key = "litellm:preflight"
    v.unknown_keys(errors, key, preflight, PREFLIGHT_KEYS)
    for name in ("min_disk_gib", "min_memory_mib"):
        if name in preflight and (not v.is_number(preflight[name]) or preflight[name] < 0):
            errors.append(f"{key}:{name}: must be a number >= 0, got {preflight[name]!r}")
    keep = preflight.get("keep_evidence")
    if keep not in ("", None) and (not v.is_int(keep) or keep < 1):
        errors.append(f"{key}:keep_evidence: must be an integer >= 1, got {keep!r}")
    evidence = preflight.get("evidence_dir")
    if evidence not in ("", None) and (not isinstance(evidence, str) or not evidence.startswith("/")):
        errors.append(f"{key}:evidence_dir: must be an absolute path, got {evidence!r}")
    wheelhouse = preflight.get("offline_wheelhouse")
    if wheelhouse not in ("", None) and not isinstance(wheelhouse, (str, bool)):
        errors.append(f"{key}:offline_wheelhouse: must be a path (or true), got {wheelhouse!r}")
    if preflight.get("dns") not in (None, ""):
        _check_dns(utils, errors, preflight["dns"])
    if preflight.get("site") not in (None, ""):
        _check_site(errors, preflight["site"])

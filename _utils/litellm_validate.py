"""
Validation of the formula's settings: the primitives every section's checks
use (``describe``, ``check_int``, ``check_number``, ``url_problem``,
``check_host``, ``check_path``, ``unknown_keys``) and ``check_settings``,
which runs them all in a fixed order (tests rely on it).

The sections live beside this one: ``litellm_validate_sections`` (backends,
models, service, smoke, rollback, CA certificates, the free-form sections),
``litellm_validate_secrets`` (master key, Redis), ``litellm_validate_preflight``,
``litellm_validate_tls`` (the listener's TLS, the metrics endpoint),
``litellm_keys`` (client keys), ``litellm_validate_capacity`` and ``litellm_layout`` (what the formula
creates, and where it may). Every check is ``check_<x>(utils, errors, ...)``
and appends messages naming the pillar key; none echoes a secret.
"""

import ipaddress
import re
import urllib.parse

ROUTING_STRATEGIES = (
    "simple-shuffle",
    "least-busy",
    "usage-based-routing",
    "usage-based-routing-v2",
    "latency-based-routing",
    "cost-based-routing",
    "provider-budget-routing",
)
TOP_LEVEL_KEYS = {
    "bind_host",
    "bind_port",
    "base_url",
    "backends",
    "models",
    "request_timeout",
    "max_retries",
    "routing_strategy",
    "allowed_fails",
    "cooldown_time",
    "health_check_interval",
    "master_key",
    "version",
    "venv",
    "package_index",
    "ca_bundle",
    "ca_certificates",
    "config_dir",
    "service",
    "litellm_settings",
    "router_settings",
    "general_settings",
    "preflight",
    "smoke",
    "rollback",
    "lookup",
    "redis",
    "keys",
    "capacity",
    "tls",
    "metrics",
}
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+([.-]?(post|rc|a|b)\d+)?$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$)({_LABEL})(\.{_LABEL})*$")


# --- primitives ----------------------------------------------------------------------


def describe(value):
    """Short description of a bad value for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(errors, key, value, low, high):
    if not is_int(value) or not low <= value <= high:
        errors.append(f"litellm:{key}: must be an integer from {low} to {high}, got {describe(value)}")


def check_number(errors, key, value, low, high):
    if not is_number(value) or not low <= value <= high:
        errors.append(f"litellm:{key}: must be a number from {low} to {high}, got {describe(value)}")


def unknown_keys(errors, where, value, allowed):
    """The keys of the mapping ``value`` that are not ``allowed``, reported at ``where`` with the allowed ones."""
    unknown = sorted(map(str, set(value) - set(allowed)))
    if unknown:
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def url_problem(value, allow_path=False):
    """Why ``value`` is not an http(s) URL, or None when it is one."""
    if not isinstance(value, str) or not value:
        return f"must be an http:// or https:// URL, got {describe(value)}"
    if any(ch.isspace() for ch in value):
        return "must not contain white space"
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https"):
        return f"must start with http:// or https://, got {value!r}"
    if not parsed.hostname:
        return f"has no host name: {value!r}"
    try:
        parsed.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        return f"has an invalid port: {value!r}"
    if parsed.query or parsed.fragment:
        return f"must not have a query or fragment: {value!r}"
    if not allow_path and parsed.path not in ("", "/"):
        return f"must not have a path (Ollama serves /api/* at its root), got {parsed.path!r}"
    return None


def check_host(errors, key, value):
    if not isinstance(value, str) or not value:
        errors.append(f"litellm:{key}: must be an IP address or host name, got {describe(value)}")
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not HOSTNAME_RE.match(value):
            errors.append(f"litellm:{key}: {value!r} is neither an IP address nor a valid host name")


def check_path(errors, key, value, allow_empty=False):
    if allow_empty and value == "":
        return
    if not isinstance(value, str) or not value.startswith("/") or any(ch.isspace() for ch in value):
        errors.append(f"litellm:{key}: must be an absolute path without white space, got {describe(value)}")


# --- the whole settings --------------------------------------------------------------


def _check_gateway(errors, settings):
    """Where the gateway listens and how its router behaves."""
    check_host(errors, "bind_host", settings.get("bind_host"))
    check_int(errors, "bind_port", settings.get("bind_port"), 1, 65535)
    base_url = settings.get("base_url", "")
    if base_url != "":
        problem = url_problem(base_url, allow_path=True)
        if problem:
            errors.append(f"litellm:base_url: {problem}")


def _check_router(errors, settings):
    check_number(errors, "request_timeout", settings.get("request_timeout"), 1, 86400)
    check_int(errors, "max_retries", settings.get("max_retries"), 0, 10)
    check_int(errors, "allowed_fails", settings.get("allowed_fails"), 0, 1000)
    check_number(errors, "cooldown_time", settings.get("cooldown_time"), 0, 86400)
    check_int(errors, "health_check_interval", settings.get("health_check_interval"), 0, 86400)
    if settings.get("routing_strategy") not in ROUTING_STRATEGIES:
        errors.append(
            f"litellm:routing_strategy: must be one of {', '.join(ROUTING_STRATEGIES)}, "
            f"got {describe(settings.get('routing_strategy'))}"
        )


def _check_install(errors, settings):
    """The release, the paths it goes to and the package index it comes from."""
    version = settings.get("version")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        errors.append(f"litellm:version: must be an exact version like '1.108.7' (quote it), got {describe(version)}")
    check_path(errors, "venv", settings.get("venv"))
    check_path(errors, "config_dir", settings.get("config_dir"))
    check_path(errors, "ca_bundle", settings.get("ca_bundle", ""), allow_empty=True)
    index = settings.get("package_index", {})
    if not isinstance(index, dict):
        errors.append(f"litellm:package_index: must be a mapping with url and extra_urls, got {describe(index)}")
        return
    if index.get("url", "") != "":
        problem = url_problem(index.get("url"), allow_path=True)
        if problem:
            errors.append(f"litellm:package_index:url: {problem}")
    extra = index.get("extra_urls", [])
    if not isinstance(extra, list):
        errors.append(f"litellm:package_index:extra_urls: must be a list of URLs, got {describe(extra)}")
        return
    for position, url in enumerate(extra):
        problem = url_problem(url, allow_path=True)
        if problem:
            errors.append(f"litellm:package_index:extra_urls:{position}: {problem}")


def check_settings(utils, settings):
    """
    Every problem of the merged settings, as messages naming the pillar key.

    Pure function: an empty list means the settings are valid.
    """
    if not isinstance(settings, dict):
        return [f"litellm: must be a mapping of settings, got {describe(settings)}"]
    sections, secrets = utils.litellm_validate_sections, utils.litellm_validate_secrets
    errors = []
    unknown = sorted(map(str, set(settings) - TOP_LEVEL_KEYS))
    if unknown:
        errors.append(f"litellm: unknown key(s) {', '.join(unknown)} (typo?); see pillar.example")
    _check_gateway(errors, settings)
    sections.check_backends(utils, errors, settings.get("backends"))
    sections.check_models(utils, errors, settings.get("models"))
    _check_router(errors, settings)
    secrets.check_master_key(utils, errors, settings.get("master_key"))
    _check_install(errors, settings)
    sections.check_service(utils, errors, settings.get("service"))
    utils.litellm_validate_capacity.check_capacity(utils, errors, settings)
    sections.check_extra_sections(utils, errors, settings)
    sections.check_smoke(utils, errors, settings.get("smoke", {}))
    sections.check_rollback(utils, errors, settings.get("rollback", {}))
    sections.check_ca_certificates(utils, errors, settings.get("ca_certificates", {}))
    secrets.check_redis(utils, errors, settings.get("redis", {}), settings.get("master_key"))
    utils.litellm_layout.check_ownership(utils, errors, settings)
    utils.litellm_keys.check_keys(utils, errors, settings.get("keys", {}), settings.get("models"),
                                  settings.get("master_key"))
    if not isinstance(settings.get("preflight", {}), dict):
        errors.append(f"litellm:preflight: must be a mapping, got {describe(settings.get('preflight'))}")
    utils.litellm_validate_preflight.check_preflight(utils, errors, settings.get("preflight", {}))
    utils.litellm_validate_tls.check_tls(utils, errors, settings)
    utils.litellm_validate_tls.check_metrics(utils, errors, settings)
    return errors

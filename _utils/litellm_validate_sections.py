"""
Validation of the core sections of the formula's settings: backends, models,
service, smoke, rollback, ca_certificates and the free-form LiteLLM sections
(``litellm_settings``, ``router_settings``, ``general_settings``). Each
``check_<section>(utils, errors, value)`` appends messages naming the pillar
key; the primitives are ``litellm_validate``'s.
"""

import re

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
SERVERS = ("uvicorn",)
SERVICE_KEYS = {"name", "user", "group", "workers", "server", "max_requests", "log_level", "log_format",
                "ready_timeout", "graceful_timeout", "worker_ready_timeout", "keep_alive_timeout"}
PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
CA_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
# Keys that belong to a setting of the formula, or that make LiteLLM refuse to
# start, when given in the free-form sections.
FORBIDDEN_EXTRA_KEYS = {
    "general_settings": {
        "master_key": "set litellm:master_key (secret pillar) instead",
        "database_url": "not supported by this formula yet",
        "custom_auth": "set by the formula for its client keys (litellm:keys)",
        "custom_auth_settings": "set by the formula for its client keys (litellm:keys)",
        # A wrong key would become an internal user whenever the (absent) database "fails".
        "allow_requests_on_db_unavailable": "never: without a database every wrong key would be let in",
    },
    "router_settings": {
        "health_check_interval": "belongs to general_settings; "
        "set litellm:health_check_interval instead",
        "model_list": "set litellm:models and litellm:backends instead",
        "redis_host": "set litellm:redis:host instead",
        "redis_port": "set litellm:redis:port instead",
        "redis_password": "secret: set litellm:redis:password (secret pillar) instead",
        "redis_url": "set litellm:redis:host and port instead (LiteLLM documents redis_url as slower)",
    },
    "litellm_settings": {
        "telemetry": "not a litellm_settings key",
        "cache": "set caching through litellm_settings:cache_params",
    },
}


def check_backends(utils, errors, backends):
    v = utils.litellm_validate
    if not isinstance(backends, list) or not backends:
        errors.append(f"litellm:backends: must be a non-empty list of Ollama URLs, got {v.describe(backends)}")
        return
    seen = set()
    for index, url in enumerate(backends):
        problem = v.url_problem(url)
        if problem:
            errors.append(f"litellm:backends:{index}: {problem}")
            continue
        normal = url.rstrip("/")
        if normal in seen:
            errors.append(f"litellm:backends:{index}: duplicate backend {url!r}")
        seen.add(normal)


def _check_model(utils, errors, index, entry, seen):
    """One entry of litellm:models (``seen``: the aliases so far, this one added when valid)."""
    v, build = utils.litellm_validate, utils.litellm_build
    where = f"litellm:models:{index}"
    limit_keys = build.model_limit_keys()
    unknown = sorted(map(str, set(entry) - {"name", "provider", "model", *limit_keys}))
    if unknown:
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: name, provider, model, rpm, tpm")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{where}:name: must be a non-empty string, got {v.describe(name)}")
    elif not ALIAS_RE.match(name):
        errors.append(f"{where}:name: {name!r} has characters a model alias cannot have (white space?)")
    elif name in seen:
        errors.append(f"{where}:name: duplicate alias {name!r}")
    else:
        seen.add(name)
        where = f"litellm:models:{index} ({name})"
    provider = entry.get("provider", "ollama")
    providers = build.provider_prefixes()
    if provider not in providers:
        errors.append(f"{where}:provider: must be one of {', '.join(providers)}, got {v.describe(provider)}")
    model = entry.get("model")
    if not isinstance(model, str) or not model.strip() or any(ch.isspace() for ch in model):
        errors.append(f"{where}:model: must be an Ollama model name like 'llama3.2:3b', got {v.describe(model)}")
    for limit in limit_keys:
        if limit in entry:
            v.check_int(errors, f"{where[len('litellm:'):]}:{limit}", entry[limit], 1, 10**9)


def check_models(utils, errors, models):
    v = utils.litellm_validate
    if not isinstance(models, list) or not models:
        errors.append(
            "litellm:models: must be a non-empty list of {name, provider, model}, " f"got {v.describe(models)}"
        )
        return
    seen = set()
    for index, entry in enumerate(models):
        if not isinstance(entry, dict):
            errors.append(
                f"litellm:models:{index}: must be a mapping with name, provider and model, got {v.describe(entry)}"
            )
            continue
        _check_model(utils, errors, index, entry, seen)


def _check_service_logs(utils, errors, service):
    describe = utils.litellm_validate.describe
    if service.get("log_level") not in LOG_LEVELS:
        errors.append(
            f"litellm:service:log_level: must be one of {', '.join(LOG_LEVELS)}, "
            f"got {describe(service.get('log_level'))}"
        )
    if service.get("log_format", "text") not in LOG_FORMATS:
        errors.append(
            f"litellm:service:log_format: must be one of {', '.join(LOG_FORMATS)}, "
            f"got {describe(service.get('log_format'))}"
        )
    elif service.get("log_format") == "json" and service.get("server", "uvicorn") == "gunicorn":
        errors.append(
            "litellm:service:log_format: json needs litellm:service:server: uvicorn "
            "(under gunicorn LiteLLM writes the access log and gunicorn's own lines as text)"
        )


def check_service(utils, errors, service):
    v = utils.litellm_validate
    if not isinstance(service, dict):
        errors.append(f"litellm:service: must be a mapping, got {v.describe(service)}")
        return
    unknown = sorted(set(service) - SERVICE_KEYS)
    if unknown:
        errors.append(f"litellm:service: unknown key(s) {', '.join(map(str, unknown))}")
    for key in ("name", "user", "group"):
        value = service.get(key)
        if not isinstance(value, str) or not NAME_RE.match(value):
            errors.append(f"litellm:service:{key}: must be a lower-case system name, got {v.describe(value)}")
    if service.get("user") == "root":
        errors.append("litellm:service:user: must not be root")
    workers = service.get("workers")
    if workers != "auto" and (not v.is_int(workers) or not 1 <= workers <= 64):
        errors.append(f"litellm:service:workers: must be auto or an integer from 1 to 64, got {v.describe(workers)}")
    v.check_int(errors, "service:ready_timeout", service.get("ready_timeout"), 5, 3600)
    for key, low, high in (("graceful_timeout", 1, 86400), ("worker_ready_timeout", 5, 3600),
                           ("keep_alive_timeout", 1, 3600)):
        if key in service:
            v.check_int(errors, f"service:{key}", service[key], low, high)
    if service.get("server") == "gunicorn":
        errors.append(
            "litellm:service:server: gunicorn is no longer offered: the unit runs uvicorn's supervisor, "
            "which reloads a change without refusing a request (README, Day 2); use uvicorn"
        )
    elif service.get("server", "uvicorn") not in SERVERS:
        errors.append(
            f"litellm:service:server: must be one of {', '.join(SERVERS)}, got {v.describe(service.get('server'))}"
        )
    max_requests = service.get("max_requests", 0)
    v.check_int(errors, "service:max_requests", max_requests, 0, 10**9)
    if v.is_int(max_requests) and max_requests > 0 and workers == 1:
        errors.append(
            "litellm:service:max_requests: needs workers >= 2 (one worker stops serving while it is replaced)"
        )
    _check_service_logs(utils, errors, service)


def _section_known(utils, errors, name, value, known):
    """Whether ``litellm:<name>`` is a mapping of ``known`` keys with a boolean ``enabled`` (errors say why not)."""
    describe = utils.litellm_validate.describe
    if not isinstance(value, dict):
        errors.append(f"litellm:{name}: must be a mapping, got {describe(value)}")
        return False
    unknown = sorted(map(str, set(value) - set(known)))
    if unknown:
        errors.append(f"litellm:{name}: unknown key(s) {', '.join(unknown)}")
    if not isinstance(value.get("enabled", True), bool):
        errors.append(f"litellm:{name}:enabled: must be true or false, got {describe(value.get('enabled'))}")
    return True


def check_smoke(utils, errors, smoke):
    v = utils.litellm_validate
    if isinstance(smoke, dict) and "rollback" in smoke:
        errors.append("litellm:smoke:rollback: moved to litellm:rollback:enabled")
    known = {"enabled", "concurrency", "latency_requests", "chat_models", "evidence_dir", "rollback"}
    if not _section_known(utils, errors, "smoke", smoke, known):
        return
    v.check_int(errors, "smoke:concurrency", smoke.get("concurrency", 10), 1, 50)
    v.check_int(errors, "smoke:latency_requests", smoke.get("latency_requests", 10), 1, 100)
    if smoke.get("chat_models", "first") not in ("first", "all"):
        errors.append(
            f"litellm:smoke:chat_models: must be 'first' or 'all', got {v.describe(smoke.get('chat_models'))}"
        )
    v.check_path(errors, "smoke:evidence_dir", smoke.get("evidence_dir", ""), allow_empty=True)


def check_rollback(utils, errors, rollback):
    v = utils.litellm_validate
    if not _section_known(utils, errors, "rollback", rollback, {"enabled", "keep", "keep_venvs"}):
        return
    v.check_int(errors, "rollback:keep", rollback.get("keep", 5), 1, 100)
    v.check_int(errors, "rollback:keep_venvs", rollback.get("keep_venvs", 1), 0, 10)


def check_ca_certificates(utils, errors, certs):
    if not isinstance(certs, dict):
        errors.append(
            "litellm:ca_certificates: must be a mapping of name: PEM certificate, "
            f"got {utils.litellm_validate.describe(certs)}"
        )
        return
    for name, pem in certs.items():
        if not isinstance(name, str) or not CA_NAME_RE.match(name):
            errors.append(f"litellm:ca_certificates:{name}: the name must be letters, digits, '.', '_' or '-'")
        elif not isinstance(pem, str) or not PEM_CERT_RE.search(pem):
            errors.append(f"litellm:ca_certificates:{name}: must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
        elif "PRIVATE KEY" in pem:
            errors.append(f"litellm:ca_certificates:{name}: holds a private key; give only the CA certificate")


def check_extra_sections(utils, errors, settings):
    for section, forbidden in FORBIDDEN_EXTRA_KEYS.items():
        value = settings.get(section, {})
        if not isinstance(value, dict):
            errors.append(f"litellm:{section}: must be a mapping, got {utils.litellm_validate.describe(value)}")
            continue
        for key, why in forbidden.items():
            if key in value:
                errors.append(f"litellm:{section}:{key}: {why}")

"""
Validate and render the LiteLLM proxy configuration from the formula's settings.

Pure functions build everything (no I/O); the public functions are thin
wrappers that read pillar and the formula's templates. Nothing here touches
the host: ``render`` is the dry run of the original deployment's
template-validation step.
"""

import datetime
import hashlib
import ipaddress
import json
import logging
import os
import re
import urllib.parse

import salt.utils.yaml
from salt.loader.context import NamedLoaderContext

log = logging.getLogger(__name__)

__virtualname__ = "litellm_config"

MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
REDIS_PASSWORD_ENV = "REDIS_PASSWORD"

ROUTING_STRATEGIES = (
    "simple-shuffle",
    "least-busy",
    "usage-based-routing",
    "usage-based-routing-v2",
    "latency-based-routing",
    "cost-based-routing",
    "provider-budget-routing",
)
PROVIDERS = {"ollama": "ollama_chat"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
CA_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SERVERS = ("gunicorn", "uvicorn")
MIN_MASTER_KEY_LENGTH = 32
MIN_REDIS_PASSWORD_LENGTH = 16
REDIS_KEYS = {"host", "port", "password", "server", "bind", "maxmemory_mib"}
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
MODEL_LIMIT_KEYS = ("rpm", "tpm")
# litellm:keys: client keys checked by the formula's custom_auth hook
# (files/litellm_client_keys.py) against a table of hashes (client-keys.json).
CLIENT_KEY_KEYS = {"hash", "key", "models", "rpm", "tpm", "max_parallel", "expires", "disabled"}
CLIENT_LIMIT_KEYS = ("rpm", "tpm", "max_parallel")
CLIENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY_HASH_RE = re.compile(r"^sha256:[0-9A-Fa-f]{64}$")
MIN_CLIENT_KEY_LENGTH = 32
KEY_TABLE_NAME = "client-keys.json"
KEY_TABLE_FORMAT = 1
AUTH_HOOK_MODULE = "litellm_client_keys"
PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "example",
    "placeholder",
    "replace",
    "your-key",
    "yourkey",
    "secret",
    "password",
    "dummy",
    "xxxxxx",
    "123456",
    "todo",
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
}
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
# Ownership (litellm.clean removes what the formula created, so none of its
# paths may be a directory of the system or of another program).
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
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+([.-]?(post|rc|a|b)\d+)?$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$)({_LABEL})(\.{_LABEL})*$")


def __virtual__():
    if "litellm_settings.merged" not in __utils__:
        return (False, "litellm_config needs the formula's _utils (saltutil.sync_utils, or utils_dirs)")
    return __virtualname__


# --- validation (pure) -------------------------------------------------------


def _describe(value):
    """Short description of a bad value for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(errors, key, value, low, high):
    if not _is_int(value) or not low <= value <= high:
        errors.append(f"litellm:{key}: must be an integer from {low} to {high}, got {_describe(value)}")


def _check_number(errors, key, value, low, high):
    if not _is_number(value) or not low <= value <= high:
        errors.append(f"litellm:{key}: must be a number from {low} to {high}, got {_describe(value)}")


def _url_problem(value, allow_path=False):
    """Why ``value`` is not an http(s) URL, or None when it is one."""
    if not isinstance(value, str) or not value:
        return f"must be an http:// or https:// URL, got {_describe(value)}"
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


def _check_host(errors, key, value):
    if not isinstance(value, str) or not value:
        errors.append(f"litellm:{key}: must be an IP address or host name, got {_describe(value)}")
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not HOSTNAME_RE.match(value):
            errors.append(f"litellm:{key}: {value!r} is neither an IP address nor a valid host name")


def _check_path(errors, key, value, allow_empty=False):
    if allow_empty and value == "":
        return
    if not isinstance(value, str) or not value.startswith("/") or any(ch.isspace() for ch in value):
        errors.append(f"litellm:{key}: must be an absolute path without white space, got {_describe(value)}")


def _secret_given(errors, key, value, missing="missing"):
    """Whether the secret at ``key`` is a decrypted string (else the error says why). Never echoes it."""
    if value in (None, ""):
        errors.append(f"{key}: {missing}; set it in the secret (GPG-encrypted) pillar")
    elif not isinstance(value, str):
        errors.append(f"{key}: must be a string, got a {type(value).__name__}")
    elif value.startswith("-----BEGIN PGP"):
        errors.append(f"{key}: still GPG-encrypted; the gpg renderer could not decrypt it (check gpg_keydir)")
    else:
        return True
    return False


def _check_secret_strength(errors, key, value, rules):
    """Length, characters and placeholders of a secret (only its length is ever echoed)."""
    if len(value) < rules["min_length"]:
        errors.append(f"{key}: too short ({len(value)} characters); use at least {rules['min_length']}")
    if any(ch.isspace() or ord(ch) < 32 or ch in rules["forbidden"] for ch in value):
        errors.append(f"{key}: must not contain white space, quotes, {rules['forbidden_text']}")
    lowered = value.lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS) or len(set(value[rules["skip"]:])) < 8:
        errors.append(f"{key}: looks like a placeholder; generate one with: {rules['generate']}")


def _check_master_key(errors, value):
    key = "litellm:master_key"
    if not _secret_given(errors, key, value):
        return
    if not value.startswith("sk-"):
        errors.append(f"{key}: must start with 'sk-' (LiteLLM treats keys without it as invalid)")
    rules = {"min_length": MIN_MASTER_KEY_LENGTH, "forbidden": "\"'\\$`", "forbidden_text": "'\\', '$' or '`'",
             "skip": 3, "generate": "echo sk-$(openssl rand -hex 24)"}
    _check_secret_strength(errors, key, value, rules)


def _check_redis_password(errors, value, master_key):
    key = "litellm:redis:password"
    if not _secret_given(errors, key, value, missing="missing (litellm:redis:host is set)"):
        return
    rules = {"min_length": MIN_REDIS_PASSWORD_LENGTH, "forbidden": "\"'\\$`#",
             "forbidden_text": "'\\', '$', '`' or '#'", "skip": 0, "generate": "openssl rand -hex 24"}
    _check_secret_strength(errors, key, value, rules)
    if value == master_key:
        errors.append(f"{key}: must not be the master key")


def _check_redis(errors, redis, master_key):
    """litellm:redis: shared router state between gateways ('' host: none)."""
    if not isinstance(redis, dict):
        errors.append(f"litellm:redis: must be a mapping, got {_describe(redis)}")
        return
    unknown = sorted(map(str, set(redis) - REDIS_KEYS))
    if unknown:
        errors.append(f"litellm:redis: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(REDIS_KEYS))}")
    host = redis.get("host", "")
    _check_int(errors, "redis:port", redis.get("port", 6379), 1, 65535)
    _check_int(errors, "redis:maxmemory_mib", redis.get("maxmemory_mib", 256), 0, 1048576)
    server = redis.get("server", "")
    if not isinstance(server, str) or any(ch.isspace() for ch in server):
        errors.append(f"litellm:redis:server: must be a minion id or '', got {_describe(server)}")
    bind = redis.get("bind", [])
    if not isinstance(bind, list):
        errors.append(f"litellm:redis:bind: must be a list of IP addresses, got {_describe(bind)}")
        bind = []
    for index, address in enumerate(bind):
        try:
            ipaddress.ip_address(address)
        except (TypeError, ValueError):
            errors.append(f"litellm:redis:bind:{index}: must be an IP address, got {_describe(address)}")
    if host == "":
        if server:
            errors.append("litellm:redis:server: set, but litellm:redis:host (where gateways reach it) is empty")
        return
    _check_host(errors, "redis:host", host)
    _check_redis_password(errors, redis.get("password"), master_key)
    if server and not bind and isinstance(host, str) and host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            errors.append(
                "litellm:redis:bind: needed when the formula installs Redis (litellm:redis:server) "
                "and litellm:redis:host is a name: the addresses Redis listens on"
            )


def _alias_names(models):
    """The valid aliases of litellm:models, in pillar order."""
    if not isinstance(models, list):
        return []
    return [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]


def _key_hash(spec):
    """The hex SHA-256 of a litellm:keys entry (from hash or key), or None."""
    if not isinstance(spec, dict):
        return None
    value = spec.get("hash")
    if isinstance(value, str) and KEY_HASH_RE.match(value):
        return value.split(":", 1)[1].lower()
    key = spec.get("key")
    if isinstance(key, str) and key and not key.startswith("-----BEGIN PGP"):
        return hashlib.sha256(key.encode("utf-8")).hexdigest()
    return None


def _expiry(value):
    """An expiry (ISO date or date-time, no zone = UTC) as an aware datetime; ValueError when bad."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = datetime.datetime.fromisoformat(text)
    else:
        raise ValueError(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def _check_client_key(errors, where, key, master_key):
    # A plaintext client key (from GPG-encrypted pillar): never echo the value.
    if not isinstance(key, str) or not key:
        errors.append(f"{where}:key: must be a non-empty string, got a {type(key).__name__}")
        return
    if key.startswith("-----BEGIN PGP"):
        errors.append(f"{where}:key: still GPG-encrypted; the gpg renderer could not decrypt it (check gpg_keydir)")
        return
    if not key.startswith("sk-"):
        # LiteLLM keeps a key without it in clear in its limiter messages and failure logs.
        errors.append(f"{where}:key: must start with 'sk-' (generate one with scripts/new-client-key)")
    if len(key) < MIN_CLIENT_KEY_LENGTH:
        errors.append(f"{where}:key: too short ({len(key)} characters); use at least {MIN_CLIENT_KEY_LENGTH}")
    if any(ch.isspace() or ord(ch) < 32 for ch in key):
        errors.append(f"{where}:key: must not contain white space")
    if isinstance(master_key, str) and master_key and key == master_key:
        errors.append(f"{where}:key: is the master key; give every client a key of its own")


def _check_keys(errors, keys, models, master_key):
    """litellm:keys: client name -> {hash or key, models, rpm, tpm, max_parallel, expires, disabled}."""
    if keys in (None, {}):
        return
    if not isinstance(keys, dict):
        errors.append(f"litellm:keys: must be a mapping of client name: settings, got {_describe(keys)}")
        return
    aliases = set(_alias_names(models))
    master_hash = hashlib.sha256(master_key.encode("utf-8")).hexdigest() if isinstance(master_key, str) else None
    seen = {}
    for name, spec in keys.items():
        where = f"litellm:keys:{name}"
        if not isinstance(name, str) or not CLIENT_NAME_RE.match(name):
            errors.append(f"{where}: the client name must be letters, digits, '.', '_' or '-' (at most 64)")
        if not isinstance(spec, dict):
            errors.append(
                f"{where}: must be a mapping with hash (or key), models, rpm, tpm, ..., got {_describe(spec)}"
            )
            continue
        unknown = sorted(map(str, set(spec) - CLIENT_KEY_KEYS))
        if unknown:
            allowed = ", ".join(sorted(CLIENT_KEY_KEYS))
            errors.append(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
        if ("hash" in spec) == ("key" in spec):
            errors.append(f"{where}: give exactly one of hash ('sha256:<hex>', preferred) or key (GPG-encrypted)")
        if "hash" in spec:
            value = spec["hash"]
            if not isinstance(value, str) or not KEY_HASH_RE.match(value):
                errors.append(
                    f"{where}:hash: must be 'sha256:' and 64 hex digits (scripts/new-client-key prints it), "
                    f"got {_describe(value)}"
                )
            elif master_hash is not None and value.split(":", 1)[1].lower() == master_hash:
                errors.append(f"{where}:hash: is the hash of the master key; give every client a key of its own")
        elif "key" in spec:
            _check_client_key(errors, where, spec["key"], master_key)
        digest = _key_hash(spec)
        if digest is not None:
            if digest in seen:
                errors.append(f"{where}: same key as litellm:keys:{seen[digest]} (duplicate hash)")
            else:
                seen[digest] = name
        if "models" in spec:
            chosen = spec["models"]
            if not isinstance(chosen, list) or not chosen:
                errors.append(
                    f"{where}:models: must be a non-empty list of aliases (leave it out for all), "
                    f"got {_describe(chosen)}"
                )
            else:
                for index, alias in enumerate(chosen):
                    if not isinstance(alias, str) or alias not in aliases:
                        errors.append(
                            f"{where}:models:{index}: {alias!r} is not an alias of litellm:models "
                            f"({', '.join(sorted(aliases)) or 'none'})"
                        )
        for limit in CLIENT_LIMIT_KEYS:
            if spec.get(limit) is not None:
                _check_int(errors, f"keys:{name}:{limit}", spec[limit], 1, 10**9)
        if spec.get("expires") not in (None, ""):
            try:
                _expiry(spec["expires"])
            except (TypeError, ValueError):
                errors.append(
                    f"{where}:expires: must be an ISO date like '2027-06-30' (or date-time), "
                    f"got {_describe(spec['expires'])}"
                )
        if not isinstance(spec.get("disabled", False), bool):
            errors.append(f"{where}:disabled: must be true or false, got {_describe(spec.get('disabled'))}")


def _check_backends(errors, backends):
    if not isinstance(backends, list) or not backends:
        errors.append(f"litellm:backends: must be a non-empty list of Ollama URLs, got {_describe(backends)}")
        return
    seen = set()
    for index, url in enumerate(backends):
        problem = _url_problem(url)
        if problem:
            errors.append(f"litellm:backends:{index}: {problem}")
            continue
        normal = url.rstrip("/")
        if normal in seen:
            errors.append(f"litellm:backends:{index}: duplicate backend {url!r}")
        seen.add(normal)


def _check_models(errors, models):
    if not isinstance(models, list) or not models:
        errors.append(
            "litellm:models: must be a non-empty list of {name, provider, model}, " f"got {_describe(models)}"
        )
        return
    seen = set()
    for index, entry in enumerate(models):
        where = f"litellm:models:{index}"
        if not isinstance(entry, dict):
            errors.append(f"{where}: must be a mapping with name, provider and model, got {_describe(entry)}")
            continue
        unknown = sorted(map(str, set(entry) - {"name", "provider", "model", *MODEL_LIMIT_KEYS}))
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: name, provider, model, rpm, tpm")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{where}:name: must be a non-empty string, got {_describe(name)}")
        elif not ALIAS_RE.match(name):
            errors.append(f"{where}:name: {name!r} has characters a model alias cannot have (white space?)")
        elif name in seen:
            errors.append(f"{where}:name: duplicate alias {name!r}")
        else:
            seen.add(name)
            where = f"litellm:models:{index} ({name})"
        provider = entry.get("provider", "ollama")
        if provider not in PROVIDERS:
            errors.append(f"{where}:provider: must be one of {', '.join(PROVIDERS)}, got {_describe(provider)}")
        model = entry.get("model")
        if not isinstance(model, str) or not model.strip() or any(ch.isspace() for ch in model):
            errors.append(f"{where}:model: must be an Ollama model name like 'llama3.2:3b', got {_describe(model)}")
        for limit in MODEL_LIMIT_KEYS:
            if limit in entry:
                _check_int(errors, f"{where[len('litellm:'):]}:{limit}", entry[limit], 1, 10**9)


def _check_service(errors, service):
    if not isinstance(service, dict):
        errors.append(f"litellm:service: must be a mapping, got {_describe(service)}")
        return
    unknown = sorted(
        set(service)
        - {"name", "user", "group", "workers", "server", "max_requests", "log_level", "log_format", "ready_timeout"}
    )
    if unknown:
        errors.append(f"litellm:service: unknown key(s) {', '.join(map(str, unknown))}")
    for key in ("name", "user", "group"):
        value = service.get(key)
        if not isinstance(value, str) or not NAME_RE.match(value):
            errors.append(f"litellm:service:{key}: must be a lower-case system name, got {_describe(value)}")
    if service.get("user") == "root":
        errors.append("litellm:service:user: must not be root")
    workers = service.get("workers")
    if workers != "auto" and (not _is_int(workers) or not 1 <= workers <= 64):
        errors.append(f"litellm:service:workers: must be auto or an integer from 1 to 64, got {_describe(workers)}")
    _check_int(errors, "service:ready_timeout", service.get("ready_timeout"), 5, 3600)
    if service.get("server", "uvicorn") not in SERVERS:
        errors.append(
            f"litellm:service:server: must be one of {', '.join(SERVERS)}, got {_describe(service.get('server'))}"
        )
    max_requests = service.get("max_requests", 0)
    _check_int(errors, "service:max_requests", max_requests, 0, 10**9)
    if _is_int(max_requests) and max_requests > 0 and workers == 1:
        errors.append(
            "litellm:service:max_requests: needs workers >= 2 (one worker stops serving while it is replaced)"
        )
    if service.get("log_level") not in LOG_LEVELS:
        errors.append(
            f"litellm:service:log_level: must be one of {', '.join(LOG_LEVELS)}, "
            f"got {_describe(service.get('log_level'))}"
        )
    if service.get("log_format", "text") not in LOG_FORMATS:
        errors.append(
            f"litellm:service:log_format: must be one of {', '.join(LOG_FORMATS)}, "
            f"got {_describe(service.get('log_format'))}"
        )
    elif service.get("log_format") == "json" and service.get("server", "uvicorn") == "gunicorn":
        errors.append(
            "litellm:service:log_format: json needs litellm:service:server: uvicorn "
            "(under gunicorn LiteLLM writes the access log and gunicorn's own lines as text)"
        )


def _check_preflight_dns(errors, dns):
    key = "litellm:preflight:dns"
    if not isinstance(dns, dict):
        errors.append(f"{key}: must be a mapping with expected and ptr")
        return
    unknown = sorted(map(str, set(dns) - {"expected", "ptr"}))
    if unknown:
        errors.append(f"{key}: unknown key(s) {', '.join(unknown)}; allowed: expected, ptr")
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


def _check_preflight_site(errors, site):
    key = "litellm:preflight:site"
    if not isinstance(site, dict):
        errors.append(f"{key}: must be a mapping")
        return
    for name, value in site.items():
        if name not in PREFLIGHT_SITE_KEYS:
            errors.append(f"{key}: unknown key {name!r}; allowed: {', '.join(PREFLIGHT_SITE_KEYS)}")
        elif value not in (None, "", False) and not isinstance(value, PREFLIGHT_SITE_KEYS[name]):
            errors.append(f"{key}:{name}: must be a {PREFLIGHT_SITE_KEYS[name].__name__}, got {value!r}")


def _check_preflight(errors, preflight):
    """litellm:preflight (not a mapping: check_settings says so)."""
    if not isinstance(preflight, dict):
        return
    key = "litellm:preflight"
    unknown = sorted(map(str, set(preflight) - PREFLIGHT_KEYS))
    if unknown:
        errors.append(f"{key}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(PREFLIGHT_KEYS))}")
    for name in ("min_disk_gib", "min_memory_mib"):
        if name in preflight and (not _is_number(preflight[name]) or preflight[name] < 0):
            errors.append(f"{key}:{name}: must be a number >= 0, got {preflight[name]!r}")
    keep = preflight.get("keep_evidence")
    if keep not in ("", None) and (not _is_int(keep) or keep < 1):
        errors.append(f"{key}:keep_evidence: must be an integer >= 1, got {keep!r}")
    evidence = preflight.get("evidence_dir")
    if evidence not in ("", None) and (not isinstance(evidence, str) or not evidence.startswith("/")):
        errors.append(f"{key}:evidence_dir: must be an absolute path, got {evidence!r}")
    wheelhouse = preflight.get("offline_wheelhouse")
    if wheelhouse not in ("", None) and not isinstance(wheelhouse, (str, bool)):
        errors.append(f"{key}:offline_wheelhouse: must be a path (or true), got {wheelhouse!r}")
    if preflight.get("dns") not in (None, ""):
        _check_preflight_dns(errors, preflight["dns"])
    if preflight.get("site") not in (None, ""):
        _check_preflight_site(errors, preflight["site"])


def _section_known(errors, name, value, known):
    """Whether ``litellm:<name>`` is a mapping of ``known`` keys with a boolean ``enabled`` (errors say why not)."""
    if not isinstance(value, dict):
        errors.append(f"litellm:{name}: must be a mapping, got {_describe(value)}")
        return False
    unknown = sorted(map(str, set(value) - set(known)))
    if unknown:
        errors.append(f"litellm:{name}: unknown key(s) {', '.join(unknown)}")
    if not isinstance(value.get("enabled", True), bool):
        errors.append(f"litellm:{name}:enabled: must be true or false, got {_describe(value.get('enabled'))}")
    return True


def _check_smoke(errors, smoke):
    if isinstance(smoke, dict) and "rollback" in smoke:
        errors.append("litellm:smoke:rollback: moved to litellm:rollback:enabled")
    known = {"enabled", "concurrency", "latency_requests", "chat_models", "evidence_dir", "rollback"}
    if not _section_known(errors, "smoke", smoke, known):
        return
    _check_int(errors, "smoke:concurrency", smoke.get("concurrency", 10), 1, 50)
    _check_int(errors, "smoke:latency_requests", smoke.get("latency_requests", 10), 1, 100)
    if smoke.get("chat_models", "first") not in ("first", "all"):
        errors.append(f"litellm:smoke:chat_models: must be 'first' or 'all', got {_describe(smoke.get('chat_models'))}")
    _check_path(errors, "smoke:evidence_dir", smoke.get("evidence_dir", ""), allow_empty=True)


def _check_rollback(errors, rollback):
    if not _section_known(errors, "rollback", rollback, {"enabled", "keep", "keep_venvs"}):
        return
    _check_int(errors, "rollback:keep", rollback.get("keep", 5), 1, 100)
    _check_int(errors, "rollback:keep_venvs", rollback.get("keep_venvs", 1), 0, 10)


def _check_ca_certificates(errors, certs):
    if not isinstance(certs, dict):
        errors.append(f"litellm:ca_certificates: must be a mapping of name: PEM certificate, got {_describe(certs)}")
        return
    for name, pem in certs.items():
        if not isinstance(name, str) or not CA_NAME_RE.match(name):
            errors.append(f"litellm:ca_certificates:{name}: the name must be letters, digits, '.', '_' or '-'")
        elif not isinstance(pem, str) or not PEM_CERT_RE.search(pem):
            errors.append(f"litellm:ca_certificates:{name}: must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
        elif "PRIVATE KEY" in pem:
            errors.append(f"litellm:ca_certificates:{name}: holds a private key; give only the CA certificate")


def _check_extra_sections(errors, settings):
    for section, forbidden in FORBIDDEN_EXTRA_KEYS.items():
        value = settings.get(section, {})
        if not isinstance(value, dict):
            errors.append(f"litellm:{section}: must be a mapping, got {_describe(value)}")
            continue
        for key, why in forbidden.items():
            if key in value:
                errors.append(f"litellm:{section}:{key}: {why}")


def check_settings(settings):
    """
    Every problem of the merged settings, as messages naming the pillar key.

    Pure function: an empty list means the settings are valid.
    """
    if not isinstance(settings, dict):
        return [f"litellm: must be a mapping of settings, got {_describe(settings)}"]
    errors = []
    unknown = sorted(map(str, set(settings) - TOP_LEVEL_KEYS))
    if unknown:
        errors.append(f"litellm: unknown key(s) {', '.join(unknown)} (typo?); see pillar.example")
    _check_host(errors, "bind_host", settings.get("bind_host"))
    _check_int(errors, "bind_port", settings.get("bind_port"), 1, 65535)
    base_url = settings.get("base_url", "")
    if base_url != "":
        problem = _url_problem(base_url, allow_path=True)
        if problem:
            errors.append(f"litellm:base_url: {problem}")
    _check_backends(errors, settings.get("backends"))
    _check_models(errors, settings.get("models"))
    _check_number(errors, "request_timeout", settings.get("request_timeout"), 1, 86400)
    _check_int(errors, "max_retries", settings.get("max_retries"), 0, 10)
    _check_int(errors, "allowed_fails", settings.get("allowed_fails"), 0, 1000)
    _check_number(errors, "cooldown_time", settings.get("cooldown_time"), 0, 86400)
    _check_int(errors, "health_check_interval", settings.get("health_check_interval"), 0, 86400)
    if settings.get("routing_strategy") not in ROUTING_STRATEGIES:
        errors.append(
            f"litellm:routing_strategy: must be one of {', '.join(ROUTING_STRATEGIES)}, "
            f"got {_describe(settings.get('routing_strategy'))}"
        )
    _check_master_key(errors, settings.get("master_key"))
    version = settings.get("version")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        errors.append(f"litellm:version: must be an exact version like '1.108.7' (quote it), got {_describe(version)}")
    _check_path(errors, "venv", settings.get("venv"))
    _check_path(errors, "config_dir", settings.get("config_dir"))
    _check_path(errors, "ca_bundle", settings.get("ca_bundle", ""), allow_empty=True)
    index = settings.get("package_index", {})
    if not isinstance(index, dict):
        errors.append(f"litellm:package_index: must be a mapping with url and extra_urls, got {_describe(index)}")
    else:
        if index.get("url", "") != "":
            problem = _url_problem(index.get("url"), allow_path=True)
            if problem:
                errors.append(f"litellm:package_index:url: {problem}")
        extra = index.get("extra_urls", [])
        if not isinstance(extra, list):
            errors.append(f"litellm:package_index:extra_urls: must be a list of URLs, got {_describe(extra)}")
        else:
            for position, url in enumerate(extra):
                problem = _url_problem(url, allow_path=True)
                if problem:
                    errors.append(f"litellm:package_index:extra_urls:{position}: {problem}")
    _check_service(errors, settings.get("service"))
    _check_extra_sections(errors, settings)
    _check_smoke(errors, settings.get("smoke", {}))
    _check_rollback(errors, settings.get("rollback", {}))
    _check_ca_certificates(errors, settings.get("ca_certificates", {}))
    _check_redis(errors, settings.get("redis", {}), settings.get("master_key"))
    _check_ownership(errors, settings)
    _check_keys(errors, settings.get("keys", {}), settings.get("models"), settings.get("master_key"))
    if not isinstance(settings.get("preflight", {}), dict):
        errors.append(f"litellm:preflight: must be a mapping, got {_describe(settings.get('preflight'))}")
    _check_preflight(errors, settings.get("preflight", {}))
    return errors


# --- ownership (pure): what the formula creates, and where it may -------------


def _is_under(path, parent):
    return parent == "/" or path == parent or path.startswith(parent + "/")


def dedicated_dir_problem(path):
    """
    Why ``path`` (absolute) cannot be a directory of the formula's own, or
    None: a system directory, anything below /boot, /dev, /proc, /run, /sys,
    /home, /root or /tmp, or a path inside a system directory that is not one
    that holds a directory per program (/etc/litellm and /opt/litellm are
    fine, /etc/ssh and /usr/lib/litellm are not).
    """
    normal = os.path.normpath(path)
    if normal != path.rstrip("/") or path.startswith("//"):
        return f"{path!r} is not a normalized path (no '.', '..' or '//'); write it as {normal!r}"
    if normal in SYSTEM_DIRS:
        return f"{normal} is a system directory; use a dedicated one like /opt/litellm/venv or /etc/litellm"
    for tree in FORBIDDEN_TREES:
        if _is_under(normal, tree):
            return f"{normal} is below {tree}, where the formula never creates anything"
    nearest = max((d for d in SYSTEM_DIRS if _is_under(normal, d)), key=len)
    if nearest not in DEDICATED_PARENTS:
        return f"{normal} is inside the system directory {nearest}; use a dedicated one like /opt/litellm/venv"
    return None


def plan_layout(settings):
    """
    What the formula creates on a host for ``settings`` (the merged map):
    one entry per path, unit, user and group, each with the pillar key that
    names it (None for the formula's fixed directories) and the job (SLS)
    that removes it. Pure; tolerates bad values (validation reports them).
    """
    settings = settings if isinstance(settings, dict) else {}
    text = lambda value: value if isinstance(value, str) and value.startswith("/") else ""  # noqa: E731
    service = settings.get("service") if isinstance(settings.get("service"), dict) else {}
    lookup = settings.get("lookup") if isinstance(settings.get("lookup"), dict) else {}
    name = service.get("name") if isinstance(service.get("name"), str) else ""
    entries = []

    def add(kind, key, job, path="", **extra):
        entries.append(dict(kind=kind, key=key, job=job, path=path, **extra))

    unit_dir = text(lookup.get("systemd_unit_dir")) or UNIT_DIRS[0]
    if name:
        # parents=False: it goes into a directory of the system's, never one of the formula's
        add("unit", "service:name", "service", f"{unit_dir}/{name}.service", name=f"{name}.service", parents=False)
        add("dir", "service:name", "package", f"/var/lib/{name}", what="systemd's StateDirectory")
        add("dir", "service:name", "package", f"/var/cache/{name}", what="systemd's CacheDirectory")
        add("runtime", "service:name", "service", f"/run/{name}", what="systemd's RuntimeDirectory")
    for key in ("user", "group"):
        if isinstance(service.get(key), str) and service.get(key):
            add(key, f"service:{key}", "package", name=service[key])
    if text(settings.get("config_dir")):
        add("dir", "config_dir", "config", text(settings["config_dir"]))
    venv = text(settings.get("venv"))
    if venv:
        # home: the venv's own parent (/opt/litellm), made for it, unless it is a shared one (/opt)
        home = os.path.dirname(os.path.normpath(venv))
        add("venv", "venv", "package", venv, home=home if not dedicated_dir_problem(home) else "")
        add("dir", "venv", "package", venv.rstrip("/") + "-releases", what="its releases")
    # "store": the formula adds its own files to it; an existing one is used, not taken over.
    add("store", None, "package", FORMULA_CACHE, what="the formula's installer cache")
    add("dir", None, "owner", f"{FORMULA_STORE}/known-good", what="the formula's known-good releases")
    for section in ("preflight", "smoke"):
        value = settings.get(section) if isinstance(settings.get(section), dict) else {}
        if text(value.get("evidence_dir")):
            add("store", f"{section}:evidence_dir", "owner", text(value["evidence_dir"]))
    ca_dir = text(lookup.get("ca_certificates_dir")) or CA_CERTIFICATES_DIRS[0]
    certs = settings.get("ca_certificates") if isinstance(settings.get("ca_certificates"), dict) else {}
    for ca_name in sorted(map(str, certs)):
        add("file", f"ca_certificates:{ca_name}", "package", f"{ca_dir}/litellm-salt-{ca_name}.crt", parents=False)
    return entries


def _check_lookup_paths(errors, lookup):
    if not isinstance(lookup, dict):
        errors.append(f"litellm:lookup: must be a mapping, got {_describe(lookup)}")
        return
    for key, allowed in (("systemd_unit_dir", UNIT_DIRS), ("ca_certificates_dir", CA_CERTIFICATES_DIRS)):
        value = lookup.get(key, allowed[0])
        if value not in allowed:
            errors.append(f"litellm:lookup:{key}: must be one of {', '.join(allowed)}, got {_describe(value)}")
    for key in ("python", "nologin_shell"):
        if key in lookup:
            _check_path(errors, f"lookup:{key}", lookup[key])


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
            if "store" in kinds and (kinds == {"store"} or _is_under(a, FORMULA_STORE) and _is_under(b, FORMULA_STORE)):
                continue  # evidence and caches may share a directory, and live in the formula's store
            if not (_is_under(a, b) or _is_under(b, a)):
                continue
            # Blame a pillar key: the inner path, unless it is one of the formula's fixed ones.
            inner, outer = (first, second) if len(a) >= len(b) else (second, first)
            if inner["key"] is None:
                inner, outer = outer, inner
            if (inner["key"], outer["key"]) in reported:
                continue
            reported.add((inner["key"], outer["key"]))
            of = f"litellm:{outer['key']}" + (f" ({outer['what']})" if outer.get("what") else "")
            if outer["key"] is None:
                of = outer["what"]
            errors.append(
                f"litellm:{inner['key']}: {os.path.normpath(inner['path'])} overlaps {os.path.normpath(outer['path'])}"
                f" of {of}; the formula's paths must not overlap (removing one would remove the other)"
            )


def _check_ownership(errors, settings):
    """Paths, unit, user and group the formula may create, before the host is asked."""
    for key in ("venv", "config_dir", "preflight:evidence_dir", "smoke:evidence_dir"):
        section, _, field = key.rpartition(":")
        holder = settings.get(section) if section else settings
        value = holder.get(field, "") if isinstance(holder, dict) else ""
        if isinstance(value, str) and value.startswith("/") and not any(ch.isspace() for ch in value):
            problem = dedicated_dir_problem(value)
            if problem:
                errors.append(f"litellm:{key}: {problem}")
    _check_lookup_paths(errors, settings.get("lookup", {}))
    service = settings.get("service") if isinstance(settings.get("service"), dict) else {}
    for key in ("user", "group"):
        if service.get(key) in RESERVED_ACCOUNTS - ({"root"} if key == "user" else set()):
            errors.append(
                f"litellm:service:{key}: {service[key]!r} is a system account; the formula runs the service "
                "as an account of its own that it creates"
            )
    _check_overlaps(errors, plan_layout(settings))


# --- rendering (pure) ---------------------------------------------------------


def local_url(bind_host, bind_port):
    """
    The URL at which the gateway answers on the host itself.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.local_url 0.0.0.0 4000
    """
    return __utils__["litellm_settings.local_url"](bind_host, bind_port)


def _deployment_id(alias, backend):
    # No ':' in it: LiteLLM's usage-based-routing-v2 splits its usage keys on
    # ':' and finds no deployment at all for an id that has one (every request
    # 429 "No deployments available", measured on 1.108.7).
    netloc = urllib.parse.urlsplit(backend).netloc
    return f"{alias}@{netloc}".replace(":", "_")


def build_config(settings):
    """
    The LiteLLM config as a dict: one model_list entry per model x backend.

    Every alias exists on every backend, so the router balances between them
    and fails over when one is down. The master key is only referenced.
    """
    timeout = settings["request_timeout"]
    model_list = []
    for model in settings["models"]:
        prefix = PROVIDERS[model.get("provider", "ollama")]
        # Per-deployment limits: enforced by usage-based-routing-v2 (weights otherwise).
        limits = {limit: model[limit] for limit in MODEL_LIMIT_KEYS if model.get(limit) is not None}
        for backend in settings["backends"]:
            model_list.append(
                {
                    "model_name": model["name"],
                    "litellm_params": {
                        "model": f"{prefix}/{model['model']}",
                        "api_base": backend.rstrip("/"),
                        "timeout": timeout,
                        **limits,
                    },
                    "model_info": {"id": _deployment_id(model["name"], backend)},
                }
            )
    router_settings = {
        "routing_strategy": settings["routing_strategy"],
        "num_retries": settings["max_retries"],
        "timeout": timeout,
        "allowed_fails": settings["allowed_fails"],
        "cooldown_time": settings["cooldown_time"],
        # A refused connection never cools a deployment down in LiteLLM 1.108;
        # this retries on the other backends of the alias instead (measured:
        # 100/100 with one of two backends dead, 86/100 without).
        "enable_weighted_failover": True,
    }
    redis = settings.get("redis") or {}
    if redis.get("host"):
        # Shared router state (usage, cooldowns) between gateways: host, port
        # and password (LiteLLM documents redis_url as slower); the password
        # only by reference, its value is in the env file.
        router_settings.update(
            {
                "redis_host": redis["host"],
                "redis_port": redis.get("port", 6379),
                "redis_password": f"os.environ/{REDIS_PASSWORD_ENV}",
            }
        )
    router_settings.update(settings.get("router_settings") or {})
    litellm_settings = {
        "request_timeout": timeout,
        "drop_params": True,
    }
    if settings["service"].get("log_format") == "json":
        # uvicorn's own access and error lines as JSON too (JSON_LOGS in the env covers LiteLLM's)
        litellm_settings["json_logs"] = True
    litellm_settings.update(settings.get("litellm_settings") or {})
    general_settings = {"master_key": f"os.environ/{MASTER_KEY_ENV}"}
    if settings["health_check_interval"]:
        # Background checks (general_settings, not router_settings: there they
        # stop LiteLLM from starting) and routing that skips unhealthy backends.
        general_settings.update(
            {
                "background_health_checks": True,
                "health_check_interval": settings["health_check_interval"],
                "enable_health_check_routing": True,
            }
        )
    general_settings.update(settings.get("general_settings") or {})
    if settings.get("keys"):
        # Client keys without a database: the formula's hook checks every key
        # against the key table first; auto mode hands the master key (and no
        # key) on to LiteLLM's own auth. The common checks keep client keys off
        # admin routes; the post-custom-auth checks enforce models and expiry.
        general_settings.update(
            {
                "custom_auth": f"{AUTH_HOOK_MODULE}.authenticate",
                "custom_auth_settings": {"mode": "auto"},
                "custom_auth_run_common_checks": True,
            }
        )
        litellm_settings["enable_post_custom_auth_checks"] = True
    return {
        "model_list": model_list,
        "router_settings": router_settings,
        "litellm_settings": litellm_settings,
        "general_settings": general_settings,
    }


def config_text(settings):
    """
    The config.yaml text for the merged settings (used by the config template).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.config_text '{...merged settings...}'
    """
    header = "# Managed by Salt (litellm formula). Local edits are overwritten.\n"
    return header + salt.utils.yaml.safe_dump(build_config(settings), default_flow_style=False, sort_keys=False)


def key_table(settings):
    """
    The client key table (client-keys.json) as a dict: per client its key's
    SHA-256 (never the key), models (all aliases by default), limits, expiry
    (aware ISO date-time) and disabled flag. Read by the formula's hook, which
    re-reads it when it changes: no restart.
    """
    aliases = _alias_names(settings.get("models"))
    clients = {}
    for name, spec in sorted((settings.get("keys") or {}).items()):
        expires = spec.get("expires")
        clients[name] = {
            "hash": _key_hash(spec),
            "models": list(spec.get("models") or aliases),
            "rpm": spec.get("rpm"),
            "tpm": spec.get("tpm"),
            "max_parallel": spec.get("max_parallel"),
            "expires": _expiry(expires).isoformat() if expires not in (None, "") else None,
            "disabled": bool(spec.get("disabled", False)),
        }
    return {"format": KEY_TABLE_FORMAT, "clients": clients}


def key_table_text(settings):
    """
    The client-keys.json text for the merged settings (used by its template).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.key_table_text '{...merged settings...}'
    """
    return json.dumps(key_table(settings), indent=1, sort_keys=True) + "\n"


def redact_env(text):
    """
    The env file text with the secrets' values (master key, Redis password) replaced.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.redact_env "$(cat /etc/litellm/litellm.env)"
    """
    return __utils__["litellm_redact.redact_env"](text, (MASTER_KEY_ENV, REDIS_PASSWORD_ENV))


# --- thin wrappers (pillar, file server) ---------------------------------------


def _loaded(dunder):
    """The object behind a loader dunder: Salt's proxies resolve only in this module's own context."""
    return dunder.value() if isinstance(dunder, NamedLoaderContext) else dunder


def _merged_settings(saltenv):
    """The formula's merged settings, through map.jinja itself."""
    return __utils__["litellm_settings.merged"](_loaded(__salt__), saltenv)


def validate(settings=None, saltenv="base"):
    """
    Validate the formula's settings: the merged map of defaults and pillar, or
    the given ``settings``. Returns ``{"valid": bool, "errors": [...]}``; each
    error names the pillar key and the problem. Secrets are never echoed.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.validate
        salt-ssh gateway litellm_config.validate
    """
    if settings is None:
        settings = _merged_settings(saltenv)
    errors = check_settings(settings)
    return {"valid": not errors, "errors": errors}


def layout(settings=None, saltenv="base"):
    """
    What the formula would create on this host for the merged settings
    (default: defaults + pillar): each path, unit, user and group, with the
    pillar key that names it. Changes nothing; ``litellm_owner.show`` lists
    what it did create.

    CLI Example:

    .. code-block:: bash

        salt-call --local litellm_config.layout
    """
    if settings is None:
        settings = _merged_settings(saltenv)
    return plan_layout(settings)


def _render_template(name, settings, saltenv):
    contents = __salt__["cp.get_file_str"](f"salt://litellm/files/{name}", saltenv=saltenv)
    if contents is False or contents is None:
        raise FileNotFoundError(f"salt://litellm/files/{name} not found in saltenv {saltenv!r}")
    result = __salt__["file.apply_template_on_contents"](
        contents, template="jinja", context={"litellm": settings}, defaults={}, saltenv=saltenv
    )
    return result


def render(settings=None, saltenv="base"):
    """
    Render, without touching the host, the files the formula would write for
    the current pillar (or the given ``settings``): ``config`` (config.yaml),
    ``env`` (litellm.env, master key redacted), ``keys`` (client-keys.json:
    hashes, never keys) and ``unit`` (the systemd unit), plus the validation
    ``errors``. Nothing is rendered when the settings are invalid.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.render
        salt-ssh gateway litellm_config.render --out=yaml
    """
    if settings is None:
        settings = _merged_settings(saltenv)
    errors = check_settings(settings)
    if errors:
        return {"valid": False, "errors": errors}
    return {
        "valid": True,
        "errors": [],
        "config": config_text(settings),
        "env": redact_env(_render_template("litellm.env.jinja", settings, saltenv)),
        "keys": key_table_text(settings),
        "unit": _render_template("litellm.service.jinja", settings, saltenv),
    }


def rollback(steps=1, service="litellm", ready_timeout=180):
    """
    Roll the gateway back to a known-good release (config.yaml, litellm.env
    and venv, kept after each passing smoke test): ``steps`` releases older
    than the live one, or the newest one when the live state never passed.
    Restarts the service, waits until it is ready and runs the smoke test.
    What to roll back is read from the deployed unit of ``service``, so it
    also works through salt-ssh, which gives custom modules no pillar. The
    next ``state.apply`` deploys what pillar says again: revert pillar too to
    stay rolled back.

    Returns the rollback (``action``, ``release``, ``restored``, ``ready``)
    and the ``smoke`` summary; never file contents.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.rollback
        salt-ssh gateway litellm_config.rollback steps=2
    """
    unit_path = f"/etc/systemd/system/{service}.service"
    try:
        with open(unit_path, encoding="utf-8") as handle:
            unit = __salt__["litellm_smoke.unit_settings"](handle.read())
    except OSError as exc:
        return {"action": "none", "reason": f"{unit_path}: {exc.strerror}: is the gateway deployed here?"}
    config_dir = os.path.dirname(unit.get("config", "/etc/litellm/config.yaml"))
    url = local_url(unit.get("bind_host", "0.0.0.0"), unit.get("bind_port", 4000))
    result = __salt__["litellm_release.recover"](
        config_dir=config_dir,
        venv=unit.get("venv", "/opt/litellm/venv"),
        service=service,
        group=unit.get("group", "litellm"),
        url=url,
        ready_timeout=int(ready_timeout),
        steps=int(steps),
        force_restart=True,
    )
    if result["action"] == "rolled_back":
        report = __salt__["litellm_smoke.run_as_deployed"](
            url=url, config_dir=config_dir, env_file=unit.get("env_file")
        )
        result["smoke"] = report["summary"]
        result["smoke_result"] = report["result"]
    return result

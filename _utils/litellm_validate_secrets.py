"""
Validation of the secrets of the formula's settings and of the section that
holds one: the master key (``litellm:master_key``) and ``litellm:redis``
(shared router state between gateways, with its password). A secret's value
is never echoed: only its length, or what is wrong with it.
"""

import ipaddress

MIN_MASTER_KEY_LENGTH = 32
MIN_REDIS_PASSWORD_LENGTH = 16
REDIS_KEYS = {"host", "port", "password", "server", "bind", "maxmemory_mib"}
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


def secret_given(errors, key, value, missing="missing"):
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


def check_secret_strength(errors, key, value, rules):
    """Length, characters and placeholders of a secret (only its length is ever echoed)."""
    if len(value) < rules["min_length"]:
        errors.append(f"{key}: too short ({len(value)} characters); use at least {rules['min_length']}")
    if any(ch.isspace() or ord(ch) < 32 or ch in rules["forbidden"] for ch in value):
        errors.append(f"{key}: must not contain white space, quotes, {rules['forbidden_text']}")
    lowered = value.lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS) or len(set(value[rules["skip"]:])) < 8:
        errors.append(f"{key}: looks like a placeholder; generate one with: {rules['generate']}")


def check_master_key(utils, errors, value):
    key = "litellm:master_key"
    if not secret_given(errors, key, value):
        return
    if not value.startswith("sk-"):
        errors.append(f"{key}: must start with 'sk-' (LiteLLM treats keys without it as invalid)")
    rules = {"min_length": MIN_MASTER_KEY_LENGTH, "forbidden": "\"'\\$`", "forbidden_text": "'\\', '$' or '`'",
             "skip": 3, "generate": "echo sk-$(openssl rand -hex 24)"}
    check_secret_strength(errors, key, value, rules)


def _check_redis_password(errors, value, master_key):
    key = "litellm:redis:password"
    if not secret_given(errors, key, value, missing="missing (litellm:redis:host is set)"):
        return
    rules = {"min_length": MIN_REDIS_PASSWORD_LENGTH, "forbidden": "\"'\\$`#",
             "forbidden_text": "'\\', '$', '`' or '#'", "skip": 0, "generate": "openssl rand -hex 24"}
    check_secret_strength(errors, key, value, rules)
    if value == master_key:
        errors.append(f"{key}: must not be the master key")


def _redis_bind(utils, errors, redis):
    """litellm:redis:bind, the addresses an installed Redis listens on ([] when not a list)."""
    describe = utils.litellm_validate.describe
    bind = redis.get("bind", [])
    if not isinstance(bind, list):
        errors.append(f"litellm:redis:bind: must be a list of IP addresses, got {describe(bind)}")
        return []
    for index, address in enumerate(bind):
        try:
            ipaddress.ip_address(address)
        except (TypeError, ValueError):
            errors.append(f"litellm:redis:bind:{index}: must be an IP address, got {describe(address)}")
    return bind


def check_redis(utils, errors, redis, master_key):
    """litellm:redis: shared router state between gateways ('' host: none)."""
    v = utils.litellm_validate
    if not isinstance(redis, dict):
        errors.append(f"litellm:redis: must be a mapping, got {v.describe(redis)}")
        return
    v.unknown_keys(errors, "litellm:redis", redis, REDIS_KEYS)
    host = redis.get("host", "")
    v.check_int(errors, "redis:port", redis.get("port", 6379), 1, 65535)
    v.check_int(errors, "redis:maxmemory_mib", redis.get("maxmemory_mib", 256), 0, 1048576)
    server = redis.get("server", "")
    if not isinstance(server, str) or any(ch.isspace() for ch in server):
        errors.append(f"litellm:redis:server: must be a minion id or '', got {v.describe(server)}")
    bind = _redis_bind(utils, errors, redis)
    if host == "":
        if server:
            errors.append("litellm:redis:server: set, but litellm:redis:host (where gateways reach it) is empty")
        return
    v.check_host(errors, "redis:host", host)
    _check_redis_password(errors, redis.get("password"), master_key)
    if server and not bind and isinstance(host, str) and host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            errors.append(
                "litellm:redis:bind: needed when the formula installs Redis (litellm:redis:server) "
                "and litellm:redis:host is a name: the addresses Redis listens on"
            )

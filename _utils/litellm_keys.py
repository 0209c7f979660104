"""
Client keys (``litellm:keys``): checked by the formula's custom_auth hook
(``files/litellm_client_keys.py``) against a table of their hashes
(``client-keys.json``). Here: their validation (``check_keys``) and the key
table the formula renders (``key_table``, ``key_table_text``). A key itself
is never echoed nor written: only its SHA-256.
"""

import datetime
import hashlib
import json
import re

CLIENT_KEY_KEYS = {"hash", "key", "models", "rpm", "tpm", "max_parallel", "expires", "disabled"}
CLIENT_LIMIT_KEYS = ("rpm", "tpm", "max_parallel")
CLIENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY_HASH_RE = re.compile(r"^sha256:[0-9A-Fa-f]{64}$")
MIN_CLIENT_KEY_LENGTH = 32
KEY_TABLE_FORMAT = 1


def alias_names(models):
    """The valid aliases of litellm:models, in pillar order."""
    if not isinstance(models, list):
        return []
    return [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]


def key_hash(spec):
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


def expiry(value):
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


# --- validation ------------------------------------------------------------------------


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


def _check_secret(utils, errors, where, spec, master_key):
    """Exactly one of hash or key, and not the master key's."""
    if ("hash" in spec) == ("key" in spec):
        errors.append(f"{where}: give exactly one of hash ('sha256:<hex>', preferred) or key (GPG-encrypted)")
    if "hash" in spec:
        value = spec["hash"]
        master_hash = hashlib.sha256(master_key.encode("utf-8")).hexdigest() if isinstance(master_key, str) else None
        if not isinstance(value, str) or not KEY_HASH_RE.match(value):
            errors.append(
                f"{where}:hash: must be 'sha256:' and 64 hex digits (scripts/new-client-key prints it), "
                f"got {utils.litellm_validate.describe(value)}"
            )
        elif master_hash is not None and value.split(":", 1)[1].lower() == master_hash:
            errors.append(f"{where}:hash: is the hash of the master key; give every client a key of its own")
    elif "key" in spec:
        _check_client_key(errors, where, spec["key"], master_key)


def _check_models(utils, errors, where, chosen, aliases):
    if not isinstance(chosen, list) or not chosen:
        errors.append(
            f"{where}:models: must be a non-empty list of aliases (leave it out for all), "
            f"got {utils.litellm_validate.describe(chosen)}"
        )
        return
    for index, alias in enumerate(chosen):
        if not isinstance(alias, str) or alias not in aliases:
            errors.append(
                f"{where}:models:{index}: {alias!r} is not an alias of litellm:models "
                f"({', '.join(sorted(aliases)) or 'none'})"
            )


def _check_terms(utils, errors, name, where, spec):
    """Limits, expiry and the disabled flag of one client."""
    v = utils.litellm_validate
    for limit in CLIENT_LIMIT_KEYS:
        if spec.get(limit) is not None:
            v.check_int(errors, f"keys:{name}:{limit}", spec[limit], 1, 10**9)
    if spec.get("expires") not in (None, ""):
        try:
            expiry(spec["expires"])
        except (TypeError, ValueError):
            errors.append(
                f"{where}:expires: must be an ISO date like '2027-06-30' (or date-time), "
                f"got {v.describe(spec['expires'])}"
            )
    if not isinstance(spec.get("disabled", False), bool):
        errors.append(f"{where}:disabled: must be true or false, got {v.describe(spec.get('disabled'))}")


def check_keys(utils, errors, keys, models, master_key):
    """litellm:keys: client name -> {hash or key, models, rpm, tpm, max_parallel, expires, disabled}."""
    v = utils.litellm_validate
    if keys in (None, {}):
        return
    if not isinstance(keys, dict):
        errors.append(f"litellm:keys: must be a mapping of client name: settings, got {v.describe(keys)}")
        return
    aliases = set(alias_names(models))
    seen = {}
    for name, spec in keys.items():
        where = f"litellm:keys:{name}"
        if not isinstance(name, str) or not CLIENT_NAME_RE.match(name):
            errors.append(f"{where}: the client name must be letters, digits, '.', '_' or '-' (at most 64)")
        if not isinstance(spec, dict):
            errors.append(
                f"{where}: must be a mapping with hash (or key), models, rpm, tpm, ..., got {v.describe(spec)}"
            )
            continue
        v.unknown_keys(errors, where, spec, CLIENT_KEY_KEYS)
        _check_secret(utils, errors, where, spec, master_key)
        digest = key_hash(spec)
        if digest is not None:
            if digest in seen:
                errors.append(f"{where}: same key as litellm:keys:{seen[digest]} (duplicate hash)")
            else:
                seen[digest] = name
        if "models" in spec:
            _check_models(utils, errors, where, spec["models"], aliases)
        _check_terms(utils, errors, name, where, spec)


# --- the key table ---------------------------------------------------------------------


def key_table(settings):
    """
    The client key table (client-keys.json) as a dict: per client its key's
    SHA-256 (never the key), models (``[]``: every alias, LiteLLM's "all
    models", so adding or removing an alias leaves the table as it is),
    limits, expiry (aware ISO date-time) and disabled flag. Read by the
    formula's hook, which re-reads it when it changes: no restart.
    """
    clients = {}
    for name, spec in sorted((settings.get("keys") or {}).items()):
        expires = spec.get("expires")
        clients[name] = {
            "hash": key_hash(spec),
            "models": list(spec.get("models") or []),
            "rpm": spec.get("rpm"),
            "tpm": spec.get("tpm"),
            "max_parallel": spec.get("max_parallel"),
            "expires": expiry(expires).isoformat() if expires not in (None, "") else None,
            "disabled": bool(spec.get("disabled", False)),
        }
    return {"format": KEY_TABLE_FORMAT, "clients": clients}


def key_table_text(settings):
    """The client-keys.json text for the merged settings."""
    return json.dumps(key_table(settings), indent=1, sort_keys=True) + "\n"

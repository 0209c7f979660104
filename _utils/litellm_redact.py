"""
Redaction of secrets, for every module of the litellm formula: the master
key, Redis and package index passwords, ``sk-`` keys, and the secret lines of
the env file. Pure functions; each returns a copy.
"""

import re
import urllib.parse

REDACTED = "<redacted>"
SK_RE = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")
URL_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/@\s:]*):(?P<password>[^/@\s]*)@")


def _walk(value, scrub):
    """``value`` (any JSON-like structure) with ``scrub`` applied to every string, keys included."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {_walk(key, scrub): _walk(item, scrub) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_walk(item, scrub) for item in value]
    return value


def redact_text(text, secrets=()):
    """``text`` without the given secrets, URL passwords or ``sk-`` keys."""
    for secret in sorted((s for s in secrets if isinstance(s, str) and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = URL_USERINFO_RE.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{REDACTED}@", text)
    return SK_RE.sub(REDACTED, text)


def redact(value, secrets=()):
    """``value`` with every string redacted as ``redact_text`` does."""
    return _walk(value, lambda text: redact_text(text, secrets))


def redact_secret(value, secret):
    """
    ``value`` with every occurrence of the one ``secret`` replaced (nothing
    else); ``value`` itself when there is no secret.
    """
    if not secret or not isinstance(secret, str):
        return value
    return _walk(value, lambda text: text.replace(secret, REDACTED))


def settings_secrets(settings):
    """Strings of the formula's settings that must never be output: the master key, index and Redis passwords,
    the listener's TLS key."""
    if not isinstance(settings, dict):
        return []
    secrets = []
    key = settings.get("master_key")
    if isinstance(key, str) and key:
        secrets.append(key)
    index = settings.get("package_index")
    urls = [index.get("url")] + list(index.get("extra_urls") or []) if isinstance(index, dict) else []
    for url in urls:
        if isinstance(url, str) and "@" in url:
            try:
                password = urllib.parse.urlsplit(url).password
            except ValueError:
                password = None
            if password:
                secrets.extend({password, urllib.parse.unquote(password)})
    redis = settings.get("redis")
    if isinstance(redis, dict) and isinstance(redis.get("password"), str) and redis["password"]:
        secrets.append(redis["password"])
    tls = settings.get("tls")
    if isinstance(tls, dict) and isinstance(tls.get("key"), str) and tls["key"].strip():
        # the PEM private key, and each of its base64 lines should one be shown alone
        secrets.append(tls["key"])
        secrets.extend(line.strip() for line in tls["key"].splitlines() if len(line.strip()) >= 16
                       and not line.startswith("-----"))
    return secrets


def redact_env(text, names):
    """An env file's text with the values of the variables ``names`` replaced."""
    lines = []
    for line in text.splitlines():
        for name in names:
            if line.startswith(f"{name}="):
                line = f"{name}={REDACTED}"
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")

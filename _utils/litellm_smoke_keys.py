"""
The smoke key: a client key of the formula's own, generated on the host
(``<config_dir>/smoke-key``, root 0600, never in pillar, never printed or
returned), entered in the key table under the reserved client name
``_smoke`` (pillar client names start with a letter or digit) with one alias
and the smallest limits (``litellm:smoke:key``). The ``client_key`` smoke
check proves the hook with it: its alias 200, another alias 403, a wrong key
401, ``/v1/models`` exactly its alias; then that every worker has the table
in force (``litellm_smoke_workers``). ``utils`` is ``__utils__``.
"""

import hashlib
import http.client
import json
import os
import secrets
import time

SMOKE_CLIENT = "_smoke"
KEY_FILE = "smoke-key"
KEY_PREFIX = "sk-smoke-"
#: asked for the 403 when the smoke key's alias is the only one configured
NO_SUCH_ALIAS = "litellm-smoke-not-allowed"
CHAT = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}


def key_path(config_dir):
    return os.path.join(config_dir, KEY_FILE)


def _valid(key):
    return isinstance(key, str) and key.startswith(KEY_PREFIX) and len(key) >= 40 and key.isprintable()


def read_key(path):
    """The smoke key in ``path``, or None (absent, unreadable or not a smoke key)."""
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.read(256).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return key if _valid(key) else None


def ensure_key(path, test=False):
    """
    Make the smoke key at ``path`` (root:root 0600, created exclusively,
    written before it is renamed in place) unless a valid one is there.
    Returns ``{"path", "created", "reason"}``; never the key.
    """
    if read_key(path) is not None:
        return {"path": path, "created": False, "reason": "present"}
    reason = "absent" if not os.path.lexists(path) else "not a smoke key: replaced"
    if test:
        return {"path": path, "created": None, "reason": reason}
    tmp = f"{path}.new-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.fchown(fd, 0, 0)
        os.write(fd, (KEY_PREFIX + secrets.token_hex(32) + "\n").encode("ascii"))
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    return {"path": path, "created": True, "reason": reason}


def table_entry(key, alias, limits):
    """The key table's entry of the smoke key: its hash, one alias, the limits (``litellm:smoke:key``)."""
    entry = {"hash": "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest(), "models": [alias]}
    entry.update({name: limits.get(name) for name in ("rpm", "tpm", "max_parallel") if limits.get(name)})
    return entry


def wrong_key():
    return "sk-smoke-wrong-" + secrets.token_hex(16)


def _status(web, target, path, key, timeout, body=None):
    answer = web.request(target, "POST" if body else "GET", path, timeout, key, body)
    return answer["status"], answer


def _ask(utils, url, key, alias, other, timeout):
    """The four answers: alias, other alias, wrong key, /v1/models; and the listed ids."""
    web, parse = utils.litellm_http, utils.litellm_smoke_parse
    target = web.target(url)
    got = {
        "alias": _status(web, target, "/v1/chat/completions", key, timeout, dict(CHAT, model=alias)),
        "other_alias": _status(web, target, "/v1/chat/completions", key, timeout, dict(CHAT, model=other)),
        "wrong_key": _status(web, target, "/v1/models", wrong_key(), timeout),
        "models": _status(web, target, "/v1/models", key, timeout),
    }
    body = parse.parse_json(got["models"][1]["body"])
    data = body.get("data") if isinstance(body, dict) else None
    listed = sorted(str(item.get("id")) for item in data or [] if isinstance(item, dict))
    return got, listed


EXPECTED = {"alias": 200, "other_alias": 403, "wrong_key": 401, "models": 200}


def probe(utils, url, key, alias, other, timeout):
    """``(problems, numbers)`` of the smoke key's four requests."""
    parse = utils.litellm_smoke_parse
    got, listed = _ask(utils, url, key, alias, other, timeout)
    numbers = {f"{name}_status": status for name, (status, _) in got.items()}
    numbers["listed"] = listed
    problems = [
        f"{name.replace('_', ' ')}: {parse.answer_detail(answer)} (expected {EXPECTED[name]})"
        for name, (status, answer) in got.items()
        if status != EXPECTED[name]
    ]
    if got["models"][0] == 200 and listed != [alias]:
        problems.append(f"/v1/models lists {', '.join(listed) or 'nothing'} (expected only {alias})")
    return problems, numbers


def client_key(utils, url, key, alias, other, workers, timeout=30):
    """
    The ``client_key`` check: ``key`` the smoke key (None: fail), ``alias``
    its alias, ``other`` an alias it may not use, ``workers`` a callable
    returning ``(problems, detail, numbers)`` of the workers' tables.
    """
    parse = utils.litellm_smoke_parse
    started = time.monotonic()
    if not key:
        return parse.result("client_key", "fail", "no smoke key on this host (litellm:smoke:key)", started)
    try:
        problems, numbers = probe(utils, url, key, alias, other, parse.clamp_timeout(timeout))
    except ValueError as exc:
        return parse.result("client_key", "fail", str(exc), started)
    except (OSError, http.client.HTTPException) as exc:
        return parse.result("client_key", "fail", f"smoke key: {parse.error_text(exc)}", started)
    worker_problems, worker_detail, worker_numbers = workers()
    numbers.update(worker_numbers)
    summary = (
        f"smoke key: {alias} {numbers['alias_status']}, {other} {numbers['other_alias_status']}, "
        f"wrong key {numbers['wrong_key_status']}, /v1/models {', '.join(numbers['listed']) or '-'}; {worker_detail}"
    )
    status = "fail" if problems or worker_problems else "pass"
    detail = "; ".join(problems + worker_problems + [summary])
    return utils.litellm_redact.redact_secret(parse.result("client_key", status, detail, started, **numbers), key)


def _custom_auth(config_bytes):
    try:
        import yaml  # PyYAML: always there with Salt

        data = yaml.safe_load(config_bytes.decode("utf-8", "replace"))
    except Exception:  # pylint: disable=broad-except
        return None
    general = data.get("general_settings") if isinstance(data, dict) else None
    return general.get("custom_auth") if isinstance(general, dict) else None


def _smoke_alias(table_bytes):
    try:
        clients = json.loads(table_bytes.decode("utf-8")).get("clients") or {}
        return (clients.get(SMOKE_CLIENT) or {}).get("models", [None])[0]
    except (ValueError, AttributeError, IndexError):
        return None


def context(utils, config_dir, runtime_dir, aliases, pids):
    """
    What the ``client_key`` check needs from the gateway deployed here
    (``config_dir``: its config.yaml, key table and smoke key; ``runtime_dir``:
    the workers' status files): ``(context, why)``, context None (the check is
    skipped, ``why`` says why) when the config here loads no hook or there is
    none; ``pids`` (a callable) gives the live workers.
    """
    read = utils.litellm_files.read_bytes
    try:
        config = read(os.path.join(config_dir, "config.yaml"))
        table = read(os.path.join(config_dir, "client-keys.json"))
    except OSError as exc:
        return None, f"{config_dir}: {exc.strerror}"
    if config is None:
        return None, f"no gateway deployed here ({config_dir}/config.yaml)"
    if not _custom_auth(config):
        return None, "no client keys (litellm:keys): the gateway loads no key hook"
    alias = _smoke_alias(table or b"")
    others = [name for name in aliases or [] if name != alias]
    return {
        "key": read_key(key_path(config_dir)) if alias else None,
        "alias": alias,
        "other": others[0] if others else NO_SUCH_ALIAS,
        "table": os.path.join(config_dir, "client-keys.json"),
        "runtime_dir": runtime_dir,
        "pids": pids,
    }, ""

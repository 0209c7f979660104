"""
Smoke-test a running LiteLLM proxy end to end: is it up, does it enforce its
key, does it list exactly the configured aliases, does every alias answer
(plain and streamed), do requests spread over every healthy backend, are bad
requests refused, how fast is it, and what does its own ``/health`` say.

Stdlib only (http.client, concurrent.futures). Every check returns
``{"name", "status": pass|fail|warn|skip, "detail", "duration_ms", ...}``;
``run`` runs them all and returns ``{"result": PASS|FAIL, "checks": [...], ...}``.
Request bodies are tiny ("ping"), every request has a timeout, every loop a
bound, and nothing is sent anywhere but the gateway's URL.

The master key never appears in a return value, a detail, an evidence file or
a log line: the whole report goes through ``_redact`` before it leaves. Prefer
the key from pillar (or ``$LITELLM_MASTER_KEY``) over ``master_key=`` on a
command line, where other users of the host can read it.

Measured against LiteLLM 1.108.7 without a database: no key 401, a wrong key
400 ("No connected db."), unknown model / malformed JSON / missing
``messages`` 400, ``/health`` needs the key.
"""

import concurrent.futures
import datetime
import http.client
import json
import logging
import os
import shlex
import socket
import ssl
import statistics
import time
import urllib.parse

log = logging.getLogger(__name__)

__virtualname__ = "litellm_smoke"

REDACTED = "<redacted>"
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
WRONG_KEY = "sk-smoke-wrong-key"
UNKNOWN_MODEL = "smoke-no-such-model"
PROMPT = "ping"
MAX_TOKENS = 8
DEFAULT_BIND_HOST = "0.0.0.0"
DEFAULT_BIND_PORT = 4000

# Bounds: whatever the arguments say, a run stays small.
MAX_CONCURRENCY = 50
MAX_LATENCY_REQUESTS = 100
MAX_CHAT_MODELS = 20
MAX_BODY_BYTES = 1024 * 1024
MAX_SSE_LINES = 4000
MAX_TIMEOUT = 300
PROBE_TIMEOUT = 5  # listening / liveliness / readiness answer at once or not at all
# A fan-out round that leaves a healthy backend without a request is repeated,
# after a pause from the third round on: with several workers (or gateways
# sharing Redis) usage-based routing sees its peers' usage only after their
# counters are synced, and sends a short burst to one backend.
FANOUT_ROUNDS = 4
FANOUT_PAUSE_S = 1.0
DETAIL_CHARS = 300

BACKEND_HEADER = "x-litellm-model-api-base"
OVERHEAD_HEADER = "x-litellm-overhead-duration-ms"
CHECKS = (
    "listening",
    "liveliness",
    "readiness",
    "models_auth",
    "chat",
    "stream",
    "fanout",
    "errors",
    "latency",
    "health",
)
NO_ALIAS = "no alias to ask (none configured, none listed)"
# The formula's unit: where a run without pillar finds the deployed gateway.
DEPLOYED_UNIT = "/etc/systemd/system/litellm.service"
AUTH_ERROR_TYPES = ("auth_error", "no_db_connection")
KEYLESS_CHECKS = ("listening", "liveliness", "readiness", "models_auth")


def __virtual__():
    return __virtualname__


# --- pure helpers ---------------------------------------------------------------


def _redact(obj, secret):
    """
    ``obj`` (any JSON-like structure) with every occurrence of ``secret`` in
    its strings and keys replaced by ``<redacted>``. Pure; returns a copy.
    """
    if not secret or not isinstance(secret, str):
        return obj
    if isinstance(obj, str):
        return obj.replace(secret, REDACTED)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace").replace(secret, REDACTED)
    if isinstance(obj, dict):
        return {_redact(key, secret): _redact(value, secret) for key, value in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_redact(item, secret) for item in obj]
    return obj


def _one_line(text, limit=DETAIL_CHARS):
    """``text`` on one line, shortened to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ms(seconds):
    return round(seconds * 1000.0, 1)


def percentile(values, pct):
    """
    The ``pct`` percentile (0-100) of ``values`` with linear interpolation
    between the closest ranks (numpy's default); None for no values.
    """
    data = sorted(float(v) for v in values if v is not None)
    if not data:
        return None
    if len(data) == 1:
        return round(data[0], 1)
    if pct <= 0:
        return round(data[0], 1)
    if pct >= 100:
        return round(data[-1], 1)
    return round(statistics.quantiles(data, n=100, method="inclusive")[int(pct) - 1], 1)


def parse_sse(text):
    """
    Parse an OpenAI-style server-sent-event stream (``data: {...}`` lines,
    ending with ``data: [DONE]``). Returns ``{"chunks", "content", "done",
    "done_last", "errors"}``: ``done_last`` is True when ``[DONE]`` is the last
    data line; ``errors`` holds undecodable chunks and ``{"error": ...}`` ones.
    """
    chunks = 0
    parts = []
    errors = []
    done = False
    done_last = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("data:"):
            continue  # blank separators, comments (":"), "event:" lines
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            done = done_last = True
            continue
        done_last = False
        try:
            chunk = json.loads(data)
        except ValueError:
            errors.append(f"undecodable chunk: {_one_line(data, 80)}")
            continue
        if not isinstance(chunk, dict):
            errors.append(f"unexpected chunk: {_one_line(data, 80)}")
            continue
        if "error" in chunk:
            errors.append(f"error chunk: {_one_line(json.dumps(chunk['error']), 160)}")
            continue
        chunks += 1
        for choice in chunk.get("choices") or []:
            content = ((choice or {}).get("delta") or {}).get("content")
            if isinstance(content, str):
                parts.append(content)
    return {"chunks": chunks, "content": "".join(parts), "done": done, "done_last": done_last, "errors": errors}


def compare_aliases(expected, listed):
    """
    Compare the configured aliases with the ones the gateway lists. Returns
    ``{"missing": [...], "extra": [...], "match": bool}`` (sorted lists).
    """
    expected, listed = set(expected or ()), set(listed or ())
    missing, extra = sorted(expected - listed), sorted(listed - expected)
    return {"missing": missing, "extra": extra, "match": not missing and not extra}


def normalize_aliases(models):
    """
    Aliases from pillar-style ``models`` (``[{name, provider, model}]``), a
    list of names, or a comma-separated string. None stays None.
    """
    if models is None:
        return None
    if isinstance(models, str):
        models = [part for part in models.split(",")]
    aliases = []
    for entry in models:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str) and name.strip() and name.strip() not in aliases:
            aliases.append(name.strip())
    return aliases


def normalize_backends(backends):
    """Backend URLs without a trailing slash (list or comma-separated string)."""
    if backends is None:
        return None
    if isinstance(backends, str):
        backends = backends.split(",")
    result = []
    for url in backends:
        if isinstance(url, str) and url.strip():
            normal = url.strip().rstrip("/")
            if normal not in result:
                result.append(normal)
    return result


def chat_targets(chat_models, aliases):
    """
    The aliases the chat check asks: ``"first"``, ``"all"``, one alias, or a
    list (bounded to MAX_CHAT_MODELS).
    """
    aliases = list(aliases or [])
    if chat_models in (None, "", "first"):
        targets = aliases[:1]
    elif chat_models == "all":
        targets = aliases
    elif isinstance(chat_models, str):
        targets = [part.strip() for part in chat_models.split(",") if part.strip()]
    else:
        targets = [str(part) for part in chat_models]
    return targets[:MAX_CHAT_MODELS]


def _base(url):
    return url.rstrip("/") if isinstance(url, str) else url


def health_by_backend(health):
    """
    Group a ``/health`` answer by ``api_base``:
    ``{api_base: {"healthy": n, "unhealthy": n, "failing": [model, ...], "errors": [...]}}``.
    """
    result = {}
    for key, state in (("healthy_endpoints", "healthy"), ("unhealthy_endpoints", "unhealthy")):
        for endpoint in (health or {}).get(key) or []:
            if not isinstance(endpoint, dict):
                continue
            base = _base(endpoint.get("api_base")) or "(no api_base)"
            entry = result.setdefault(base, {"healthy": 0, "unhealthy": 0, "failing": [], "errors": []})
            entry[state] += 1
            if state == "unhealthy":
                label = endpoint.get("model_id") or endpoint.get("model") or "?"
                model = endpoint.get("model")
                if model and model != label:
                    label = f"{label} [{model}]"
                entry["failing"].append(label)
                error = endpoint.get("error")
                if error:
                    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                    entry["errors"].append(_one_line(first, 160))
    return result


def fanout_verdict(shares, healthy, unhealthy, failures, configured=None):
    """
    Judge a fan-out: ``shares`` {api_base: answered}, ``healthy``/``unhealthy``
    the backends ``/health`` reports, ``failures`` the failed requests,
    ``configured`` the expected backends (or None). Returns (status, detail).
    """
    parts = []
    problems = []
    notes = []
    total = sum(shares.values())
    # When nothing answered, the failures say it all.
    starved = sorted(base for base in healthy if not shares.get(base)) if total else []
    if failures:
        problems.append(f"{failures} request(s) failed")
    if starved:
        problems.append(f"healthy backend(s) got no request: {', '.join(starved)}")
    if unhealthy:
        notes.append(f"unhealthy per /health: {', '.join(sorted(unhealthy))}")
    if configured:
        unknown = sorted(base for base in shares if base not in configured and base != "(no header)")
        absent = sorted(base for base in configured if base not in healthy and base not in unhealthy)
        if unknown:
            notes.append(f"answered by unconfigured backend(s): {', '.join(unknown)}")
        if absent:
            notes.append(f"configured but not in /health: {', '.join(absent)}")
    if total:
        parts.append(
            "shares " + ", ".join(f"{base} {count}/{total}" for base, count in sorted(shares.items()))
        )
    if not healthy and not unhealthy:
        notes.append("/health gave no endpoints for this alias")
    status = "fail" if problems else ("warn" if notes else "pass")
    return status, "; ".join(problems + parts + notes)


def format_summary(report):
    """The report as a readable text table: check, status, detail, duration."""
    rows = [("check", "status", "duration_ms", "detail")]
    for check in report.get("checks", []):
        rows.append(
            (
                str(check.get("name", "")),
                str(check.get("status", "")).upper(),
                str(check.get("duration_ms", "")),
                _one_line(check.get("detail", ""), 160),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"LiteLLM smoke test of {report.get('url')}: {report.get('result')}",
        f"started {report.get('started')}, took {report.get('duration_ms')} ms",
        "",
    ]
    for index, row in enumerate(rows):
        lines.append("  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3])
        if index == 0:
            lines.append("  ".join("-" * widths[i] for i in range(3)) + "  " + "-" * 6)
    lines += ["", report.get("summary", "")]
    return "\n".join(lines) + "\n"


def summarize(checks):
    """Overall ``(result, summary)`` of a list of check results."""
    counts = {status: 0 for status in ("pass", "warn", "fail", "skip")}
    for check in checks:
        counts[check.get("status", "fail")] = counts.get(check.get("status", "fail"), 0) + 1
    failed = [check["name"] for check in checks if check.get("status") == "fail"]
    result = "FAIL" if failed else "PASS"
    summary = (
        f"{result}: {counts['pass']} passed, {counts['warn']} warned, {counts['fail']} failed, "
        f"{counts['skip']} skipped of {len(checks)} checks"
    )
    if failed:
        summary += f" (failed: {', '.join(failed)})"
    return result, summary


def _result(name, status, detail, started, **numbers):
    result = {
        "name": name,
        "status": status,
        "detail": _one_line(detail),
        "duration_ms": _ms(time.monotonic() - started),
    }
    result.update(numbers)
    return result


def _skip(name, why):
    return {"name": name, "status": "skip", "detail": why, "duration_ms": 0.0}


def _timeout(timeout):
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = 30.0
    return min(max(value, 0.5), MAX_TIMEOUT)


def _bounded_int(value, default, low, high):
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = default
    return min(max(value, low), high)


# --- HTTP (thin I/O) --------------------------------------------------------------


class _Target:
    """The gateway: scheme, host, port and path prefix of its URL."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(str(url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        prefix = parts.path.rstrip("/")
        if prefix.endswith("/v1"):  # a base_url like http://gw:4000/v1
            prefix = prefix[: -len("/v1")]
        self.prefix = prefix
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{self.scheme}://{host}:{self.port}{self.prefix}"

    def connection(self, timeout):
        if self.scheme == "https":
            context = ssl.create_default_context()
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def _headers(master_key=None, body=False):
    headers = {"Accept": "application/json", "User-Agent": "litellm-salt-smoke"}
    if master_key:
        headers["Authorization"] = f"Bearer {master_key}"
    if body:
        headers["Content-Type"] = "application/json"
    return headers


def _request(target, method, path, timeout, master_key=None, body=None):
    """
    One request on a fresh connection. Returns ``{"status", "headers",
    "body", "ms"}`` (body text, at most MAX_BODY_BYTES); raises OSError or
    http.client.HTTPException when there is no answer.
    """
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    started = time.monotonic()
    conn = target.connection(timeout)
    try:
        conn.request(method, target.prefix + path, body=body, headers=_headers(master_key, body is not None))
        response = conn.getresponse()
        data = response.read(MAX_BODY_BYTES)
        return {
            "status": response.status,
            "headers": {k.lower(): v for k, v in response.getheaders()},
            "body": data.decode("utf-8", "replace"),
            "ms": _ms(time.monotonic() - started),
        }
    finally:
        conn.close()


def _stream_request(target, path, timeout, master_key, body):
    """A streaming POST; reads SSE lines until ``[DONE]``, EOF or a bound."""
    started = time.monotonic()
    deadline = started + timeout
    conn = target.connection(timeout)
    try:
        conn.request("POST", target.prefix + path, body=json.dumps(body).encode(), headers=_headers(master_key, True))
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        lines = []
        size = 0
        first_ms = None
        while len(lines) < MAX_SSE_LINES and size < MAX_BODY_BYTES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream not finished after {timeout} s")
            line = response.readline(65536)
            if not line:
                break
            size += len(line)
            text = line.decode("utf-8", "replace")
            if first_ms is None and text.startswith("data:"):
                first_ms = _ms(time.monotonic() - started)
            lines.append(text)
            if text.strip() == "data: [DONE]":
                break
        return {
            "status": response.status,
            "headers": headers,
            "body": "".join(lines),
            "ms": _ms(time.monotonic() - started),
            "first_chunk_ms": first_ms,
        }
    finally:
        conn.close()


def _error_text(exc):
    return _one_line(f"{type(exc).__name__}: {exc}", 200)


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _answer_detail(answer):
    """Status and the gist of an error body, for a detail line."""
    body = _json(answer["body"])
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif error is not None:
            message = error
        elif "detail" in body:
            message = body["detail"]
    text = _one_line(message if message is not None else answer["body"], 120)
    return f"{answer['status']} {text}".strip()


def _is_auth_refusal(answer):
    """True when an error answer is about the key rather than the request."""
    body = _json(answer["body"])
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    return error.get("type") in AUTH_ERROR_TYPES or "No connected db" in str(error.get("message"))


def _chat_body(alias, stream=False):
    return {
        "model": alias,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }


def _chat_once(target, master_key, alias, timeout):
    """One small chat completion: ``{"ok", "status", "backend", "ms", "overhead_ms", "error"}``."""
    try:
        answer = _request(target, "POST", "/v1/chat/completions", timeout, master_key, _chat_body(alias))
    except (OSError, http.client.HTTPException) as exc:
        error = _error_text(exc)
        return {"ok": False, "status": None, "backend": None, "ms": None, "overhead_ms": None, "error": error}
    content = None
    body = _json(answer["body"])
    if answer["status"] == 200 and isinstance(body, dict):
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
    overhead = answer["headers"].get(OVERHEAD_HEADER)
    try:
        overhead = round(float(overhead), 1)
    except (TypeError, ValueError):
        overhead = None
    ok = answer["status"] == 200 and isinstance(content, str) and bool(content.strip())
    error = None
    if not ok:
        error = _answer_detail(answer) if answer["status"] != 200 else "200 with empty content"
    return {
        "ok": ok,
        "status": answer["status"],
        "backend": _base(answer["headers"].get(BACKEND_HEADER)),
        "ms": answer["ms"],
        "overhead_ms": overhead,
        "error": error,
    }


def _listed_aliases(target, master_key, timeout):
    """The aliases ``/v1/models`` lists with the master key, or None."""
    try:
        answer = _request(target, "GET", "/v1/models", timeout, master_key)
    except (OSError, http.client.HTTPException):
        return None
    body = _json(answer["body"])
    if answer["status"] != 200 or not isinstance(body, dict):
        return None
    return [item.get("id") for item in body.get("data") or [] if isinstance(item, dict) and item.get("id")]


def _health(target, master_key, timeout, model=None):
    """The authenticated ``/health`` (optionally for one alias): (answer, body) or raises."""
    path = "/health"
    if model:
        path += "?" + urllib.parse.urlencode({"model": model})
    answer = _request(target, "GET", path, timeout, master_key)
    return answer, _json(answer["body"])


# --- settings (pillar) -------------------------------------------------------------


def _salt():
    """The loader's ``__salt__``; empty when the module is imported directly."""
    funcs = globals().get("__salt__")
    return {} if funcs is None else funcs


def _pillar():
    """
    Pillar ``litellm:`` with plain values. Salt 3008 masks pillar values
    ("**********") that ``pillar.get`` returns outside a template unless
    ``unmask=True``; older releases do not know the argument.
    """
    if "pillar.get" not in _salt():
        return {}
    try:
        pillar = _salt()["pillar.get"]("litellm", {}, unmask=True)
    except TypeError:
        pillar = _salt()["pillar.get"]("litellm", {})
    return pillar if isinstance(pillar, dict) else {}


def _local_url(bind_host, bind_port):
    if "litellm_config.local_url" in _salt():
        return _salt()["litellm_config.local_url"](bind_host, bind_port)
    host = "127.0.0.1" if bind_host in ("0.0.0.0", "") else ("::1" if bind_host == "::" else bind_host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{bind_port}"


def unit_settings(text):
    """
    What the formula's unit file says about the gateway: ``{"config",
    "env_file", "bind_host", "bind_port", "venv", "group"}`` (the ones
    found). Pure.
    """
    result = {}
    for raw in (text or "").splitlines():
        line = raw.strip()
        if line.startswith("EnvironmentFile="):
            result["env_file"] = line.split("=", 1)[1].strip().lstrip("-")
        elif line.startswith("Group="):
            result["group"] = line.split("=", 1)[1].strip()
        elif line.startswith("ExecStart="):
            try:
                argv = shlex.split(line.split("=", 1)[1].lstrip("-@+!:"))
            except ValueError:
                continue
            if argv and argv[0].endswith("/bin/litellm"):
                result["venv"] = argv[0][: -len("/bin/litellm")]
            for flag, key in (("--config", "config"), ("--host", "bind_host"), ("--port", "bind_port")):
                if flag in argv[:-1]:
                    result[key] = argv[argv.index(flag) + 1]
    if "bind_port" in result:
        try:
            result["bind_port"] = int(result["bind_port"])
        except ValueError:
            del result["bind_port"]
    return result


def _deployed(need_key=True, unit=DEPLOYED_UNIT):
    """
    The settings of the gateway deployed on this host, read from the
    formula's files (unit, config.yaml, and for the key the env file, which
    only root reads): for a run without ``litellm`` pillar, like
    ``salt-ssh <target> litellm_smoke.run`` (salt-ssh gives custom modules no
    pillar). Empty when nothing is deployed here; never raises.
    """
    try:
        with open(unit, encoding="utf-8") as handle:
            found = unit_settings(handle.read())
    except (OSError, UnicodeDecodeError):
        return {}
    settings = {key: found[key] for key in ("bind_host", "bind_port") if key in found}
    if found.get("config"):
        try:
            aliases, backends = config_expectations(_read(found["config"]) or b"")
        except OSError:
            aliases, backends = None, None
        if aliases:
            settings["models"] = aliases
        if backends:
            settings["backends"] = backends
    if need_key and found.get("env_file"):
        try:
            key = env_master_key(_read(found["env_file"]) or b"")
        except OSError:
            key = None
        if key:
            settings["master_key"] = key
    if settings:
        log.info("litellm smoke: no litellm pillar here, settings of the gateway deployed by %s", unit)
    return settings


def _resolve(url=None, master_key=None, models=None, backends=None):
    """
    Fill the arguments left None from pillar ``litellm:`` (the formula's
    settings); the master key also from ``$LITELLM_MASTER_KEY``. Without any
    ``litellm`` pillar (salt-ssh runs custom modules without pillar), from the
    gateway deployed on this host (its unit, config.yaml and env file).
    """
    pillar = None
    if url is None or master_key is None or models is None or backends is None:
        pillar = _pillar()
    deployed = {}
    if pillar is not None and not pillar:
        deployed = _deployed(need_key=master_key is None)
        pillar = {key: value for key, value in deployed.items() if key != "master_key"}
    if url is None:
        url = _local_url(pillar.get("bind_host", DEFAULT_BIND_HOST), pillar.get("bind_port", DEFAULT_BIND_PORT))
    if master_key is None:
        master_key = (
            pillar.get("master_key") or os.environ.get(MASTER_KEY_ENV) or deployed.get("master_key") or None
        )
    if models is None:
        models = pillar.get("models")
    if backends is None:
        backends = pillar.get("backends")
    if master_key is not None and not isinstance(master_key, str):
        master_key = str(master_key)
    return url, master_key, normalize_aliases(models), normalize_backends(backends)


def _no_key(name):
    return _skip(name, "no master key (pillar litellm:master_key, $LITELLM_MASTER_KEY or master_key=)")


def _finish(result, master_key):
    """Every public return value leaves through here: redacted."""
    return _redact(result, master_key)


# --- the checks ---------------------------------------------------------------------


def listening(url=None, timeout=PROBE_TIMEOUT):
    """
    TCP connect to the gateway's host:port.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.listening
        salt-call litellm_smoke.listening url=http://127.0.0.1:4000
    """
    url, _, _, _ = _resolve(url, "", [], [])
    started = time.monotonic()
    try:
        target = _Target(url)
    except ValueError as exc:
        return _result("listening", "fail", str(exc), started)
    try:
        with socket.create_connection((target.host, target.port), timeout=min(_timeout(timeout), PROBE_TIMEOUT)):
            pass
    except OSError as exc:
        return _result("listening", "fail", f"{target.host}:{target.port}: {_error_text(exc)}", started)
    connect_ms = _ms(time.monotonic() - started)
    detail = f"{target.host}:{target.port} accepts connections"
    return _result("listening", "pass", detail, started, connect_ms=connect_ms)


def _probe(name, path, url, timeout):
    url, _, _, _ = _resolve(url, "", [], [])
    started = time.monotonic()
    try:
        target = _Target(url)
        answer = _request(target, "GET", path, min(_timeout(timeout), PROBE_TIMEOUT))
    except ValueError as exc:
        return _result(name, "fail", str(exc), started)
    except (OSError, http.client.HTTPException) as exc:
        return _result(name, "fail", f"GET {path}: {_error_text(exc)}", started, http_status=None)
    status = "pass" if answer["status"] == 200 else "fail"
    detail = f"GET {path}: {answer['status']} {_one_line(answer['body'], 120)}"
    return _result(name, status, detail, started, http_status=answer["status"])


def liveliness(url=None, timeout=PROBE_TIMEOUT):
    """
    ``GET /health/liveliness`` answers 200 (no key needed).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.liveliness url=http://127.0.0.1:4000
    """
    return _probe("liveliness", "/health/liveliness", url, timeout)


def readiness(url=None, timeout=PROBE_TIMEOUT):
    """
    ``GET /health/readiness`` answers 200 (no key needed; it stays 200 when
    every backend is down, see ``health``).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.readiness url=http://127.0.0.1:4000
    """
    return _probe("readiness", "/health/readiness", url, timeout)


def models_auth(url=None, master_key=None, models=None, timeout=30):
    """
    ``GET /v1/models``: without a key 401; with a wrong key 400, 401 or 403
    (LiteLLM without a database: 400 "No connected db."); with the master key
    200 and exactly the configured aliases (a missing or extra alias fails).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.models_auth
        salt-call litellm_smoke.models_auth url=http://gw:4000 models=chat-small,chat-large
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    started = time.monotonic()
    timeout = _timeout(timeout)
    try:
        target = _Target(url)
        no_key = _request(target, "GET", "/v1/models", timeout)
        wrong_key = WRONG_KEY if master_key != WRONG_KEY else WRONG_KEY + "-2"
        wrong = _request(target, "GET", "/v1/models", timeout, wrong_key)
        good = _request(target, "GET", "/v1/models", timeout, master_key) if master_key else None
    except ValueError as exc:
        return _finish(_result("models_auth", "fail", str(exc), started), master_key)
    except (OSError, http.client.HTTPException) as exc:
        return _finish(_result("models_auth", "fail", f"GET /v1/models: {_error_text(exc)}", started), master_key)
    numbers = {
        "no_key_status": no_key["status"],
        "wrong_key_status": wrong["status"],
        "master_key_status": good["status"] if good else None,
    }
    problems = []
    notes = []
    if no_key["status"] != 401:
        problems.append(f"no key: {_answer_detail(no_key)} (expected 401)")
    if wrong["status"] not in (400, 401, 403):
        problems.append(f"wrong key: {_answer_detail(wrong)} (expected 400, 401 or 403)")
    listed = []
    if good is None:
        problems.append("no master key given (pillar litellm:master_key, $LITELLM_MASTER_KEY or master_key=)")
    elif good["status"] != 200:
        problems.append(f"master key: {_answer_detail(good)} (expected 200)")
    else:
        body = _json(good["body"])
        data = body.get("data") if isinstance(body, dict) else None
        listed = [item.get("id") for item in data or [] if isinstance(item, dict)]
        if aliases:
            comparison = compare_aliases(aliases, listed)
            numbers.update(missing=comparison["missing"], extra=comparison["extra"])
            if comparison["missing"]:
                problems.append(f"missing alias(es): {', '.join(comparison['missing'])}")
            if comparison["extra"]:
                problems.append(f"extra alias(es): {', '.join(comparison['extra'])}")
        else:
            notes.append("no configured aliases to compare")
    numbers["aliases"] = listed
    summary = (
        f"no key {numbers['no_key_status']}, wrong key {numbers['wrong_key_status']}, "
        f"master key {numbers['master_key_status']}"
    )
    if listed:
        summary += f"; lists {', '.join(map(str, listed))}"
    status = "fail" if problems else ("warn" if notes else "pass")
    detail = "; ".join(problems + [summary] + notes)
    return _finish(_result("models_auth", status, detail, started, **numbers), master_key)


def _aliases_for(target, master_key, aliases, timeout):
    """The configured aliases, or the gateway's own list when none are configured."""
    if aliases:
        return aliases
    return _listed_aliases(target, master_key, timeout) or []


def chat(url=None, master_key=None, models=None, chat_models="first", timeout=30):
    """
    A small non-streaming chat completion ("ping", max_tokens 8) for the
    first alias (``chat_models=first``), every alias (``all``) or the named
    ones: 200 and non-empty content each.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.chat chat_models=all
        salt-call litellm_smoke.chat url=http://gw:4000 chat_models=chat-small
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    started = time.monotonic()
    if not master_key:
        return _no_key("chat")
    timeout = _timeout(timeout)
    try:
        target = _Target(url)
    except ValueError as exc:
        return _result("chat", "fail", str(exc), started)
    targets = chat_targets(chat_models, _aliases_for(target, master_key, aliases, timeout))
    if not targets:
        return _finish(_result("chat", "fail", NO_ALIAS, started), master_key)
    answers = {}
    failed = []
    for alias in targets:
        answer = _chat_once(target, master_key, alias, timeout)
        answers[alias] = {"status": answer["status"], "backend": answer["backend"], "ms": answer["ms"]}
        if not answer["ok"]:
            failed.append(f"{alias}: {answer['error']}")
    if failed:
        detail = f"{len(failed)}/{len(targets)} failed: " + "; ".join(failed)
    else:
        detail = f"{len(targets)} alias(es) answered: " + ", ".join(
            f"{alias} via {answers[alias]['backend']} ({answers[alias]['ms']} ms)" for alias in targets
        )
    return _finish(_result("chat", "fail" if failed else "pass", detail, started, models=answers), master_key)


def stream(url=None, master_key=None, models=None, model=None, timeout=30):
    """
    A streamed chat completion: 200, SSE ``data:`` chunks with non-empty
    concatenated content, ending with ``data: [DONE]``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.stream
        salt-call litellm_smoke.stream url=http://gw:4000 model=chat-small
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    started = time.monotonic()
    if not master_key:
        return _no_key("stream")
    timeout = _timeout(timeout)
    try:
        target = _Target(url)
    except ValueError as exc:
        return _result("stream", "fail", str(exc), started)
    alias = model or (_aliases_for(target, master_key, aliases, timeout) or [None])[0]
    if not alias:
        return _finish(_result("stream", "fail", NO_ALIAS, started), master_key)
    try:
        answer = _stream_request(target, "/v1/chat/completions", timeout, master_key, _chat_body(alias, stream=True))
    except (OSError, http.client.HTTPException) as exc:
        return _finish(_result("stream", "fail", f"{alias}: {_error_text(exc)}", started, model=alias), master_key)
    parsed = parse_sse(answer["body"])
    numbers = {
        "model": alias,
        "http_status": answer["status"],
        "chunks": parsed["chunks"],
        "content_chars": len(parsed["content"]),
        "first_chunk_ms": answer["first_chunk_ms"],
        "backend": _base(answer["headers"].get(BACKEND_HEADER)),
    }
    problems = []
    if answer["status"] != 200:
        problems.append(_answer_detail(answer))
    else:
        if not parsed["chunks"]:
            problems.append("no data chunks")
        if not parsed["content"].strip():
            problems.append("empty content")
        if not parsed["done_last"]:
            problems.append("did not end with data: [DONE]")
        problems += parsed["errors"][:3]
    if problems:
        detail = f"{alias}: " + "; ".join(problems)
    else:
        detail = (
            f"{alias} via {numbers['backend']}: {parsed['chunks']} chunks, {len(parsed['content'])} chars, "
            f"[DONE]; first chunk {answer['first_chunk_ms']} ms"
        )
    return _finish(_result("stream", "fail" if problems else "pass", detail, started, **numbers), master_key)


def fanout(url=None, master_key=None, models=None, backends=None, model=None, concurrency=10, timeout=30):
    """
    ``concurrency`` (default 10, at most 50) concurrent chat completions to
    one alias; the share of each backend comes from the
    ``x-litellm-model-api-base`` header. Fails when a request fails or when a
    backend that ``/health`` reports healthy for the alias got none (after a
    second round, so a fair shuffle does not fail by chance); unhealthy
    backends are a warning (the router should have avoided them).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.fanout concurrency=20
        salt-call litellm_smoke.fanout url=http://gw:4000 model=chat-small
    """
    url, master_key, aliases, configured = _resolve(url, master_key, models, backends)
    started = time.monotonic()
    if not master_key:
        return _no_key("fanout")
    timeout = _timeout(timeout)
    count = _bounded_int(concurrency, 10, 1, MAX_CONCURRENCY)
    try:
        target = _Target(url)
    except ValueError as exc:
        return _result("fanout", "fail", str(exc), started)
    alias = model or (_aliases_for(target, master_key, aliases, timeout) or [None])[0]
    if not alias:
        return _finish(_result("fanout", "fail", NO_ALIAS, started), master_key)
    healthy, unhealthy, health_note = set(), set(), None
    try:
        answer, body = _health(target, master_key, timeout, model=alias)
        if answer["status"] in (200, 503) and isinstance(body, dict):
            for base, entry in health_by_backend(body).items():
                (unhealthy if entry["unhealthy"] else healthy).add(base)
        else:
            health_note = f"/health?model={alias}: {_answer_detail(answer)}"
    except (OSError, http.client.HTTPException) as exc:
        health_note = f"/health?model={alias}: {_error_text(exc)}"
    if health_note and configured:
        healthy = set(configured)  # without /health, expect every configured backend
    shares = {}
    failures = []
    rounds = 0
    while rounds < FANOUT_ROUNDS:
        rounds += 1
        if rounds > 2:
            time.sleep(FANOUT_PAUSE_S)
        with concurrent.futures.ThreadPoolExecutor(max_workers=count, thread_name_prefix="litellm-smoke") as pool:
            results = list(pool.map(lambda _: _chat_once(target, master_key, alias, timeout), range(count)))
        for res in results:
            if res["ok"]:
                key = res["backend"] or "(no header)"
                shares[key] = shares.get(key, 0) + 1
            else:
                failures.append(res["error"] or "failed")
        if failures or all(shares.get(base) for base in healthy):
            break
    status, detail = fanout_verdict(shares, healthy, unhealthy, len(failures), configured)
    if failures:
        detail += "; first error: " + failures[0]
    if health_note:
        detail += "; " + health_note
        if status == "pass":
            status = "warn"
    detail = f"{alias} x {count * rounds} ({rounds} round(s)): {detail}"
    numbers = {
        "model": alias,
        "requests": count * rounds,
        "failures": len(failures),
        "shares": shares,
        "healthy_backends": sorted(healthy),
        "unhealthy_backends": sorted(unhealthy),
    }
    return _finish(_result("fanout", status, detail, started, **numbers), master_key)


def errors(url=None, master_key=None, models=None, model=None, timeout=30):
    """
    Bad requests are refused with 400: an unknown model, malformed JSON and
    a chat without ``messages``. Records each status code.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.errors url=http://gw:4000
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    started = time.monotonic()
    if not master_key:
        return _no_key("errors")
    timeout = _timeout(timeout)
    try:
        target = _Target(url)
    except ValueError as exc:
        return _result("errors", "fail", str(exc), started)
    alias = model or (_aliases_for(target, master_key, aliases, timeout) or ["smoke-any"])[0]
    unknown = UNKNOWN_MODEL
    while unknown in (aliases or []):
        unknown += "-x"
    cases = {
        "unknown_model": {
            "model": unknown,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS,
        },
        "malformed_json": '{"model": ' + json.dumps(alias) + ', "messages": [',
        "missing_messages": {"model": alias, "max_tokens": MAX_TOKENS},
    }
    codes = {}
    problems = []
    for case, body in cases.items():
        try:
            answer = _request(target, "POST", "/v1/chat/completions", timeout, master_key, body)
        except (OSError, http.client.HTTPException) as exc:
            codes[case] = None
            problems.append(f"{case}: {_error_text(exc)}")
            continue
        codes[case] = answer["status"]
        if answer["status"] != 400:
            problems.append(f"{case}: {_answer_detail(answer)} (expected 400)")
        elif _is_auth_refusal(answer):
            # LiteLLM without a database answers a bad key with 400 too.
            problems.append(f"{case}: {_answer_detail(answer)} (refused as unauthenticated, not as a bad request)")
    summary = ", ".join(f"{case} {code}" for case, code in codes.items())
    detail = "; ".join(problems + [summary]) if problems else summary
    return _finish(_result("errors", "fail" if problems else "pass", detail, started, codes=codes), master_key)


def latency(url=None, master_key=None, models=None, model=None, requests=10, timeout=30):
    """
    ``requests`` (default 10, at most 100) sequential small chat completions:
    p50/p95 end to end and of LiteLLM's own ``x-litellm-overhead-duration-ms``.
    Stops at the first failed request (which fails the check).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.latency requests=20
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    started = time.monotonic()
    if not master_key:
        return _no_key("latency")
    timeout = _timeout(timeout)
    count = _bounded_int(requests, 10, 1, MAX_LATENCY_REQUESTS)
    try:
        target = _Target(url)
    except ValueError as exc:
        return _result("latency", "fail", str(exc), started)
    alias = model or (_aliases_for(target, master_key, aliases, timeout) or [None])[0]
    if not alias:
        return _finish(_result("latency", "fail", NO_ALIAS, started), master_key)
    totals, overheads, failures = [], [], []
    for _ in range(count):
        res = _chat_once(target, master_key, alias, timeout)
        if res["ok"]:
            totals.append(res["ms"])
            if res["overhead_ms"] is not None:
                overheads.append(res["overhead_ms"])
        else:
            failures.append(res["error"])
            break  # one failure fails the check; do not wait out the others
    numbers = {
        "model": alias,
        "requests": count,
        "failures": len(failures),
        "p50_ms": percentile(totals, 50),
        "p95_ms": percentile(totals, 95),
        "max_ms": max(totals) if totals else None,
        "overhead_p50_ms": percentile(overheads, 50),
        "overhead_p95_ms": percentile(overheads, 95),
    }
    detail = f"{alias} x {count}"
    if totals:
        detail += f": p50 {numbers['p50_ms']} ms, p95 {numbers['p95_ms']} ms"
    if overheads:
        detail += f"; LiteLLM overhead p50 {numbers['overhead_p50_ms']} ms, p95 {numbers['overhead_p95_ms']} ms"
    status = "pass"
    if failures:
        status = "fail"
        detail = f"request {len(totals) + 1} of {count} failed ({failures[0]}); " + detail
    elif len(overheads) < len(totals):
        status = "warn"
        detail += f"; {OVERHEAD_HEADER} missing on {len(totals) - len(overheads)} answer(s)"
    return _finish(_result("latency", status, detail, started, **numbers), master_key)


def health(url=None, master_key=None, backends=None, timeout=30):
    """
    The authenticated ``/health``: healthy and unhealthy endpoints per
    backend (``api_base``). Fails when any endpoint is unhealthy, naming the
    backend and the deployment. With ``background_health_checks`` LiteLLM
    answers from its last background run (at most ``health_check_interval``
    old); without, every call asks every deployment once.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.health
        salt-call litellm_smoke.health url=http://gw:4000
    """
    url, master_key, _, configured = _resolve(url, master_key, [], backends)
    started = time.monotonic()
    if not master_key:
        return _no_key("health")
    timeout = _timeout(timeout)
    try:
        target = _Target(url)
        answer, body = _health(target, master_key, timeout)
    except ValueError as exc:
        return _result("health", "fail", str(exc), started)
    except (OSError, http.client.HTTPException) as exc:
        return _finish(_result("health", "fail", f"GET /health: {_error_text(exc)}", started), master_key)
    if answer["status"] != 200 or not isinstance(body, dict):
        detail = f"GET /health: {_answer_detail(answer)}"
        return _finish(_result("health", "fail", detail, started, http_status=answer["status"]), master_key)
    per_backend = health_by_backend(body)
    backends_out = {
        base: {"healthy": entry["healthy"], "unhealthy": entry["unhealthy"], "failing": entry["failing"]}
        for base, entry in per_backend.items()
    }
    numbers = {
        "healthy_count": sum(entry["healthy"] for entry in per_backend.values()),
        "unhealthy_count": sum(entry["unhealthy"] for entry in per_backend.values()),
        "backends": backends_out,
    }
    problems = []
    for base, entry in sorted(per_backend.items()):
        if entry["unhealthy"]:
            why = f" ({entry['errors'][0]})" if entry["errors"] else ""
            problems.append(f"{base} unhealthy: {', '.join(entry['failing'])}{why}")
    notes = []
    if configured:
        absent = [base for base in configured if base not in per_backend]
        if absent:
            notes.append(f"configured but not in /health: {', '.join(absent)}")
    if not per_backend:
        problems.append("/health lists no endpoints")
    summary = ", ".join(
        f"{base} {entry['healthy']} healthy/{entry['unhealthy']} unhealthy"
        for base, entry in sorted(per_backend.items())
    )
    status = "fail" if problems else ("warn" if notes else "pass")
    detail = "; ".join(problems + ([summary] if summary else []) + notes)
    return _finish(_result("health", status, detail, started, **numbers), master_key)


# --- the run ------------------------------------------------------------------------


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = None
            handle.write(text)
    finally:
        if fd is not None:
            os.close(fd)


def write_evidence(report, evidence_dir, stamp):
    """
    Write ``<evidence_dir>/smoke-<stamp>/report.json`` and ``summary.txt``
    (directory 0700, files 0600) for an already redacted ``report``. Returns
    the run directory.
    """
    os.makedirs(evidence_dir, mode=0o700, exist_ok=True)
    base = os.path.join(evidence_dir, f"smoke-{stamp}")
    path = base
    for suffix in range(1, 100):
        try:
            os.mkdir(path, 0o700)
            break
        except FileExistsError:
            path = f"{base}-{suffix}"
    else:
        raise FileExistsError(f"{base}: too many runs in the same second")
    os.chmod(path, 0o700)
    report = dict(report, evidence=path)
    _write_private(os.path.join(path, "report.json"), json.dumps(report, indent=2, sort_keys=False) + "\n")
    _write_private(os.path.join(path, "summary.txt"), format_summary(report))
    return path


def plan(url=None, models=None, backends=None, chat_models="first", concurrency=10, latency_requests=10):
    """
    What ``run`` would do, without sending anything: the URL, the checks,
    the aliases and backends it expects, whether a master key is known (never
    the key itself).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.plan
    """
    url, master_key, aliases, configured = _resolve(url, None, models, backends)
    return _finish(
        {
            "url": url,
            "checks": list(CHECKS),
            "models": aliases or [],
            "chat_models": chat_targets(chat_models, aliases) if aliases else chat_models,
            "backends": configured or [],
            "concurrency": _bounded_int(concurrency, 10, 1, MAX_CONCURRENCY),
            "latency_requests": _bounded_int(latency_requests, 10, 1, MAX_LATENCY_REQUESTS),
            "has_master_key": bool(master_key),
        },
        master_key,
    )


def run(
    url=None,
    master_key=None,
    models=None,
    backends=None,
    concurrency=10,
    latency_requests=10,
    chat_models="first",
    evidence_dir=None,
    timeout=30,
):
    """
    Run every smoke check against the gateway at ``url`` and return
    ``{"result": "PASS"|"FAIL", "checks": [...], "summary", "url", "started",
    "duration_ms", "evidence"}``. Arguments left None come from pillar
    ``litellm:`` (``bind_host``/``bind_port`` give the URL, ``master_key``,
    ``models``, ``backends``); the key also from ``$LITELLM_MASTER_KEY``.
    Without any ``litellm`` pillar (``salt-ssh <target> litellm_smoke.run``:
    salt-ssh gives custom modules no pillar) they come from the gateway
    deployed on the host: its unit (host, port), ``config.yaml`` (aliases,
    backends) and env file (the key, read as root, never returned).
    When the gateway does not even accept connections the HTTP checks are
    skipped. With ``evidence_dir`` the report is also written to
    ``<evidence_dir>/smoke-<UTC time>/`` (report.json, summary.txt; 0700/0600).
    The master key never appears in the result or the files.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.run
        salt-call litellm_smoke.run chat_models=all evidence_dir=/var/lib/litellm-smoke
        salt-call --local litellm_smoke.run url=http://gw.example.internal:4000 models=chat-small,chat-large
    """
    url, master_key, aliases, configured = _resolve(url, master_key, models, backends)
    started_at = _utc_now()
    started = time.monotonic()
    timeout = _timeout(timeout)
    checks = [listening(url, timeout)]
    checks.append(liveliness(url, timeout))
    checks.append(readiness(url, timeout))
    if checks[0]["status"] == "fail" or checks[1].get("http_status", 0) is None:
        # Nothing to talk to: say so at once instead of waiting out every timeout.
        why = (
            "gateway does not accept connections (see listening)"
            if checks[0]["status"] == "fail"
            else "gateway does not answer HTTP (see liveliness)"
        )
        checks += [_skip(name, why) for name in CHECKS if name not in ("listening", "liveliness", "readiness")]
    else:
        checks.append(models_auth(url, master_key, aliases, timeout))
        if not master_key:
            checks += [_no_key(name) for name in CHECKS if name not in KEYLESS_CHECKS]
        else:
            try:
                target = _Target(url)
                aliases = _aliases_for(target, master_key, aliases, timeout)
            except ValueError:
                pass
            first = aliases[0] if aliases else None
            checks.append(chat(url, master_key, aliases, chat_models, timeout))
            checks.append(stream(url, master_key, aliases, first, timeout))
            checks.append(fanout(url, master_key, aliases, configured, first, concurrency, timeout))
            checks.append(errors(url, master_key, aliases, first, timeout))
            checks.append(latency(url, master_key, aliases, first, latency_requests, timeout))
            checks.append(health(url, master_key, configured, timeout))
    result, summary = summarize(checks)
    report = {
        "result": result,
        "summary": summary,
        "url": url,
        "started": started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "duration_ms": _ms(time.monotonic() - started),
        "checks": checks,
        "evidence": None,
    }
    report = _redact(report, master_key)
    if evidence_dir:
        report["evidence"] = write_evidence(report, evidence_dir, started_at.strftime("%Y%m%dT%H%M%SZ"))
    log.info("litellm smoke test of %s: %s", report["url"], report["summary"])
    for check in report["checks"]:
        if check["status"] in ("fail", "warn"):
            log.debug("litellm smoke check %s %s: %s", check["name"], check["status"], check["detail"])
    return report


# --- after the run: keep a known-good release, or roll back to one -------------------
#
# After a PASS the live config, env and venv are kept as a known-good release
# (litellm_release.save); after a FAIL that follows a change, the newest
# known-good release is restored, the service restarted and smoke run again.


def env_master_key(text):
    """The ``LITELLM_MASTER_KEY`` value of an env file's text, or None. Pure."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        if line.startswith(MASTER_KEY_ENV + "="):
            value = line[len(MASTER_KEY_ENV) + 1 :].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return value or None
    return None


def config_expectations(text):
    """
    The aliases and backends (``api_base``) a LiteLLM config serves:
    ``(aliases, backends)``, each None when the text cannot be read. Pure.
    """
    try:
        import yaml  # PyYAML: always there with Salt

        data = yaml.safe_load(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
    except Exception:  # pylint: disable=broad-except
        return None, None
    if not isinstance(data, dict) or not isinstance(data.get("model_list"), list):
        return None, None
    aliases, backends = [], []
    for entry in data["model_list"]:
        if not isinstance(entry, dict):
            continue
        name = entry.get("model_name")
        if isinstance(name, str) and name and name not in aliases:
            aliases.append(name)
        base = (entry.get("litellm_params") or {}).get("api_base")
        if isinstance(base, str) and base and base.rstrip("/") not in backends:
            backends.append(base.rstrip("/"))
    return aliases, backends


def _read(path):
    """The bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def run_as_deployed(
    url=None, config_dir="/etc/litellm", env_file=None, concurrency=10, latency_requests=10, chat_models="first",
    timeout=30,
):
    """
    Run the smoke test expecting what the live ``config.yaml`` in
    ``config_dir`` serves (aliases, backends), with the master key of the
    live env file (``env_file``, default ``<config_dir>/litellm.env``), not
    what pillar says now: the check after a rollback.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.run_as_deployed
    """
    aliases, backends = config_expectations(_read(os.path.join(config_dir, "config.yaml")) or b"")
    key = env_master_key(_read(env_file or os.path.join(config_dir, "litellm.env")) or b"")
    return run(
        url=url,
        master_key=key or None,
        models=aliases,
        backends=backends,
        concurrency=concurrency,
        latency_requests=latency_requests,
        chat_models=chat_models,
        timeout=timeout,
    )


#: the run() arguments a smoke run after a rollback keeps (the rest comes from the restored files)
RERUN_KEYS = ("concurrency", "latency_requests", "chat_models", "timeout")


def settle(
    report,
    config_dir="/etc/litellm",
    service="litellm",
    group="litellm",
    rollback=True,
    ready_timeout=180,
    run_kwargs=None,
    venv="/opt/litellm/venv",
    keep=5,
    keep_venvs=1,
):
    """
    The bookkeeping after a smoke run (``report``, as ``run`` returns it), for
    the ``litellm_smoke.passed`` state:

    - PASS: keep the live config, env and venv as the newest known-good
      release unless it already is (``action`` ``saved``/``kept``), pruning
      old releases and venvs (``litellm_release.save``);
    - FAIL with ``rollback`` on and a live state that differs from the newest
      known-good release: restore it, restart ``service``, wait for readiness
      and run smoke again with ``run_kwargs`` (aliases, backends and key taken
      from the restored files) (``action`` ``rolled_back``);
    - otherwise ``action`` ``none`` and ``reason`` says why.

    Returns ``{"action", "reason", "release", "saved", "restored", "ready",
    "smoke_after_rollback", "after"}`` with names and summaries only, redacted.
    """
    run_kwargs = dict(run_kwargs or {})
    out = {
        "action": "none",
        "reason": "",
        "release": None,
        "saved": [],
        "restored": [],
        "ready": None,
        "smoke_after_rollback": None,
        "after": None,
    }
    url = run_kwargs.get("url") or report.get("url")
    try:
        if report.get("result") == "PASS":
            saved = _salt()["litellm_release.save"](config_dir, venv, keep=keep, keep_venvs=keep_venvs)
            out.update(action=saved["action"], release=saved["release"])
            out["saved"] = [saved["release"]] if saved["action"] == "saved" else []
            if saved["pruned"] or saved["pruned_venvs"]:
                out["reason"] = f"pruned {len(saved['pruned'])} old release(s), {len(saved['pruned_venvs'])} venv(s)"
        elif not rollback:
            out["reason"] = "rollback is off (litellm:rollback:enabled)"
        else:
            recovered = _salt()["litellm_release.recover"](
                config_dir, venv, service, group, url, ready_timeout, force_restart=True
            )
            out["reason"] = recovered["reason"]
            if recovered["action"] == "rolled_back":
                out.update(action="rolled_back", release=recovered["release"], ready=recovered["ready"])
                out["restored"] = recovered["restored"] + [f"not restored: {item}" for item in recovered["skipped"]]
                rerun = {key: run_kwargs[key] for key in RERUN_KEYS if key in run_kwargs}
                after = run_as_deployed(url=url, config_dir=config_dir, **rerun)
                out["smoke_after_rollback"] = after["result"]
                out["after"] = {
                    "summary": after["summary"],
                    "failed": [
                        {"name": check["name"], "detail": check["detail"]}
                        for check in after["checks"]
                        if check["status"] == "fail"
                    ],
                }
    except Exception as exc:  # pylint: disable=broad-except
        out["action"] = "error" if out["action"] != "rolled_back" else "rolled_back"
        out["reason"] = f"{out['reason']}; " if out["reason"] else ""
        out["reason"] += f"known-good bookkeeping failed: {_error_text(exc)}"
        if out["action"] == "rolled_back" and out["smoke_after_rollback"] is None:
            out["smoke_after_rollback"] = "FAIL"
        log.error("litellm smoke: %s", out["reason"])
    return _redact(out, run_kwargs.get("master_key"))

"""
The smoke test's pure logic: text of details and errors, the numbers
(percentiles), parsing what a gateway answers (SSE streams, ``/v1/models``,
``/health``) and what the formula deployed (env file, config.yaml), the
verdicts of alias lists and fan-outs, and the report's summary. No I/O.
"""

import json
import statistics
import time

DETAIL_CHARS = 300
MAX_TIMEOUT = 300
MAX_CHAT_MODELS = 20
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
AUTH_ERROR_TYPES = ("auth_error", "no_db_connection")


def one_line(text, limit=DETAIL_CHARS):
    """``text`` on one line, shortened to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ms(seconds):
    return round(seconds * 1000.0, 1)


def result(name, status, detail, started, **numbers):
    """One check's result: one-line ``detail``, ``duration_ms`` since ``started`` (monotonic), numbers."""
    out = {"name": name, "status": status, "detail": one_line(detail), "duration_ms": ms(time.monotonic() - started)}
    out.update(numbers)
    return out


def skip(name, why):
    return {"name": name, "status": "skip", "detail": why, "duration_ms": 0.0}


def no_key(name):
    return skip(name, "no master key (pillar litellm:master_key, $LITELLM_MASTER_KEY or master_key=)")


def clamp_timeout(timeout):
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = 30.0
    return min(max(value, 0.5), MAX_TIMEOUT)


def bounded_int(value, default, low, high):
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = default
    return min(max(value, low), high)


def parse_json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def error_text(exc):
    return one_line(f"{type(exc).__name__}: {exc}", 200)


def answer_detail(answer):
    """Status and the gist of an error body, for a detail line."""
    body = parse_json(answer["body"])
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif error is not None:
            message = error
        elif "detail" in body:
            message = body["detail"]
    text = one_line(message if message is not None else answer["body"], 120)
    return f"{answer['status']} {text}".strip()


def is_auth_refusal(answer):
    """True when an error answer is about the key rather than the request."""
    body = parse_json(answer["body"])
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    return error.get("type") in AUTH_ERROR_TYPES or "No connected db" in str(error.get("message"))


def api_base(url):
    return url.rstrip("/") if isinstance(url, str) else url


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
            errors.append(f"undecodable chunk: {one_line(data, 80)}")
            continue
        if not isinstance(chunk, dict):
            errors.append(f"unexpected chunk: {one_line(data, 80)}")
            continue
        if "error" in chunk:
            errors.append(f"error chunk: {one_line(json.dumps(chunk['error']), 160)}")
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
            base = api_base(endpoint.get("api_base")) or "(no api_base)"
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
                    entry["errors"].append(one_line(first, 160))
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


def format_summary(report):
    """The report as a readable text table: check, status, detail, duration."""
    rows = [("check", "status", "duration_ms", "detail")]
    for check in report.get("checks", []):
        rows.append(
            (
                str(check.get("name", "")),
                str(check.get("status", "")).upper(),
                str(check.get("duration_ms", "")),
                one_line(check.get("detail", ""), 160),
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

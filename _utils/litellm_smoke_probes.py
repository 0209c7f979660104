"""
Smoke checks that need no model: ``listening`` (TCP connect),
``liveliness`` and ``readiness`` (no key needed) and ``models_auth`` (no key
401, a wrong key refused, the master key lists exactly the configured
aliases). Each takes the resolved arguments; ``utils`` is ``__utils__``.
"""

import http.client
import socket
import time

WRONG_KEY = "sk-smoke-wrong-key"
PROBE_TIMEOUT = 5  # listening / liveliness / readiness answer at once or not at all


def listening(utils, url, timeout=PROBE_TIMEOUT):
    parse = utils.litellm_smoke_parse
    started = time.monotonic()
    try:
        target = utils.litellm_http.target(url)
    except ValueError as exc:
        return parse.result("listening", "fail", str(exc), started)
    try:
        connect_timeout = min(parse.clamp_timeout(timeout), PROBE_TIMEOUT)
        with socket.create_connection((target.host, target.port), timeout=connect_timeout):
            pass
    except OSError as exc:
        return parse.result("listening", "fail", f"{target.host}:{target.port}: {parse.error_text(exc)}", started)
    connect_ms = parse.ms(time.monotonic() - started)
    detail = f"{target.host}:{target.port} accepts connections"
    return parse.result("listening", "pass", detail, started, connect_ms=connect_ms)


def probe(utils, name, path, url, timeout=PROBE_TIMEOUT):
    """``GET <path>`` answers 200 (no key): the liveliness and readiness checks."""
    parse, web = utils.litellm_smoke_parse, utils.litellm_http
    started = time.monotonic()
    try:
        target = web.target(url)
        answer = web.request(target, "GET", path, min(parse.clamp_timeout(timeout), PROBE_TIMEOUT))
    except ValueError as exc:
        return parse.result(name, "fail", str(exc), started)
    except (OSError, http.client.HTTPException) as exc:
        return parse.result(name, "fail", f"GET {path}: {parse.error_text(exc)}", started, http_status=None)
    status = "pass" if answer["status"] == 200 else "fail"
    detail = f"GET {path}: {answer['status']} {parse.one_line(answer['body'], 120)}"
    return parse.result(name, status, detail, started, http_status=answer["status"])


def _alias_problems(parse, aliases, good, numbers, problems, notes):
    """What the master key's ``/v1/models`` answer says about the aliases; the listed ones."""
    if good is None:
        problems.append("no master key given (pillar litellm:master_key, $LITELLM_MASTER_KEY or master_key=)")
        return []
    if good["status"] != 200:
        problems.append(f"master key: {parse.answer_detail(good)} (expected 200)")
        return []
    body = parse.parse_json(good["body"])
    data = body.get("data") if isinstance(body, dict) else None
    listed = [item.get("id") for item in data or [] if isinstance(item, dict)]
    if not aliases:
        notes.append("no configured aliases to compare")
        return listed
    comparison = parse.compare_aliases(aliases, listed)
    numbers.update(missing=comparison["missing"], extra=comparison["extra"])
    if comparison["missing"]:
        problems.append(f"missing alias(es): {', '.join(comparison['missing'])}")
    if comparison["extra"]:
        problems.append(f"extra alias(es): {', '.join(comparison['extra'])}")
    return listed


def _ask_models(web, url, master_key, timeout):
    target = web.target(url)
    no_key = web.request(target, "GET", "/v1/models", timeout)
    wrong_key = WRONG_KEY if master_key != WRONG_KEY else WRONG_KEY + "-2"
    wrong = web.request(target, "GET", "/v1/models", timeout, wrong_key)
    good = web.request(target, "GET", "/v1/models", timeout, master_key) if master_key else None
    return no_key, wrong, good


def models_auth(utils, url, master_key, aliases, timeout=30):
    parse, web = utils.litellm_smoke_parse, utils.litellm_http
    started = time.monotonic()
    try:
        no_key, wrong, good = _ask_models(web, url, master_key, parse.clamp_timeout(timeout))
    except ValueError as exc:
        return parse.result("models_auth", "fail", str(exc), started)
    except (OSError, http.client.HTTPException) as exc:
        return parse.result("models_auth", "fail", f"GET /v1/models: {parse.error_text(exc)}", started)
    numbers = {
        "no_key_status": no_key["status"],
        "wrong_key_status": wrong["status"],
        "master_key_status": good["status"] if good else None,
    }
    problems, notes = [], []
    if no_key["status"] != 401:
        problems.append(f"no key: {parse.answer_detail(no_key)} (expected 401)")
    if wrong["status"] not in (400, 401, 403):
        problems.append(f"wrong key: {parse.answer_detail(wrong)} (expected 400, 401 or 403)")
    listed = _alias_problems(parse, aliases, good, numbers, problems, notes)
    numbers["aliases"] = listed
    summary = (
        f"no key {numbers['no_key_status']}, wrong key {numbers['wrong_key_status']}, "
        f"master key {numbers['master_key_status']}"
    )
    if listed:
        summary += f"; lists {', '.join(map(str, listed))}"
    status = "fail" if problems else ("warn" if notes else "pass")
    return parse.result("models_auth", status, "; ".join(problems + [summary] + notes), started, **numbers)

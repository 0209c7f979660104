"""
Smoke checks that ask the models: ``chat`` (a small completion per alias),
``stream`` (SSE chunks ending with ``[DONE]``), ``errors`` (bad requests are
refused with 400) and ``latency`` (p50/p95, LiteLLM's own overhead). Request
bodies are tiny ("ping"); ``utils`` is ``__utils__``.
"""

import http.client
import json
import time

PROMPT = "ping"
MAX_TOKENS = 8
UNKNOWN_MODEL = "smoke-no-such-model"
MAX_LATENCY_REQUESTS = 100
NO_ALIAS = "no alias to ask (none configured, none listed)"
BACKEND_HEADER = "x-litellm-model-api-base"
OVERHEAD_HEADER = "x-litellm-overhead-duration-ms"
NO_ANSWER = (OSError, http.client.HTTPException)


def begin(utils, name, url, timeout):
    """
    The start of a check: ``(target, started, timeout, None)``, or with a bad
    URL ``(None, started, timeout, its fail result)``.
    """
    parse = utils.litellm_smoke_parse
    started = time.monotonic()
    timeout = parse.clamp_timeout(timeout)
    try:
        return utils.litellm_http.target(url), started, timeout, None
    except ValueError as exc:
        return None, started, timeout, parse.result(name, "fail", str(exc), started)


def chat_body(alias, stream=False):
    return {
        "model": alias,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }


def _content(parse, answer):
    body = parse.parse_json(answer["body"])
    if answer["status"] != 200 or not isinstance(body, dict):
        return None
    try:
        return body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None


def chat_once(utils, target, master_key, alias, timeout):
    """One small chat completion: ``{"ok", "status", "backend", "ms", "overhead_ms", "error"}``."""
    parse = utils.litellm_smoke_parse
    try:
        body = chat_body(alias)
        answer = utils.litellm_http.request(target, "POST", "/v1/chat/completions", timeout, master_key, body)
    except NO_ANSWER as exc:
        error = parse.error_text(exc)
        return {"ok": False, "status": None, "backend": None, "ms": None, "overhead_ms": None, "error": error}
    content = _content(parse, answer)
    try:
        overhead = round(float(answer["headers"].get(OVERHEAD_HEADER)), 1)
    except (TypeError, ValueError):
        overhead = None
    ok = answer["status"] == 200 and isinstance(content, str) and bool(content.strip())
    error = None
    if not ok:
        error = parse.answer_detail(answer) if answer["status"] != 200 else "200 with empty content"
    return {
        "ok": ok,
        "status": answer["status"],
        "backend": parse.api_base(answer["headers"].get(BACKEND_HEADER)),
        "ms": answer["ms"],
        "overhead_ms": overhead,
        "error": error,
    }


def listed_aliases(utils, target, master_key, timeout):
    """The aliases ``/v1/models`` lists with the master key, or None."""
    try:
        answer = utils.litellm_http.request(target, "GET", "/v1/models", timeout, master_key)
    except NO_ANSWER:
        return None
    body = utils.litellm_smoke_parse.parse_json(answer["body"])
    if answer["status"] != 200 or not isinstance(body, dict):
        return None
    return [item.get("id") for item in body.get("data") or [] if isinstance(item, dict) and item.get("id")]


def aliases_for(utils, target, master_key, aliases, timeout):
    """The configured aliases, or the gateway's own list when none are configured."""
    if aliases:
        return aliases
    return listed_aliases(utils, target, master_key, timeout) or []


def first_alias(utils, target, master_key, aliases, model, timeout, default=None):
    """``model``, else the first configured (or listed) alias, else ``default``."""
    return model or (aliases_for(utils, target, master_key, aliases, timeout) or [default])[0]


def chat(utils, url, master_key, aliases, chat_models="first", timeout=30):
    parse = utils.litellm_smoke_parse
    target, started, timeout, failed = begin(utils, "chat", url, timeout)
    if failed:
        return failed
    targets = parse.chat_targets(chat_models, aliases_for(utils, target, master_key, aliases, timeout))
    if not targets:
        return parse.result("chat", "fail", NO_ALIAS, started)
    answers, failed = {}, []
    for alias in targets:
        answer = chat_once(utils, target, master_key, alias, timeout)
        answers[alias] = {"status": answer["status"], "backend": answer["backend"], "ms": answer["ms"]}
        if not answer["ok"]:
            failed.append(f"{alias}: {answer['error']}")
    if failed:
        detail = f"{len(failed)}/{len(targets)} failed: " + "; ".join(failed)
    else:
        detail = f"{len(targets)} alias(es) answered: " + ", ".join(
            f"{alias} via {answers[alias]['backend']} ({answers[alias]['ms']} ms)" for alias in targets
        )
    return parse.result("chat", "fail" if failed else "pass", detail, started, models=answers)


def _stream_problems(parse, answer, parsed):
    if answer["status"] != 200:
        return [parse.answer_detail(answer)]
    problems = []
    if not parsed["chunks"]:
        problems.append("no data chunks")
    if not parsed["content"].strip():
        problems.append("empty content")
    if not parsed["done_last"]:
        problems.append("did not end with data: [DONE]")
    return problems + parsed["errors"][:3]


def stream(utils, url, master_key, aliases, model=None, timeout=30):
    parse, web = utils.litellm_smoke_parse, utils.litellm_http
    target, started, timeout, failed = begin(utils, "stream", url, timeout)
    if failed:
        return failed
    alias = first_alias(utils, target, master_key, aliases, model, timeout)
    if not alias:
        return parse.result("stream", "fail", NO_ALIAS, started)
    try:
        answer = web.stream_request(target, "/v1/chat/completions", timeout, master_key, chat_body(alias, stream=True))
    except NO_ANSWER as exc:
        return parse.result("stream", "fail", f"{alias}: {parse.error_text(exc)}", started, model=alias)
    parsed = parse.parse_sse(answer["body"])
    numbers = {
        "model": alias,
        "http_status": answer["status"],
        "chunks": parsed["chunks"],
        "content_chars": len(parsed["content"]),
        "first_chunk_ms": answer["first_chunk_ms"],
        "backend": parse.api_base(answer["headers"].get(BACKEND_HEADER)),
    }
    problems = _stream_problems(parse, answer, parsed)
    if problems:
        detail = f"{alias}: " + "; ".join(problems)
    else:
        detail = (
            f"{alias} via {numbers['backend']}: {parsed['chunks']} chunks, {len(parsed['content'])} chars, "
            f"[DONE]; first chunk {answer['first_chunk_ms']} ms"
        )
    return parse.result("stream", "fail" if problems else "pass", detail, started, **numbers)


def _error_cases(alias, aliases):
    unknown = UNKNOWN_MODEL
    while unknown in (aliases or []):
        unknown += "-x"
    return {
        "unknown_model": {
            "model": unknown,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS,
        },
        "malformed_json": '{"model": ' + json.dumps(alias) + ', "messages": [',
        "missing_messages": {"model": alias, "max_tokens": MAX_TOKENS},
    }


def errors(utils, url, master_key, aliases, model=None, timeout=30):
    parse, web = utils.litellm_smoke_parse, utils.litellm_http
    target, started, timeout, failed = begin(utils, "errors", url, timeout)
    if failed:
        return failed
    alias = first_alias(utils, target, master_key, aliases, model, timeout, default="smoke-any")
    codes, problems = {}, []
    for case, body in _error_cases(alias, aliases).items():
        try:
            answer = web.request(target, "POST", "/v1/chat/completions", timeout, master_key, body)
        except NO_ANSWER as exc:
            codes[case] = None
            problems.append(f"{case}: {parse.error_text(exc)}")
            continue
        codes[case] = answer["status"]
        if answer["status"] != 400:
            problems.append(f"{case}: {parse.answer_detail(answer)} (expected 400)")
        elif parse.is_auth_refusal(answer):
            # LiteLLM without a database answers a bad key with 400 too.
            problems.append(f"{case}: {parse.answer_detail(answer)} (refused as unauthenticated, not as a bad request)")
    summary = ", ".join(f"{case} {code}" for case, code in codes.items())
    detail = "; ".join(problems + [summary]) if problems else summary
    return parse.result("errors", "fail" if problems else "pass", detail, started, codes=codes)


def _latency_numbers(parse, alias, count, totals, overheads, failures):
    return {
        "model": alias,
        "requests": count,
        "failures": len(failures),
        "p50_ms": parse.percentile(totals, 50),
        "p95_ms": parse.percentile(totals, 95),
        "max_ms": max(totals) if totals else None,
        "overhead_p50_ms": parse.percentile(overheads, 50),
        "overhead_p95_ms": parse.percentile(overheads, 95),
    }


def latency(utils, url, master_key, aliases, model=None, requests=10, timeout=30):
    parse = utils.litellm_smoke_parse
    target, started, timeout, failed = begin(utils, "latency", url, timeout)
    if failed:
        return failed
    count = parse.bounded_int(requests, 10, 1, MAX_LATENCY_REQUESTS)
    alias = first_alias(utils, target, master_key, aliases, model, timeout)
    if not alias:
        return parse.result("latency", "fail", NO_ALIAS, started)
    totals, overheads, failures = [], [], []
    for _ in range(count):
        res = chat_once(utils, target, master_key, alias, timeout)
        if not res["ok"]:
            failures.append(res["error"])
            break  # one failure fails the check; do not wait out the others
        totals.append(res["ms"])
        if res["overhead_ms"] is not None:
            overheads.append(res["overhead_ms"])
    numbers = _latency_numbers(parse, alias, count, totals, overheads, failures)
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
    return parse.result("latency", status, detail, started, **numbers)

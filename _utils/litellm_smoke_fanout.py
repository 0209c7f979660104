"""
Smoke checks across the backends: ``fanout`` (concurrent completions to one
alias reach every backend ``/health`` reports healthy) and ``health``
(LiteLLM's own authenticated ``/health``, per backend). ``utils`` is
``__utils__``.
"""

import concurrent.futures
import http.client
import time
import urllib.parse

MAX_CONCURRENCY = 50
# A fan-out round that leaves a healthy backend without a request is repeated,
# after a pause from the third round on: with several workers (or gateways
# sharing Redis) usage-based routing sees its peers' usage only after their
# counters are synced, and sends a short burst to one backend.
FANOUT_ROUNDS = 4
FANOUT_PAUSE_S = 1.0
NO_ANSWER = (OSError, http.client.HTTPException)
NO_ALIAS = "no alias to ask (none configured, none listed)"


def health_get(utils, target, master_key, timeout, model=None):
    """The authenticated ``/health`` (optionally for one alias): (answer, body) or raises."""
    path = "/health"
    if model:
        path += "?" + urllib.parse.urlencode({"model": model})
    answer = utils.litellm_http.request(target, "GET", path, timeout, master_key)
    return answer, utils.litellm_smoke_parse.parse_json(answer["body"])


def _alias_health(utils, target, master_key, alias, timeout):
    """(healthy, unhealthy, note): the backends ``/health`` reports for the alias."""
    parse = utils.litellm_smoke_parse
    healthy, unhealthy = set(), set()
    try:
        answer, body = health_get(utils, target, master_key, timeout, model=alias)
    except NO_ANSWER as exc:
        return healthy, unhealthy, f"/health?model={alias}: {parse.error_text(exc)}"
    if answer["status"] not in (200, 503) or not isinstance(body, dict):
        return healthy, unhealthy, f"/health?model={alias}: {parse.answer_detail(answer)}"
    for base, entry in parse.health_by_backend(body).items():
        (unhealthy if entry["unhealthy"] else healthy).add(base)
    return healthy, unhealthy, None


def _rounds(utils, target, master_key, alias, count, timeout, healthy):
    """Rounds of ``count`` concurrent completions until every healthy backend got one: (shares, failures, rounds)."""
    chat_once = utils.litellm_smoke_chat.chat_once
    shares, failures, rounds = {}, [], 0
    while rounds < FANOUT_ROUNDS:
        rounds += 1
        if rounds > 2:
            time.sleep(FANOUT_PAUSE_S)
        with concurrent.futures.ThreadPoolExecutor(max_workers=count, thread_name_prefix="litellm-smoke") as pool:
            results = list(pool.map(lambda _: chat_once(utils, target, master_key, alias, timeout), range(count)))
        for res in results:
            if res["ok"]:
                key = res["backend"] or "(no header)"
                shares[key] = shares.get(key, 0) + 1
            else:
                failures.append(res["error"] or "failed")
        if failures or all(shares.get(base) for base in healthy):
            break
    return shares, failures, rounds


def fanout(utils, url, master_key, aliases, configured, model=None, concurrency=10, timeout=30):
    parse, chat = utils.litellm_smoke_parse, utils.litellm_smoke_chat
    target, started, timeout, failed = chat.begin(utils, "fanout", url, timeout)
    if failed:
        return failed
    count = parse.bounded_int(concurrency, 10, 1, MAX_CONCURRENCY)
    alias = chat.first_alias(utils, target, master_key, aliases, model, timeout)
    if not alias:
        return parse.result("fanout", "fail", NO_ALIAS, started)
    healthy, unhealthy, health_note = _alias_health(utils, target, master_key, alias, timeout)
    if health_note and configured:
        healthy = set(configured)  # without /health, expect every configured backend
    shares, failures, rounds = _rounds(utils, target, master_key, alias, count, timeout, healthy)
    status, detail = parse.fanout_verdict(shares, healthy, unhealthy, len(failures), configured)
    if failures:
        detail += "; first error: " + failures[0]
    if health_note:
        detail += "; " + health_note
        if status == "pass":
            status = "warn"
    numbers = {
        "model": alias,
        "requests": count * rounds,
        "failures": len(failures),
        "shares": shares,
        "healthy_backends": sorted(healthy),
        "unhealthy_backends": sorted(unhealthy),
    }
    detail = f"{alias} x {count * rounds} ({rounds} round(s)): {detail}"
    return parse.result("fanout", status, detail, started, **numbers)


def _health_text(per_backend, configured):
    """(status, detail) of a ``/health`` answer grouped by backend."""
    problems = []
    for base, entry in sorted(per_backend.items()):
        if entry["unhealthy"]:
            why = f" ({entry['errors'][0]})" if entry["errors"] else ""
            problems.append(f"{base} unhealthy: {', '.join(entry['failing'])}{why}")
    notes = []
    absent = [base for base in configured or [] if base not in per_backend]
    if absent:
        notes.append(f"configured but not in /health: {', '.join(absent)}")
    if not per_backend:
        problems.append("/health lists no endpoints")
    summary = ", ".join(
        f"{base} {entry['healthy']} healthy/{entry['unhealthy']} unhealthy"
        for base, entry in sorted(per_backend.items())
    )
    status = "fail" if problems else ("warn" if notes else "pass")
    return status, "; ".join(problems + ([summary] if summary else []) + notes)


def health(utils, url, master_key, configured, timeout=30):
    parse = utils.litellm_smoke_parse
    target, started, timeout, failed = utils.litellm_smoke_chat.begin(utils, "health", url, timeout)
    if failed:
        return failed
    try:
        answer, body = health_get(utils, target, master_key, timeout)
    except NO_ANSWER as exc:
        return parse.result("health", "fail", f"GET /health: {parse.error_text(exc)}", started)
    if answer["status"] != 200 or not isinstance(body, dict):
        return parse.result("health", "fail", f"GET /health: {parse.answer_detail(answer)}", started,
                            http_status=answer["status"])
    per_backend = parse.health_by_backend(body)
    numbers = {
        "healthy_count": sum(entry["healthy"] for entry in per_backend.values()),
        "unhealthy_count": sum(entry["unhealthy"] for entry in per_backend.values()),
        "backends": {
            base: {"healthy": entry["healthy"], "unhealthy": entry["unhealthy"], "failing": entry["failing"]}
            for base, entry in per_backend.items()
        },
    }
    status, detail = _health_text(per_backend, configured)
    return parse.result("health", status, detail, started, **numbers)

"""
Smoke check ``metrics`` (with ``litellm:metrics``): the scrape endpoint
answers 200 without any key, and the chat this check makes is counted
(``litellm_deployment_total_requests_total`` of the alias grows by one,
summed over backends and workers) within a few seconds.
"""

import http.client
import re
import time

COUNTER = "litellm_deployment_total_requests_total"
COUNT_DEADLINE = 10.0  # seconds for the callback to count the chat
UP_DEADLINE = 30.0  # seconds for a just-started metrics unit to listen


def counted(text, alias):
    """The sum of ``COUNTER`` samples labelled ``model_group=<alias>`` in a scrape."""
    total = 0.0
    pattern = re.compile(rf"^{COUNTER}\{{(.*)\}} (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and f'model_group="{alias}"' in match.group(1):
            total += float(match.group(2))
    return total


def _scrape(web, metrics_url, timeout):
    # LiteLLM's metrics server mounts /metrics: GET /metrics answers 307 to /metrics/ (Prometheus follows it)
    answer = web.request(web.target(metrics_url.removesuffix("/metrics")), "GET", "/metrics/", timeout)
    return answer["status"], answer["body"]


def _first_scrape(web, metrics_url, timeout):
    """The first scrape, waiting up to UP_DEADLINE for a metrics unit that has just started."""
    deadline = time.monotonic() + UP_DEADLINE
    while True:
        try:
            return _scrape(web, metrics_url, timeout)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def metrics(utils, url, master_key, alias, metrics_url, timeout):
    parse, web = utils.litellm_smoke_parse, utils.litellm_http
    started = time.monotonic()
    if not alias:
        return parse.result("metrics", "fail", "no alias to count a chat on", started)
    try:
        status, before = _first_scrape(web, metrics_url, timeout)
        if status != 200:
            return parse.result("metrics", "fail", f"GET {metrics_url} (no key): {status}", started)
        body = {"model": alias, "messages": [{"role": "user", "content": "smoke: count me"}], "max_tokens": 8}
        chat = web.request(web.target(url), "POST", "/v1/chat/completions", timeout, master_key, body)
        if chat["status"] != 200:
            return parse.result("metrics", "fail", f"chat on {alias}: {chat['status']}", started)
        deadline, after = time.monotonic() + COUNT_DEADLINE, counted(before, alias)
        while time.monotonic() < deadline and counted(before, alias) + 1 > after:
            time.sleep(0.25)
            after = counted(_scrape(web, metrics_url, timeout)[1], alias)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return parse.result("metrics", "fail", f"{metrics_url}: {parse.error_text(exc)}", started)
    grew = after - counted(before, alias)
    if grew < 1:
        return parse.result("metrics", "fail", f"{metrics_url} answers, but the chat on {alias} was not counted "
                                               f"within {COUNT_DEADLINE:.0f} s", started)
    return parse.result("metrics", "pass", f"{metrics_url}: 200 without a key; the chat on {alias} counted "
                                           f"({COUNTER} {counted(before, alias):.0f} -> {after:.0f})", started)

"""
Overload on the real systemd host (issue 19): the formula deployed with a
small admission (litellm:capacity: 20 in flight and 20 queued per worker),
the stand-ins streaming one chunk a second, and one burst of simultaneous
streaming requests 5x above what the gateway holds: every request ends in
200 or 429/503 with Retry-After, none is reset or times out, the journal has
no "too many open files", the unit runs with the planned limits and
NRestarts stays 0.
"""

import copy
import json
import urllib.request

import pytest

from tests import burst

from .conftest import journal_count, journal_cursor, service_show, settings_with

pytestmark = pytest.mark.integration
IN_FLIGHT = 20
WORKERS = 2


def _stub_config(backends, **config):
    for url in backends.urls:
        request = urllib.request.Request(f"{url}/_stub/config", data=json.dumps(config).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()


@pytest.fixture(scope="module")
def deployed(apply, host, test_site, backends):
    original = copy.deepcopy(test_site.settings)
    test_site.write(settings_with(original, service__workers=WORKERS, health_check_interval=0,
                                  capacity__in_flight_per_worker=IN_FLIGHT, capacity__queued_per_worker=IN_FLIGHT))
    apply.salt_ssh("state.apply", "litellm").assert_ok()
    _stub_config(backends, chunk_delay_ms=1000)
    yield
    _stub_config(backends, chunk_delay_ms=0)
    test_site.write(original)
    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()


def test_a_burst_above_admission_is_served_or_refused_and_nothing_restarts(deployed, host, test_site):
    shown = service_show(host, "LimitNOFILE", "TasksMax", "NRestarts", "MainPID")
    # the plan: 16 x (20 + 20) connections per worker x 2 + 1024 headroom
    assert shown["LimitNOFILE"] == str(16 * 2 * IN_FLIGHT * 2 + 1024), shown
    assert shown["TasksMax"] == str(128 * (WORKERS + 1)), shown
    cursor = journal_cursor(host)
    size = 5 * 2 * IN_FLIGHT * WORKERS  # 400: 5x what the gateway runs and queues
    burst.raise_nofile(4 * size)
    results, wall = burst.burst("127.0.0.1", test_site.settings["bind_port"], test_site.master_key,
                                test_site.settings["models"][0]["name"], size, timeout=90)
    counts = burst.summary(results)
    assert (counts["reset"], counts["timeout"], counts["other"]) == (0, 0, 0), counts
    assert counts["served"] >= IN_FLIGHT * WORKERS and counts["refused"] > 0, counts
    assert counts["refused_bare"] == 0, counts  # every refusal OpenAI-shaped, with Retry-After
    assert wall < 60, wall
    after = service_show(host, "NRestarts", "MainPID")
    assert (after["NRestarts"], after["MainPID"]) == (shown["NRestarts"], shown["MainPID"]) == ("0", shown["MainPID"])
    assert journal_count(host, "too many open files", cursor) == 0
    assert journal_count(host, "Too many open files", cursor) == 0

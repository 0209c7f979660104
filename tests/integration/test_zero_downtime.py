"""
No request lost while the formula changes a live gateway (issue 14): one
client load of mixed chat and streaming requests (24 clients, a quarter of
them in streams of 65 s) runs from the first test to the last, across an
alias added and removed, a backend removed and added, a master key
rotation (only the env rewritten, one reload, the new key works, the old one
is refused, then nothing to do), a workers change (2 -> 1: what follows runs
on one worker), an upgrade (a release of its own beside the kept one) and its
rollback by hand, and an automatic rollback after a failed smoke test. Each
change: 0 failed requests, 0 cut streams, the same listening socket (inode),
and the supervisor (MainPID) kept where the path was a reload.
"""

import copy
import hashlib
import json
import secrets
import sys
import time

import pytest

from tests.conftest import REPO
from tests.harness import site

from .conftest import gateway_request, gateway_workers, journal_count, journal_cursor, service_show, settings_with

sys.path.insert(0, str(REPO / "tests"))
import client_load  # noqa: E402

pytestmark = pytest.mark.integration

CLIENT_KEY = "sk-load-" + secrets.token_hex(16)
VENV = "/opt/litellm/venv"
RELEASES = "/opt/litellm/venv-releases"
LONG_S = 65
RESULTS = {}


def _socket_inode(host):
    """The inode of the listening socket systemd holds (fd 3 of the service's supervisor)."""
    pid = service_show(host, "MainPID")["MainPID"]
    return host.run(["readlink", f"/proc/{pid}/fd/3"]).stdout.strip()


_workers = gateway_workers


@pytest.fixture(scope="module")
def deployed(apply, host, test_site):
    """The site with one client key (the load's: a master key rotation must not touch it)."""
    original = copy.deepcopy(test_site.settings)
    settings = settings_with(test_site.settings, service__workers=2)
    settings["keys"] = {"load": {"hash": "sha256:" + hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}}
    test_site.write(settings)
    apply.salt_ssh("state.apply", "litellm").assert_ok()
    yield settings
    test_site.write(original)
    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()


@pytest.fixture(scope="module")
def load(deployed, gateway_port):
    with client_load.Load(gateway_port, CLIENT_KEY, "chat-small", clients=24, long_every=4, long_s=LONG_S) as running:
        assert running.wait_for(40), "the load never got going"
        running.baseline = client_load.baselines(list(running.results))
        yield running
    total = client_load.summary(running.results)
    print("\nZERO-DOWNTIME LOAD " + json.dumps(total) + " " + json.dumps(RESULTS))
    assert total["failed"] == 0 and total["cut_streams"] == 0, total
    assert total["long_streams_ok"] > 0, total


def _change(apply, host, test_site, load, settings, expect_path, command=("state.apply", "litellm"), ok=True):
    """Apply ``settings`` under the load; check the outcome and the load's requests so far."""
    inode, main_pid = _socket_inode(host), service_show(host, "MainPID")["MainPID"]
    workers_before = _workers(host)
    if settings is not None:
        test_site.write(settings)
    started = time.monotonic()
    run = apply.salt_ssh(*command)
    window = (started, time.monotonic())
    if ok:
        run.assert_ok()
    after = client_load.summary(load.results, window, load.baseline)
    assert after["failed"] == 0 and after["cut_streams"] == 0, after
    assert _socket_inode(host) == inode, "the listening socket changed"
    if expect_path == "reload":
        assert service_show(host, "MainPID")["MainPID"] == main_pid, "a reload kept no supervisor"
        serving = json.loads(host.run(["cat", "/run/litellm/workers.json"]).stdout)["serving"]
        # every worker replaced (the old ones may still drain their streams beside the new ones)
        assert serving and not set(serving) & set(workers_before), (serving, workers_before)
    elif expect_path == "restart":
        assert service_show(host, "MainPID")["MainPID"] != main_pid
    return run, {**after, "apply_s": round(run.elapsed, 1)}


def _path(run):
    return run.states["litellm-service-running-service-running"]["changes"].get("path")


def test_the_unit_stays_hardened_with_its_socket(deployed, host):
    out = host.run(["systemd-analyze", "security", "litellm.service", "--no-pager"]).stdout
    score = float(out.strip().splitlines()[-1].split("level for litellm.service:")[1].split()[0])
    RESULTS["security_score"] = score
    assert score <= 1.2, out[-2000:]
    shown = host.run(["systemctl", "show", "litellm.socket", "--property=Listen,ActiveState"]).stdout
    assert "ActiveState=active" in shown and f":{deployed['bind_port']} (Stream)" in shown, shown


def test_an_alias_added_and_removed_reloads(deployed, apply, host, test_site, load):
    added = copy.deepcopy(deployed)
    added["models"] = added["models"] + [{"name": "chat-extra", "provider": "ollama", "model": "llama3.2:3b"}]
    run, RESULTS["alias_added"] = _change(apply, host, test_site, load, added, "reload")
    assert _path(run) == "reload"
    # the new workers are forks of the supervisor (LiteLLM imported once), each one of them
    assert "forked from the supervisor" in run.states["litellm-service-running-service-running"]["comment"]
    status = json.loads(host.run(["cat", "/run/litellm/workers.json"]).stdout)
    assert status["ok"] and sorted(status["forked"]) == sorted(status["serving"]), status
    assert set(status["serving"]) <= set(_workers(host)), status  # beside them, old ones may still drain
    run, RESULTS["alias_removed"] = _change(apply, host, test_site, load, deployed, "reload")
    assert _path(run) == "reload"


def test_a_backend_removed_and_added_reloads(deployed, apply, host, test_site, load):
    one = settings_with(deployed, backends=deployed["backends"][:1])
    run, RESULTS["backend_removed"] = _change(apply, host, test_site, load, one, "reload")
    assert _path(run) == "reload"
    run, RESULTS["backend_added"] = _change(apply, host, test_site, load, deployed, "reload")
    assert _path(run) == "reload"


def test_a_master_key_rotation_rewrites_only_the_env_reloads_once_and_the_new_key_works(
        deployed, apply, host, test_site, load, gateway_port):
    old_key = test_site.master_key
    new_key = test_site.master_key = site.new_master_key()
    cursor = journal_cursor(host)
    run, RESULTS["master_key_rotated"] = _change(apply, host, test_site, load, deployed, "reload")
    assert run.changed() == ["litellm-config-file-env-managed", "litellm-service-running-service-running"]
    # the workers read litellm.env again at a reload: the supervisor stays (_change), one reload, no start
    assert _path(run) == "reload"
    assert journal_count(host, "Reloaded litellm.service", cursor) == 1
    assert journal_count(host, "Started litellm.service", cursor) == 0
    assert new_key not in run.text and old_key not in run.text
    assert gateway_request(gateway_port, "GET", "/v1/models", key=new_key)[0] == 200
    refused = gateway_request(gateway_port, "GET", "/v1/models", key=old_key)[0]
    assert refused in (400, 401), refused
    assert apply.salt_ssh("state.apply", "litellm").assert_ok().changed() == []


def test_a_workers_change_restarts_behind_the_held_socket(deployed, apply, host, test_site, load):
    """2 -> 1: the rest of the module runs on one worker (a 1-core host), where a reload must lose nothing too."""
    one = settings_with(deployed, service__workers=1)
    run, RESULTS["workers_2_to_1"] = _change(apply, host, test_site, load, one, "restart")
    assert _path(run) == "restart" and len(_workers(host)) == 1
    deployed.update(one)


def test_an_upgrade_and_its_rollback_by_hand_restart_behind_the_held_socket(deployed, apply, host, test_site, load):
    upgraded = settings_with(deployed, version="1.108.6")
    before = host.run(["readlink", "-f", VENV]).stdout.strip()
    run, RESULTS["upgrade"] = _change(apply, host, test_site, load, upgraded, "restart")
    assert _path(run) == "restart"
    # built beside the live venv: a release of its own, the previous one kept
    assert host.run(["readlink", VENV]).stdout.strip().startswith(f"{RELEASES}/1.108.6-")
    assert host.run(["test", "-x", f"{before}/bin/litellm"], check=False).returncode == 0, "previous venv kept"
    assert run.states["litellm-smoke-passed"]["result"] is True
    run, RESULTS["rollback_by_hand"] = _change(apply, host, test_site, load, None, "restart",
                                               command=("litellm_config.rollback",), ok=False)
    assert run.data["action"] == "rolled_back" and run.data.get("path") == "restart", run.data
    test_site.write(deployed)
    assert apply.salt_ssh("state.apply", "litellm").assert_ok().changed() == []


def test_an_automatic_rollback_after_a_failed_smoke_reloads_twice_on_one_worker(deployed, apply, host, test_site,
                                                                                load):
    bad = copy.deepcopy(deployed)
    bad["models"] = bad["models"] + [{"name": "ghost", "provider": "ollama", "model": "ghost:1b"}]
    bad["preflight"] = {"enabled": False}
    run, RESULTS["failed_smoke_rollback"] = _change(apply, host, test_site, load, bad, "reload", ok=False)
    assert run.returncode != 0
    assert _path(run) == "reload"
    smoke = run.states["litellm-smoke-passed"]
    assert "ROLLED BACK" in smoke["comment"] and smoke["changes"]["rollback"]["smoke_after_rollback"] == "PASS"
    test_site.write(deployed)
    # the good pillar again: the key table (its aliases; not part of a release) is rewritten, nothing reloads
    again = apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert again.changed() in ([], ["litellm-config-file-keys-managed"]), again.changed()

"""
Day-2 operations on the real systemd host: an upgrade (a change of the pinned
LiteLLM version installs a new venv release from the shipped lock beside the
live one, switches to it, restarts once and passes smoke on the new version;
going back switches to the kept release), a version without a lock refused,
known-good releases and rollback (by hand, and on their own when readiness
fails), a failed upgrade that goes back to the previous venv, JSON logs, and
removal followed by a fresh deploy. (Master key rotation: test_zero_downtime.py,
under load.)
"""

import copy
import json
import threading
import time

import pytest
import salt.utils.yaml

from tests.conftest import REPO

from .conftest import MINION_CONF_IN_HOST, gateway_request, journal_count, journal_cursor, service_show, settings_with

pytestmark = pytest.mark.integration

KNOWN_GOOD = "/var/lib/litellm-salt/known-good"
VENV = "/opt/litellm/venv"
RELEASES = "/opt/litellm/venv-releases"
OVERLAY_IN_HOST = "/srv/litellm-overlay"
OVERLAY_CONF_IN_HOST = "/etc/litellm-test/salt-overlay"


def _releases(host):
    out = host.run(["ls", "-1", KNOWN_GOOD], check=False).stdout
    return sorted(line for line in out.split() if not line.startswith("."))


def _aliases(port, key):
    status, _, body = gateway_request(port, "GET", "/v1/models", key=key)
    assert status == 200, body
    return sorted(item["id"] for item in json.loads(body)["data"])


def _settings(test_site, **changes):
    return settings_with(test_site.settings, **changes)


def _installed_version(host):
    return host.run([f"{VENV}/bin/python", "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
                    ).stdout.strip()


@pytest.fixture(scope="module")
def deployed(apply, host, test_site):
    """The site as earlier modules left it, deployed on the default pinned version from a bare host; at the
    end its pillar is back and the host bare."""
    original = copy.deepcopy(test_site.settings)
    apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert _installed_version(host) == test_site.settings.get("version", "1.108.7")
    yield
    test_site.write(original)
    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()


def _chat_body(test_site):
    return {"model": test_site.settings["models"][0]["name"], "messages": [{"role": "user", "content": "hi"}]}


class Poller:
    """GET /health/liveliness every 0.1 s from the controller: how long was the gateway down?"""

    def __init__(self, port):
        self.port = port
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                status, _, _ = gateway_request(self.port, "GET", "/health/liveliness", timeout=1)
            except OSError:
                status = None
            self.samples.append((time.monotonic(), status == 200))
            time.sleep(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def longest_outage(self):
        longest, down_since = 0.0, None
        for stamp, ok in self.samples:
            if not ok and down_since is None:
                down_since = stamp
            elif ok and down_since is not None:
                longest = max(longest, stamp - down_since)
                down_since = None
        if down_since is not None:
            longest = max(longest, self.samples[-1][0] - down_since)
        return longest

    def served(self):
        return sum(1 for _, ok in self.samples if ok)


SWITCH = ["litellm-package-install-venv-installed", "litellm-service-running-service-running"]
# first time on 1.108.6: its lock file and compile list and, in the new release, the config check script
NEW_RELEASE = ["litellm-config-file-check-script-managed", "litellm-package-install-compile-list-file-managed",
               "litellm-package-install-lock-file-managed"]


def test_an_upgrade_builds_beside_the_live_venv_restarts_once_and_going_back_switches_to_the_kept_release(
        deployed, apply, host, test_site, gateway_port):
    before = host.run(["readlink", "-f", VENV]).stdout.strip()
    pid_before = service_show(host, "MainPID")["MainPID"]
    cursor = journal_cursor(host)
    test_site.write(_settings(test_site, version="1.108.6"))
    with Poller(gateway_port) as poller:
        run = apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert run.changed() == sorted(NEW_RELEASE + SWITCH)
    assert _installed_version(host) == "1.108.6"
    after = host.run(["readlink", VENV]).stdout.strip()
    assert after.startswith(f"{RELEASES}/1.108.6-"), after
    assert host.run(["test", "-x", f"{before}/bin/litellm"], check=False).returncode == 0, "previous venv kept"
    assert service_show(host, "MainPID")["MainPID"] != pid_before
    assert journal_count(host, "Started litellm.service", cursor) == 1
    assert run.states["litellm-smoke-passed"]["result"] is True
    outage = poller.longest_outage()
    print(f"upgrade 1.108.7 -> 1.108.6: apply {run.elapsed:.1f} s, gateway down {outage:.1f} s "
          f"({poller.served()} answers during the apply)")
    # the new venv was built while the old one served: down only for the restart
    assert outage < run.elapsed / 2, (outage, run.elapsed)
    assert outage < 30
    assert apply.salt_ssh("state.apply", "litellm").assert_ok().changed() == []
    # back: the 1.108.7 release is still on disk, so nothing is built; a switch and one restart
    pid_before = service_show(host, "MainPID")["MainPID"]
    cursor = journal_cursor(host)
    test_site.write(_settings(test_site, version="1.108.7"))
    back = apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert back.changed() == sorted(SWITCH)
    assert _installed_version(host) == "1.108.7"
    assert host.run(["readlink", "-f", VENV]).stdout.strip() == before
    assert "already on disk" in back.states["litellm-package-install-venv-installed"]["comment"]
    assert service_show(host, "MainPID")["MainPID"] != pid_before
    assert journal_count(host, "Started litellm.service", cursor) == 1
    assert back.states["litellm-smoke-passed"]["result"] is True
    assert apply.salt_ssh("state.apply", "litellm").assert_ok().changed() == []


def test_a_version_without_a_lock_is_refused_before_any_change(deployed, apply, host, test_site):
    good = copy.deepcopy(test_site.settings)
    pid_before = service_show(host, "MainPID")["MainPID"]
    test_site.write(_settings(test_site, version="1.0.0"))
    try:
        run = apply.salt_ssh("state.apply", "litellm")
    finally:
        test_site.write(good)
    assert run.returncode != 0
    assert "litellm:version: no lock file for '1.0.0'" in run.states["litellm-validate-pillar-validated"]["comment"]
    assert run.changed() == []
    assert _installed_version(host) == "1.108.7"
    assert service_show(host, "MainPID")["MainPID"] == pid_before


def test_a_failed_upgrade_goes_back_to_the_previous_venv_by_itself(deployed, apply, host, test_site, gateway_port):
    """A release that installs and imports but cannot serve (no uvicorn) never stays live."""
    good_venv = host.run(["readlink", "-f", VENV]).stdout.strip()
    lock = (REPO / "salt/litellm/files/locks/litellm-1.108.6.txt").read_text()
    broken = "".join(block for block in _lock_blocks(lock) if not block.startswith("uvicorn=="))
    assert broken != lock
    host.run(["mkdir", "-p", f"{OVERLAY_IN_HOST}/litellm/files/locks", OVERLAY_CONF_IN_HOST])
    host.run(["tee", f"{OVERLAY_IN_HOST}/litellm/files/locks/litellm-1.108.6.txt"], input=broken)
    minion = salt.utils.yaml.safe_load(host.run(["cat", f"{MINION_CONF_IN_HOST}/minion"]).stdout)
    minion["file_roots"]["base"].insert(0, OVERLAY_IN_HOST)  # the broken lock shadows the shipped one
    host.run(["tee", f"{OVERLAY_CONF_IN_HOST}/minion"], input=salt.utils.yaml.safe_dump(minion))
    test_site.write(_settings(test_site, version="1.108.6", service__ready_timeout=45))
    cursor = journal_cursor(host)
    try:
        proc = host.run(["salt-call", "-c", OVERLAY_CONF_IN_HOST, "--local", "--out=json", "state.apply", "litellm"],
                        check=False, timeout=900)
    finally:
        test_site.write(_settings(test_site, version="1.108.7"))
    states = {key.split("_|-")[1]: value for key, value in json.loads(proc.stdout)["local"].items()}
    assert proc.returncode != 0
    assert states["litellm-service-running-ready"]["result"] is False
    rolled = states["litellm-service-running-rolled-back"]
    assert rolled["result"] is True, rolled["comment"]
    assert "ROLLED BACK" in rolled["comment"] and "venv" in rolled["comment"]
    assert "litellm-smoke-passed" not in states or states["litellm-smoke-passed"]["result"] is False
    assert host.run(["readlink", "-f", VENV]).stdout.strip() == good_venv
    journal = host.run(["journalctl", "-u", "litellm", "--after-cursor", cursor, "--no-pager", "-o", "cat"]).stdout
    assert "uvicorn" in journal, journal[-2000:]  # why the broken release never became ready
    status, _, body = gateway_request(gateway_port, "POST", "/v1/chat/completions", key=test_site.master_key,
                                      body=_chat_body(test_site))
    assert status == 200, body
    # pillar back on the good version: nothing to do
    again = apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert again.changed() == []


def _lock_blocks(lock):
    """A hashed lock split into its requirement blocks (a line without indent starts one)."""
    blocks, current = [], ""
    for line in lock.splitlines(True):
        if line and not line[0].isspace() and not line.startswith("#") and current:
            blocks.append(current)
            current = ""
        current += line
    blocks.append(current)
    return blocks


def test_rollback_by_hand_restores_the_previous_release_and_reloads_once(deployed, apply, host, test_site,
                                                                        gateway_port):
    key = test_site.master_key
    first = _aliases(gateway_port, key)
    extra = {"name": "chat-extra", "provider": "ollama", "model": "llama3.2:3b"}
    changed = _settings(test_site, rollback__keep=3)
    changed["models"] = changed["models"] + [extra]
    test_site.write(changed)
    apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert _aliases(gateway_port, key) == sorted(first + ["chat-extra"])
    kept = _releases(host)
    assert 2 <= len(kept) <= 3, kept
    pid = service_show(host, "MainPID")["MainPID"]
    cursor = journal_cursor(host)
    run = apply.salt_ssh("litellm_config.rollback")
    out = run.data
    assert out["action"] == "rolled_back", out
    assert out["smoke_result"] == "PASS", out
    assert out["restored"] == ["/etc/litellm/config.yaml"], out
    assert _aliases(gateway_port, key) == first
    # only config.yaml went back: a rolling reload, as a deploy of it would be
    assert out["path"] == "reload", out
    assert service_show(host, "MainPID")["MainPID"] == pid
    assert journal_count(host, "Reloaded litellm.service", cursor) == 1
    assert journal_count(host, "Started litellm.service", cursor) == 0
    assert key not in run.text
    # a second rollback goes one further back; pillar (with chat-extra) redeploys on the next apply
    again = apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert again.changed() == ["litellm-config-file-config-managed", "litellm-service-running-service-running"]
    assert _aliases(gateway_port, key) == sorted(first + ["chat-extra"])
    assert len(_releases(host)) <= 3


def _json_message(line):
    try:
        record = json.loads(line)
    except ValueError:
        return line
    return record.get("message", "") if isinstance(record, dict) else line


def test_json_logs_are_one_json_object_per_line(deployed, apply, host, test_site, gateway_port):
    before = copy.deepcopy(test_site.settings)
    cursor = journal_cursor(host)
    test_site.write(_settings(test_site, service__log_format="json", service__log_level="INFO"))
    apply.salt_ssh("state.apply", "litellm").assert_ok()
    gateway_request(gateway_port, "POST", "/v1/chat/completions", key=test_site.master_key,
                    body=_chat_body(test_site))
    access = '"POST /v1/chat/completions HTTP/1.1" 200'
    deadline = time.monotonic() + 60  # the access line reaches the journal after the response (slower under load)
    while True:
        out = host.run(["journalctl", "_SYSTEMD_UNIT=litellm.service", "--after-cursor", cursor, "--no-pager",
                        "-o", "cat"])
        lines = [line for line in out.stdout.splitlines() if line.strip()]
        # a JSON line escapes the access line's quotes: look in the decoded message
        if any(access in _json_message(line) for line in lines) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # LiteLLM prints its banner with print() while each worker starts; every log record, and everything
    # once the last worker is up, is one JSON object
    started = max(i for i, line in enumerate(lines) if '"Application startup complete."' in line)
    records = [json.loads(line) for line in lines[started:]]
    assert all(isinstance(item, dict) and {"message", "level", "timestamp"} <= set(item) for item in records)
    assert any(access in item["message"] for item in records), lines[-5:]
    early = [line for line in lines[:started] if line.lstrip().startswith("{")]
    assert early and all(json.loads(line)["level"] for line in early)
    assert not any("Give Feedback" in line for line in lines)
    test_site.write(before)
    apply.salt_ssh("state.apply", "litellm").assert_ok()


def test_clean_then_redeploy(deployed, apply, host, test_site, gateway_port):
    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()
    for path in ("/etc/litellm", VENV, RELEASES, "/var/lib/litellm-salt", "/etc/systemd/system/litellm.service"):
        assert host.run(["test", "-e", path], check=False).returncode != 0, path
    assert host.run(["getent", "passwd", "litellm"], check=False).returncode != 0
    run = apply.salt_ssh("state.apply", "litellm").assert_ok()
    print(f"redeploy after clean: {run.elapsed:.1f} s")
    assert _aliases(gateway_port, test_site.master_key)
    assert apply.salt_ssh("state.apply", "litellm").assert_ok().changed() == []

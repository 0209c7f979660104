"""
The smoke key (made on the host, root 0600, only its hash in the key table),
the check of the workers' key status files, and the coordination Redis in
the rendered config (key limits across gateways).
"""

import hashlib
import json
import os
import stat

import pytest

from tests.conftest import SALT_UTILS, load_salt_module, merged

KEYS = SALT_UTILS.litellm_smoke_keys
WORKERS = SALT_UTILS.litellm_smoke_workers
litellm_config = load_salt_module("modules", "litellm_config")


def test_the_smoke_key_is_made_once_root_0600_and_never_returned(tmp_path):
    path = str(tmp_path / "smoke-key")
    assert KEYS.ensure_key(path, test=True) == {"path": path, "created": None, "reason": "absent"}
    assert not os.path.exists(path)
    made = KEYS.ensure_key(path)
    key = KEYS.read_key(path)
    assert made == {"path": path, "created": True, "reason": "absent"} and key not in json.dumps(made)
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == 0o600 and (info.st_uid, info.st_gid) == (0, 0)
    assert key.startswith("sk-smoke-") and len(key) == len("sk-smoke-") + 64
    again = KEYS.ensure_key(path)
    assert again["created"] is False and KEYS.read_key(path) == key  # idempotent
    (tmp_path / "smoke-key").write_text("garbage\n")
    assert KEYS.ensure_key(path)["reason"] == "not a smoke key: replaced" and KEYS.read_key(path) != key


def test_the_table_entry_holds_the_hash_one_alias_and_the_limits():
    key = "sk-smoke-" + "a" * 64
    entry = KEYS.table_entry(key, "chat-small", {"rpm": 6, "tpm": 1000, "max_parallel": 1})
    assert entry == {"hash": "sha256:" + hashlib.sha256(key.encode()).hexdigest(), "models": ["chat-small"],
                     "rpm": 6, "tpm": 1000, "max_parallel": 1}
    settings = merged({"models": [{"name": "chat-small", "model": "m"}, {"name": "chat-large", "model": "n"}],
                       "keys": {"_smoke": entry}})
    table = json.loads(litellm_config.key_table_text(settings))
    assert table["clients"]["_smoke"]["models"] == ["chat-small"] and key not in json.dumps(table)


def _table(tmp_path, clients):
    text = json.dumps({"format": 1, "clients": clients}).encode()
    (tmp_path / "client-keys.json").write_bytes(text)
    return hashlib.sha256(text).hexdigest()


CLIENT = {"hash": "ab" * 32, "models": ["chat-small"], "rpm": 6, "tpm": None, "max_parallel": 1, "expires": None,
          "disabled": False}


def _status(tmp_path, pid, sha, clients):
    (tmp_path / f"client-keys.{pid}.json").write_text(json.dumps({"pid": pid, "table_sha256": sha,
                                                                  "clients": clients}))


def test_every_worker_with_the_table_in_force_passes_naming_clients_not_hashes(tmp_path):
    sha = _table(tmp_path, {"_smoke": CLIENT, "open-webui": dict(CLIENT, rpm=None)})
    shown = {k: v for k, v in CLIENT.items() if k != "hash"}
    for pid in (11, 12):
        _status(tmp_path, pid, sha, {"_smoke": shown, "open-webui": dict(shown, rpm=None)})
    problems, detail, numbers = WORKERS.in_force(str(tmp_path / "client-keys.json"), str(tmp_path), lambda: [11, 12],
                                                 wait=0)
    assert problems == [] and numbers == {"workers": [11, 12], "clients": ["_smoke", "open-webui"]}
    assert detail == "2 enabled client(s) (_smoke, open-webui) in force on 2/2 worker(s)"
    assert "ab" * 32 not in detail


def test_a_worker_with_an_old_table_or_none_fails_naming_it(tmp_path):
    sha = _table(tmp_path, {"_smoke": CLIENT, "late-comer": CLIENT})
    shown = {k: v for k, v in CLIENT.items() if k != "hash"}
    _status(tmp_path, 11, sha, {"_smoke": shown, "late-comer": shown})
    _status(tmp_path, 12, "0" * 64, {"_smoke": dict(shown, rpm=60)})
    ticks = iter(range(100))
    problems, detail, _ = WORKERS.in_force(str(tmp_path / "client-keys.json"), str(tmp_path), lambda: [11, 12, 13],
                                           wait=2, clock=lambda: next(ticks), sleep=lambda _: None)
    assert problems == ["worker 12: missing late-comer, _smoke differs",
                        "worker 13: no status (the hook has not loaded the table)"]
    assert detail.endswith("in force on 1/3 worker(s)")


def test_no_worker_fails(tmp_path):
    _table(tmp_path, {})
    problems, _, _ = WORKERS.in_force(str(tmp_path / "client-keys.json"), str(tmp_path), lambda: [], wait=0)
    assert problems == ["no live worker found"]


def test_the_fleet_redis_is_the_proxy_level_coordination_redis_with_the_password_by_reference():
    settings = merged({"models": [{"name": "chat-small", "model": "m"}], "backends": ["http://llm01:11434"],
                       "master_key": "sk-" + "m" * 40,
                       "redis": {"host": "10.0.0.5", "port": 6380, "password": "redis-secret-0123456789"}})
    text = litellm_config.config_text(settings)
    config = litellm_config.build_config(settings)
    assert config["general_settings"]["coordination_redis"] == {
        "host": "10.0.0.5", "port": 6380, "password": "os.environ/REDIS_PASSWORD"}
    assert "redis-secret-0123456789" not in text
    assert "coordination_redis" not in litellm_config.build_config(merged({"models": [], "backends": []}))[
        "general_settings"]


@pytest.mark.parametrize("key, message", [
    ({"rpm": 0}, "litellm:smoke:key:rpm: must be an integer from 1"),
    ({"burst": 1}, "litellm:smoke:key: unknown key(s) burst"),
    ("six", "litellm:smoke:key: must be a mapping"),
])
def test_bad_smoke_key_limits_are_refused_naming_the_key(key, message):
    settings = merged({"smoke": {"key": key}})
    errors = litellm_config.check_settings(settings)
    assert any(error.startswith(message) for error in errors), errors


def _hook():
    import importlib.util

    from tests.conftest import REPO

    path = REPO / "salt" / "litellm" / "files" / "litellm_client_keys.py"
    spec = importlib.util.spec_from_file_location("litellm_client_keys_watcher_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hooks_watcher_keeps_an_idle_worker_current_and_reports_it(tmp_path, monkeypatch):
    import time

    hook = _hook()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    table_path = tmp_path / "client-keys.json"
    table_path.write_text(json.dumps({"format": 1, "clients": {}}))
    table = hook.KeyTable(path=str(table_path), interval=0.05)
    assert hook.start_watcher(table) is True and hook.start_watcher(table) is False  # one thread per process
    status = tmp_path / f"client-keys.{os.getpid()}.json"
    assert json.loads(status.read_text())["clients"] == {}
    tmp = tmp_path / "new.json"
    tmp.write_text(json.dumps({"format": 1, "clients": {"late": CLIENT}}))
    os.replace(tmp, table_path)
    deadline = time.monotonic() + 2
    while "late" not in json.loads(status.read_text())["clients"] and time.monotonic() < deadline:
        time.sleep(0.02)  # nobody calls table.current(): the watcher does
    assert [e.name for e in table.entries] == ["late"]
    assert "ab" * 32 not in status.read_text()


def test_the_state_makes_the_smoke_key_once_and_changes_nothing_after(tmp_path):
    state = load_salt_module("states", "litellm_smoke")
    module = load_salt_module("modules", "litellm_smoke")
    state.__salt__ = {"litellm_smoke.smoke_key": module.smoke_key}
    name = str(tmp_path / "smoke-key")
    state.__opts__ = {"test": True}
    assert state.key_present(name)["result"] is None and not os.path.exists(name)
    state.__opts__ = {"test": False}
    made = state.key_present(name)
    assert made["changes"] == {"smoke_key": "made (root 0600, never shown)"} and made["result"] is True
    key = KEYS.read_key(name)
    again = state.key_present(name)
    assert again["changes"] == {} and again["result"] is True and key not in json.dumps([made, again])
    assert state.key_present(str(tmp_path / "other"))["result"] is False

"""
The client keys' custom_auth hook (lookup, constant-time path, reload, expiry,
disabled, what each worker reports), run here with stand-ins for LiteLLM's
types; tests/functional/test_client_keys_live.py runs it in a real LiteLLM.
"""

import datetime
import hashlib
import importlib.util
import json
import os

import pytest

from tests.conftest import TEST_MASTER_KEY
from tests.unit.client_keys_common import (
    HOOK_PATH,
    KEY_A,
    KEY_B,
    litellm_config,
    settings_with,
    sha,
)

# --- the hook ------------------------------------------------------------------------------


class FakeProxyException(Exception):
    def __init__(self, message, type, param, code=None):  # noqa: A002 - LiteLLM's signature
        super().__init__(message)
        self.message, self.type, self.param, self.code = message, type, param, str(code)


class FakeAuth:
    def __init__(self, **fields):
        self.__dict__.update(fields)


@pytest.fixture
def hook(monkeypatch):
    spec = importlib.util.spec_from_file_location("litellm_client_keys_under_test", HOOK_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ProxyException, module.UserAPIKeyAuth = FakeProxyException, FakeAuth
    module.get_request_route = lambda request: request.path
    module.is_llm_api_route = lambda route: route in ("/v1/chat/completions", "/v1/models")
    monkeypatch.setenv("LITELLM_MASTER_KEY", TEST_MASTER_KEY)
    return module


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def write_table(path, clients):
    """Write like Salt does: a new file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"format": 1, "clients": clients}))
    os.replace(tmp, path)


def entry(key, **fields):
    return {"hash": sha(key), "models": ["chat-small"], **fields}


@pytest.fixture
def table(hook, tmp_path):
    path = tmp_path / "client-keys.json"
    write_table(path, {"app": entry(KEY_A, rpm=5), "other": entry(KEY_B, models=["chat-small", "chat-tiny"])})
    clock = Clock()
    t = hook.KeyTable(path=str(path), interval=0.5, clock=clock)
    t.clock_ = clock
    return t


def test_a_client_key_becomes_its_entry(hook, table):
    verdict, found = hook.lookup(KEY_A, table=table)
    assert verdict == "client" and found.name == "app" and found.rpm == 5
    assert hook.lookup("Bearer " + KEY_B, table=table)[1].name == "other"
    auth = hook.user_api_key_auth_for(found)
    assert auth.api_key == sha(KEY_A) and KEY_A not in json.dumps(auth.__dict__)
    assert auth.key_alias == "app" and auth.models == ["chat-small"] and auth.rpm_limit == 5
    assert auth.tpm_limit is None and auth.max_parallel_requests is None and not hasattr(auth, "expires")


def test_master_key_and_no_key_fall_through_to_litellm(hook, table):
    assert hook.lookup(TEST_MASTER_KEY, table=table) == ("fall_through", "master key")
    assert hook.lookup("", table=table) == ("fall_through", "no key")
    assert hook.lookup(None, table=table) == ("fall_through", "no key")
    assert hook.lookup("Bearer ", table=table) == ("fall_through", "no key")


@pytest.mark.parametrize("wrong", ["sk-" + "0" * 48, "not-even-sk", KEY_A + "x", KEY_A[:-1]])
def test_an_unknown_key_is_denied_without_the_key_in_the_message(hook, table, wrong):
    verdict, message = hook.lookup(wrong, table=table)
    assert verdict == "denied" and wrong not in message and "invalid API key" in message


class FakeRequest:
    def __init__(self, path):
        self.path = path


def test_the_hook_raises_what_litellm_needs(hook, table, monkeypatch):
    import asyncio

    monkeypatch.setattr(hook, "TABLE", table)
    chat = FakeRequest("/v1/chat/completions")
    auth = asyncio.run(hook.authenticate(chat, "Bearer " + KEY_A))
    assert isinstance(auth, FakeAuth) and auth.key_alias == "app"
    with pytest.raises(hook.FallThrough):  # auto mode: LiteLLM's own auth decides
        asyncio.run(hook.authenticate(chat, TEST_MASTER_KEY))
    assert not issubclass(hook.FallThrough, FakeProxyException)
    with pytest.raises(FakeProxyException) as denied:
        asyncio.run(hook.authenticate(chat, "sk-" + "0" * 48))
    assert denied.value.code == "401" and denied.value.type == "auth_error"


def test_a_client_key_is_kept_to_the_model_api(hook, table, monkeypatch):
    import asyncio

    monkeypatch.setattr(hook, "TABLE", table)
    for path in ("/health", "/model/info", "/key/generate", "/health\n%0afake log line"):
        with pytest.raises(FakeProxyException) as denied:
            asyncio.run(hook.authenticate(FakeRequest(path), KEY_A))
        assert denied.value.code == "403" and "needs the master key" in denied.value.message
        assert "\n" not in denied.value.message
    # the master key is LiteLLM's business on every route
    with pytest.raises(hook.FallThrough):
        asyncio.run(hook.authenticate(FakeRequest("/health"), TEST_MASTER_KEY))
    # a wrong key is 401 whatever the route
    with pytest.raises(FakeProxyException) as denied:
        asyncio.run(hook.authenticate(FakeRequest("/health"), KEY_A + "0"))
    assert denied.value.code == "401"


def test_lookup_compares_every_entry_whichever_matches(hook, table, monkeypatch):
    """Constant-time path: one compare_digest per entry (and one for the master key), match or not."""
    many = {f"c{i}": entry(f"sk-{i:048d}") for i in range(50)}
    write_table(__import__("pathlib").Path(table.path), many)
    table.clock_.now += 1
    calls = []
    real = hook.hmac.compare_digest

    def counting(a, b):
        calls.append(len(a))
        return real(a, b)

    monkeypatch.setattr(hook.hmac, "compare_digest", counting)
    for key in ("sk-" + "0" * 48, "sk-" + "0" * 47 + "1", "sk-" + "0" * 46 + "49", "sk-" + "9" * 48, TEST_MASTER_KEY):
        calls.clear()
        hook.lookup(key, table=table)
        assert calls == [32] * 51, key  # 50 entries + the master key, all full SHA-256 digests


def test_find_has_no_early_exit(hook):
    entries = tuple(hook.Entry(f"c{i}", {"hash": sha(f"sk-{i}")}) for i in range(3))
    seen = []
    real = hook.hmac.compare_digest
    hook.hmac.compare_digest = lambda a, b: seen.append(a) or real(a, b)
    try:
        assert hook.find(entries, hashlib.sha256(b"sk-0").digest()).name == "c0"
    finally:
        hook.hmac.compare_digest = real
    assert seen == [e.digest for e in entries]


def test_a_disabled_client_is_denied(hook, tmp_path):
    path = tmp_path / "t.json"
    write_table(path, {"app": entry(KEY_A, disabled=True)})
    verdict, message = hook.lookup(KEY_A, table=hook.KeyTable(path=str(path)))
    assert verdict == "denied" and "client app is disabled" in message and KEY_A not in message


def test_an_expired_client_is_denied_and_a_future_expiry_passed_on(hook, tmp_path):
    path = tmp_path / "t.json"
    write_table(path, {"old": entry(KEY_A, expires="2026-01-01T00:00:00+00:00"),
                       "new": entry(KEY_B, expires="2099-01-01T00:00:00+00:00")})
    t = hook.KeyTable(path=str(path))
    now = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
    verdict, message = hook.lookup(KEY_A, table=t, now=now)
    assert verdict == "denied" and "expired at 2026-01-01T00:00:00+00:00" in message
    verdict, found = hook.lookup(KEY_B, table=t, now=now)
    assert verdict == "client"
    assert hook.user_api_key_auth_for(found).expires == "2099-01-01T00:00:00+00:00"
    # the expiry moment itself is expired
    exact = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    assert hook.lookup(KEY_A, table=t, now=exact)[0] == "denied"


def test_a_changed_table_is_in_force_after_the_interval(hook, table):
    import pathlib

    assert hook.lookup(KEY_A, table=table)[0] == "client"
    write_table(pathlib.Path(table.path), {"other": entry(KEY_B)})  # app revoked
    assert hook.lookup(KEY_A, table=table)[0] == "client"  # not looked at yet
    table.clock_.now += 0.5
    assert hook.lookup(KEY_A, table=table)[0] == "denied"
    write_table(pathlib.Path(table.path), {"other": entry(KEY_B), "app": entry(KEY_A, rpm=9)})  # added back
    table.clock_.now += 0.5
    assert hook.lookup(KEY_A, table=table)[1].rpm == 9


def test_an_in_place_rewrite_is_seen_too(hook, table):
    import pathlib

    path = pathlib.Path(table.path)
    hook.lookup(KEY_A, table=table)
    inode = path.stat().st_ino
    path.write_text(json.dumps({"format": 1, "clients": {"app": entry(KEY_A, rpm=7)}}))
    assert path.stat().st_ino == inode
    table.clock_.now += 1
    assert hook.lookup(KEY_A, table=table)[1].rpm == 7


def test_the_file_is_looked_at_once_per_interval(hook, table, monkeypatch):
    stats = []
    real = hook.os.stat
    monkeypatch.setattr(hook.os, "stat", lambda p, *a, **k: stats.append(p) or real(p, *a, **k))
    for _ in range(100):
        hook.lookup(KEY_A, table=table)
    assert len(stats) == 1
    table.clock_.now += 0.5
    for _ in range(100):
        hook.lookup(KEY_A, table=table)
    assert len(stats) == 2


def test_a_broken_table_keeps_the_last_good_one_and_is_logged_once(hook, table, caplog):
    import pathlib

    path = pathlib.Path(table.path)
    assert hook.lookup(KEY_A, table=table)[0] == "client"
    path.write_text('{"format": 1, "clients": {"app": ')  # half written
    for _ in range(3):
        table.clock_.now += 1
        assert hook.lookup(KEY_A, table=table)[0] == "client"
    assert caplog.text.count("not a valid key table") == 1
    write_table(path, {"app": entry(KEY_A, rpm=3)})
    table.clock_.now += 1
    assert hook.lookup(KEY_A, table=table)[1].rpm == 3
    assert KEY_A not in caplog.text and sha(KEY_A) not in caplog.text


def test_an_unreadable_table_keeps_the_last_good_one(hook, table, monkeypatch):
    import builtins
    import pathlib

    hook.lookup(KEY_A, table=table)
    write_table(pathlib.Path(table.path), {})
    real_open = builtins.open

    def no_access(path, *args, **kwargs):
        if str(path) == table.path:
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_access)
    table.clock_.now += 1
    assert hook.lookup(KEY_A, table=table)[0] == "client"
    monkeypatch.setattr(builtins, "open", real_open)
    table.clock_.now += 1
    assert hook.lookup(KEY_A, table=table)[0] == "denied"  # retried: the empty table is in force


def test_a_missing_table_means_no_client_key(hook, tmp_path):
    t = hook.KeyTable(path=str(tmp_path / "absent.json"))
    assert hook.lookup(KEY_A, table=t)[0] == "denied"
    assert hook.lookup(TEST_MASTER_KEY, table=t)[0] == "fall_through"


def test_the_hook_reads_what_the_formula_renders(hook, tmp_path):
    settings = settings_with({"app": {"key": KEY_A, "models": ["phi3-mini"], "tpm": 100, "expires": "2099-01-01"}})
    path = tmp_path / "client-keys.json"
    path.write_text(litellm_config.key_table_text(settings))
    verdict, found = hook.lookup(KEY_A, table=hook.KeyTable(path=str(path)))
    assert verdict == "client" and (found.name, found.models, found.tpm) == ("app", ["phi3-mini"], 100)
    assert found.expires == datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)


def test_the_default_table_is_next_to_the_hook(hook):
    assert hook.TABLE_PATH == str(HOOK_PATH.parent / "client-keys.json")


def test_no_key_is_ever_logged_by_the_hook(hook, table, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    for key in (KEY_A, KEY_B, TEST_MASTER_KEY, "sk-" + "0" * 48):
        hook.lookup(key, table=table)
    for key in (KEY_A, KEY_B, TEST_MASTER_KEY, "sk-" + "0" * 48):
        assert key not in caplog.text


def test_each_worker_reports_what_it_has_in_force_without_hashes(hook, table, tmp_path, monkeypatch):
    import pathlib

    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime))
    hook.lookup(KEY_A, table=table)
    status_path = runtime / f"client-keys.{os.getpid()}.json"
    status = json.loads(status_path.read_text())
    assert status["table_sha256"] == hashlib.sha256(pathlib.Path(table.path).read_bytes()).hexdigest()
    assert status["clients"]["app"] == {"models": ["chat-small"], "rpm": 5, "tpm": None, "max_parallel": None,
                                        "expires": None, "disabled": False}
    assert sha(KEY_A) not in status_path.read_text() and sha(KEY_B) not in status_path.read_text()
    write_table(pathlib.Path(table.path), {"other": entry(KEY_B, rpm=1)})
    table.clock_.now += 1
    hook.lookup(KEY_A, table=table)
    assert sorted(json.loads(status_path.read_text())["clients"]) == ["other"]
    assert sorted(p.name for p in runtime.iterdir()) == [status_path.name]  # no temporary file left


def test_no_runtime_directory_no_report(hook, table, monkeypatch):
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    assert hook.lookup(KEY_A, table=table)[0] == "client"

"""Unit tests of litellm_release: which release to keep or go back to (pure), and the store on disk."""

import datetime
import json
import os
import stat
from unittest.mock import MagicMock

import pytest

from tests.conftest import SALT_UTILS, load_salt_module

litellm_release = load_salt_module("modules", "litellm_release")

GOOD = {"config.yaml": b"model_list: []\n", "litellm.env": b"LITELLM_MASTER_KEY=sk-good\n"}
CHANGED = {"config.yaml": b"model_list: [x]\n", "litellm.env": GOOD["litellm.env"]}


def release(files, venv=None, name="r"):
    return {"name": name, "path": f"/store/{name}", "files": files, "venv": venv}


def live(files, venv=None):
    return {"files": files, "venv": venv}


@pytest.fixture
def salt():
    return {
        "litellm_venv.prune": MagicMock(return_value=[]),
        "litellm_venv.activate": MagicMock(),
        "litellm_service.readiness": MagicMock(return_value={"ready": True, "status": 200, "detail": ""}),
        "litellm_service.wait_ready": MagicMock(return_value={"ready": True, "status": 200, "waited": 1.5}),
        "service.restart": MagicMock(return_value=True),
        "litellm_service.apply_change": MagicMock(return_value={"path": "restart", "ok": True, "detail": "",
                                                                "main_pid": 2, "main_pid_before": 1}),
    }


@pytest.fixture
def configure_loader_modules(salt):
    return {litellm_release: {"__salt__": salt, "__opts__": {"test": False}, "__utils__": SALT_UTILS}}


def test_same_compares_files_and_venv():
    assert litellm_release.same(live(GOOD, "/v/a"), release(GOOD, "/v/a"))
    assert not litellm_release.same(live(GOOD, "/v/b"), release(GOOD, "/v/a"))
    assert not litellm_release.same(live(CHANGED, "/v/a"), release(GOOD, "/v/a"))
    # a release kept before venvs were recorded matches on its files
    assert litellm_release.same(live(GOOD, "/v/b"), release(GOOD, None))


def test_differences_name_what_a_rollback_replaces():
    assert litellm_release.differences(live(CHANGED, "/v/b"), release(GOOD, "/v/a")) == ["config.yaml", "venv"]
    assert litellm_release.differences(live(GOOD, "/v/b"), release(GOOD, None)) == []


@pytest.mark.parametrize(
    ("live_state", "steps", "expected"),
    [
        (live(GOOD, "/v/new"), 1, 1),  # live is the newest: go to the one before
        (live(CHANGED, "/v/new"), 1, 0),  # live never passed: the newest
        (live(CHANGED, "/v/new"), 2, 1),
        (live(GOOD, "/v/old"), 1, None),  # live is the oldest: nothing older
        (live(GOOD, "/v/new"), 5, None),
    ],
)
def test_rollback_target(live_state, steps, expected):
    releases = [release(GOOD, "/v/new", "2"), release(GOOD, "/v/old", "1")]
    assert litellm_release.rollback_target(releases, live_state, steps) == expected


def test_no_target_without_releases():
    assert litellm_release.rollback_target([], live(GOOD), 1) is None


def test_venvs_to_keep_are_the_active_one_and_the_newest_others():
    releases = [release(GOOD, v) for v in ("/v/c", "/v/b", "/v/b", "/v/a", None)]
    assert litellm_release.venvs_to_keep(releases, "/v/c", 1) == ["/v/c", "/v/b"]
    assert litellm_release.venvs_to_keep(releases, "/v/c", 0) == ["/v/c"]
    assert litellm_release.venvs_to_keep(releases, "/v/c", 5) == ["/v/c", "/v/b", "/v/a"]


@pytest.mark.parametrize(
    ("ready", "started", "replaced", "restart"),
    [
        (True, 100.0, 200.0, False),  # the process never loaded the bad change
        (True, 300.0, 200.0, True),  # it did
        (False, 100.0, 200.0, True),  # not serving: restart anyway
        (True, None, 200.0, True),
    ],
)
def test_needs_restart(ready, started, replaced, restart):
    assert litellm_release.needs_restart(ready, started, replaced) is restart


def test_generation_names_sort_by_time():
    early = datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
    later = early + datetime.timedelta(microseconds=1)
    assert litellm_release.generation_name(early) < litellm_release.generation_name(later)


# --- the store on disk ---------------------------------------------------------------


@pytest.fixture
def site(tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    for name, data in GOOD.items():
        (config_dir / name).write_bytes(data)
    releases = tmp_path / "venv-releases"
    for name in ("a", "b", "c"):
        (releases / name / "bin").mkdir(parents=True)
        (releases / name / "bin" / "python").write_text("")
    venv = tmp_path / "venv"
    venv.symlink_to(releases / "a")
    return {"config_dir": str(config_dir), "venv": str(venv), "store": str(tmp_path / "state" / "known-good"),
            "releases": releases}


def _save(site, **kwargs):
    return litellm_release.save(site["config_dir"], site["venv"], site["store"], **kwargs)


def test_save_keeps_a_private_release_once(site):
    first = _save(site)
    assert first["action"] == "saved"
    path = os.path.join(site["store"], first["release"])
    assert stat.S_IMODE(os.stat(site["store"]).st_mode) == 0o700
    for name in (*GOOD, "release.json"):
        assert stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) == 0o600
    meta = json.loads(open(os.path.join(path, "release.json")).read())
    assert meta["venv"] == str(site["releases"] / "a")
    assert _save(site)["action"] == "kept"
    assert len(litellm_release.load(site["store"])) == 1


def test_save_prunes_old_releases_and_venvs(site, salt):
    for content in (b"one\n", b"two\n", b"three\n"):
        (site["releases"].parent / "etc" / "config.yaml").write_bytes(content)
        out = _save(site, keep=2, keep_venvs=1)
    assert out["pruned"] and len(litellm_release.load(site["store"])) == 2
    salt["litellm_venv.prune"].assert_called_with(site["venv"], [str(site["releases"] / "a")])


def test_a_flat_pair_from_before_releases_becomes_the_oldest_release(site):
    os.makedirs(site["store"])
    for name, data in GOOD.items():
        open(os.path.join(site["store"], name), "wb").write(data)
    releases = litellm_release.load(site["store"])
    assert [r["name"] for r in releases] == ["00000000T000000.000000Z"]
    assert releases[0]["venv"] is None and releases[0]["files"] == GOOD


def test_recover_restores_files_and_venv_and_restarts_when_the_process_loaded_them(site, salt, monkeypatch):
    _save(site)
    (site["releases"].parent / "etc" / "config.yaml").write_bytes(CHANGED["config.yaml"])
    os.unlink(site["venv"])
    os.symlink(site["releases"] / "b", site["venv"])
    monkeypatch.setattr(litellm_release, "_loaded_at", lambda service: 4e9)  # after the change
    salt["litellm_venv.activate"].side_effect = lambda venv, target: (os.unlink(venv), os.symlink(target, venv))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # no chown in the test
    out = litellm_release.recover(site["config_dir"], site["venv"], store=site["store"])
    assert out["action"] == "rolled_back" and out["restarted"] is True
    assert (site["releases"].parent / "etc" / "config.yaml").read_bytes() == GOOD["config.yaml"]
    assert os.readlink(site["venv"]) == str(site["releases"] / "a")
    assert "config.yaml" in out["reason"] and "venv" in out["reason"]
    assert b"sk-good" not in json.dumps(out).encode()
    # the venv changed: a new supervisor, behind the held socket (as a deploy would)
    salt["litellm_service.apply_change"].assert_called_once()
    assert salt["litellm_service.apply_change"].call_args.args[:2] == ("litellm", "restart")
    assert out["path"] == "restart"
    salt["service.restart"].assert_not_called()


def test_recover_reloads_when_only_files_go_back(site, salt, monkeypatch):
    _save(site)
    (site["releases"].parent / "etc" / "config.yaml").write_bytes(CHANGED["config.yaml"])
    monkeypatch.setattr(litellm_release, "_loaded_at", lambda service: 4e9)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    out = litellm_release.recover(site["config_dir"], site["venv"], store=site["store"], force_restart=True)
    assert out["restarted"] is True
    assert salt["litellm_service.apply_change"].call_args.args[:2] == ("litellm", "reload")


def test_recover_does_not_restart_a_ready_process_that_never_loaded_the_change(site, salt, monkeypatch):
    _save(site)
    (site["releases"].parent / "etc" / "litellm.env").write_bytes(b"LITELLM_MASTER_KEY=sk-new\n")
    monkeypatch.setattr(litellm_release, "_loaded_at", lambda service: 1.0)  # long before
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    out = litellm_release.recover(site["config_dir"], site["venv"], store=site["store"])
    assert out["action"] == "rolled_back" and out["restarted"] is False
    salt["service.restart"].assert_not_called()


def test_recover_says_why_it_does_nothing(site, salt):
    assert "nothing to roll back to" in litellm_release.recover(site["config_dir"], site["venv"],
                                                                 store=site["store"])["reason"]
    _save(site)
    out = litellm_release.recover(site["config_dir"], site["venv"], store=site["store"])
    assert out["action"] == "none" and "last known-good" in out["reason"]
    out = litellm_release.recover(site["config_dir"], site["venv"], store=site["store"], steps=1)
    assert out["action"] == "none" and "no known-good release 1 older" in out["reason"]
    salt["service.restart"].assert_not_called()


def test_status_lists_releases_without_contents(site):
    _save(site)
    out = litellm_release.status(site["config_dir"], site["venv"], site["store"])
    assert out["releases"][0]["live"] is True and out["releases"][0]["venv_on_disk"] is True
    assert "sk-good" not in json.dumps(out)

"""The shipped salt-ssh configuration serves the formula and never the pillar."""

import os

import salt.utils.yaml

from tests.conftest import REPO


def test_master_config_keeps_pillar_out_of_file_roots():
    master = salt.utils.yaml.safe_load((REPO / "etc/salt/master").read_text())
    roots = [os.path.realpath(REPO / path) for path in master["file_roots"]["base"]]
    pillar = os.path.realpath(REPO / master["pillar_roots"]["base"][0])
    assert pillar == str(REPO / "pillar")
    for root in roots:
        assert not pillar.startswith(root + os.sep) and pillar != root
    assert master["gpg_decrypt_must_succeed"] is True


def test_custom_modules_ship_with_the_state_tree():
    for kind in ("_modules", "_states", "_utils"):
        link = REPO / "salt" / kind
        assert link.is_symlink() and os.path.realpath(link) == str(REPO / kind)


def test_salt_call_loads_the_utils_with_the_modules():
    minion = salt.utils.yaml.safe_load((REPO / "etc/salt/minion").read_text())
    assert minion["module_dirs"] == ["_modules"] and minion["utils_dirs"] == ["_utils"]


def test_a_module_without_its_utils_says_so():
    from tests.conftest import load_salt_module

    for name in ("litellm_preflight", "litellm_smoke", "litellm_config", "litellm_release"):
        module = load_salt_module("modules", name)
        module.__utils__ = {}
        why = f"{name} needs the formula's _utils (saltutil.sync_utils, or utils_dirs)"
        assert module.__virtual__() == (False, why)


def test_saltfile_points_at_the_shipped_config():
    saltfile = salt.utils.yaml.safe_load((REPO / "Saltfile").read_text())
    assert saltfile["salt-ssh"]["config_dir"] == "etc/salt"
    assert (REPO / saltfile["salt-ssh"]["config_dir"] / "master").is_file()


def test_every_sls_state_id_follows_the_naming_scheme():
    import re

    ids = []
    for path in (REPO / "salt/litellm").rglob("*.sls"):
        ids += re.findall(r"^(litellm-[a-z0-9{}\-_. |~/]+):\s*$", path.read_text(), re.M)
    assert len(ids) > 15
    prefixes = ("validate", "owner", "preflight", "package", "config", "service", "smoke", "redis", "metrics")
    assert all(i.startswith(tuple(f"litellm-{p}-" for p in prefixes)) for i in ids), ids


def test_the_controller_keeps_its_state_in_one_directory(monkeypatch):
    import salt.config

    monkeypatch.chdir(REPO)  # salt-ssh runs from the repository root (the Saltfile)
    opts = salt.config.master_config(str(REPO / "etc/salt/master"))
    state = REPO / ".salt-ssh"
    assert (opts["cachedir"], opts["pki_dir"], opts["ssh_log_file"]) == (
        str(state / "cache"), str(state / "pki"), str(state / "ssh.log"))
    assert opts["master_job_cache"] == "litellm_no_job_cache" and opts["returner_dirs"] == ["_returners"]

"""
litellm:keys through Salt's loader: the hook and the key table are states of
litellm.config (root:litellm 0640, the table never diffed), a plaintext client
key from pillar is hashed while the SLS renders (it is in no state's data and
in no output), and the service does not watch the table (a key change
restarts nothing). Test mode only: nothing on this host changes.
"""

import hashlib
import json
import os

import pytest
import salt.utils.yaml

from tests.conftest import TEST_MASTER_KEY

from .conftest import SITE_PILLAR

PLAIN_KEY = "sk-" + "5e" * 24  # a client key given in (GPG-decrypted) pillar
HASHED_KEY = "sk-" + "7c" * 24
KEYS = {
    "open-webui": {"hash": "sha256:" + hashlib.sha256(HASHED_KEY.encode()).hexdigest(), "rpm": 60},
    "team-research": {"key": PLAIN_KEY, "models": ["chat-small"], "expires": "2099-01-01"},
}


@pytest.fixture(scope="module")
def pillar_tree(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys-pillar")
    pillar = {"litellm": dict(SITE_PILLAR["litellm"], keys=KEYS)}
    (path / "top.sls").write_text("base:\n  '*':\n    - litellm\n")
    (path / "litellm.sls").write_text(salt.utils.yaml.safe_dump(pillar))
    return path


@pytest.fixture(scope="module")
def lowstate(loaders):
    return loaders.modules.state.show_low_sls("litellm")


def by_id(lowstate):
    return {chunk["__id__"]: chunk for chunk in lowstate}


def test_hook_and_table_are_root_owned_and_the_table_never_diffed(lowstate):
    chunks = by_id(lowstate)
    hook = chunks["litellm-config-file-auth-hook-managed"]
    table = chunks["litellm-config-file-keys-managed"]
    assert hook["name"] == "/etc/litellm/litellm_client_keys.py"
    assert hook["source"] == "salt://litellm/files/litellm_client_keys.py"
    assert table["name"] == "/etc/litellm/client-keys.json"
    for chunk in (hook, table):
        assert (chunk["user"], chunk["group"], chunk["mode"]) == ("root", "litellm", "0640")
    assert table["show_changes"] is False
    config = chunks["litellm-config-file-config-managed"]
    assert config["tmp_dir"] == "/etc/litellm"  # LiteLLM finds the hook beside the config it checks
    assert {"file": "litellm-config-file-auth-hook-managed"} in config["require"]


def test_a_plaintext_client_key_is_hashed_while_the_sls_renders(lowstate):
    context = by_id(lowstate)["litellm-config-file-keys-managed"]["context"]["litellm"]
    assert context["keys"]["team-research"] == {
        "hash": "sha256:" + hashlib.sha256(PLAIN_KEY.encode()).hexdigest(),
        "models": ["chat-small"],
        "expires": "2099-01-01",
    }
    assert context["keys"]["open-webui"] == KEYS["open-webui"]
    for chunk in lowstate:
        if chunk["__id__"] in ("litellm-validate-pillar-validated", "litellm-preflight-go"):
            continue  # these get the whole settings, the master key too, and never print them
        assert PLAIN_KEY not in json.dumps(chunk, default=str), chunk["__id__"]
        if chunk["__id__"].startswith("litellm-owner-"):
            assert TEST_MASTER_KEY not in json.dumps(chunk, default=str), chunk["__id__"]


def test_the_service_restarts_for_config_env_and_hook_but_not_for_the_table(lowstate):
    service = by_id(lowstate)["litellm-service-running-service-running"]
    watched = service["watched"]
    required = [next(iter(w.items())) for w in service["require"]]
    assert "litellm-config-file-keys-managed" not in watched
    assert ("sls", "litellm.config") not in required
    for state_id in ("litellm-config-file-config-managed", "litellm-config-file-env-managed",
                     "litellm-config-file-auth-hook-managed"):
        assert state_id in watched and ("file", state_id) in required


def test_render_gives_the_table_with_hashes_only(modules):
    rendered = modules.litellm_config.render()
    assert rendered["valid"] is True, rendered["errors"]
    table = json.loads(rendered["keys"])
    assert sorted(table["clients"]) == ["open-webui", "team-research"]
    assert table["clients"]["team-research"]["hash"] == hashlib.sha256(PLAIN_KEY.encode()).hexdigest()
    assert "custom_auth: litellm_client_keys.authenticate" in rendered["config"]
    assert PLAIN_KEY not in json.dumps(rendered) and TEST_MASTER_KEY not in json.dumps(rendered)


def test_whole_formula_in_test_mode_shows_no_key(modules):
    before = set(os.listdir("/etc"))
    ret = modules.state.sls("litellm", test=True)
    ids = {r.id for r in ret}
    assert {"litellm-config-file-auth-hook-managed", "litellm-config-file-keys-managed"} <= ids
    results = {r.id: r.result for r in ret}
    assert results["litellm-validate-pillar-validated"] is True
    text = json.dumps(ret.raw, default=str)
    assert PLAIN_KEY not in text and TEST_MASTER_KEY not in text
    assert set(os.listdir("/etc")) == before


def test_a_bad_key_entry_stops_the_run_naming_it(states):
    settings = dict(SITE_PILLAR["litellm"], keys={"app": {"hash": "sha256:nothex", "models": ["nope"]}})
    ret = states.litellm_config.validated(name="litellm", settings=settings)
    assert ret.result is False
    assert "litellm:keys:app:hash:" in ret.comment and "litellm:keys:app:models:0:" in ret.comment

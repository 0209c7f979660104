"""
Client keys (litellm:keys): validation, the key table and config the formula
renders, and scripts/new-client-key. The hook itself: test_client_keys_hook.py.
"""

import json
import subprocess
import sys

import pytest
import salt.utils.yaml

from tests.conftest import REPO, TEST_MASTER_KEY
from tests.unit.client_keys_common import (
    HOOK_PATH,
    KEY_A,
    KEY_B,
    key_errors,
    litellm_config,
    settings_with,
    sha,
)

# --- validation ---------------------------------------------------------------------------


def test_good_keys_pass():
    keys = {
        "open-webui": {"hash": f"sha256:{sha(KEY_A)}", "models": ["llama3.2-3b"], "rpm": 60, "tpm": 10000,
                       "max_parallel": 4, "expires": "2027-06-30", "disabled": False},
        "team-research": {"key": KEY_B},
        "batch.jobs_2": {"hash": f"sha256:{sha('sk-' + 'c3' * 24).upper()}", "expires": "2027-06-30T12:00:00Z"},
    }
    assert litellm_config.check_settings(settings_with(keys)) == []


def test_no_keys_is_valid_and_renders_no_hook():
    settings = settings_with({})
    assert litellm_config.check_settings(settings) == []
    config = litellm_config.build_config(settings)
    assert "custom_auth" not in config["general_settings"]
    assert "enable_post_custom_auth_checks" not in config["litellm_settings"]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"hash": "md5:abc"}, "litellm:keys:app:hash: must be 'sha256:' and 64 hex digits"),
        ({"hash": "sha256:" + "g" * 64}, "litellm:keys:app:hash: must be 'sha256:' and 64 hex digits"),
        ({"hash": sha(KEY_A)}, "litellm:keys:app:hash: must be 'sha256:' and 64 hex digits"),
        ({"hash": f"sha256:{sha(KEY_A)}", "models": ["nope"]},
         "litellm:keys:app:models:0: 'nope' is not an alias of litellm:models"),
        ({"hash": f"sha256:{sha(KEY_A)}", "models": []}, "litellm:keys:app:models: must be a non-empty list"),
        ({"hash": f"sha256:{sha(TEST_MASTER_KEY)}"}, "litellm:keys:app:hash: is the hash of the master key"),
        ({"key": TEST_MASTER_KEY}, "litellm:keys:app:key: is the master key"),
        ({"hash": f"sha256:{sha(KEY_A)}", "expires": "2027-13-01"}, "litellm:keys:app:expires: must be an ISO date"),
        ({"hash": f"sha256:{sha(KEY_A)}", "expires": "next year"}, "litellm:keys:app:expires: must be an ISO date"),
        ({"hash": f"sha256:{sha(KEY_A)}", "rpm": -1}, "litellm:keys:app:rpm: must be an integer from 1"),
        ({"hash": f"sha256:{sha(KEY_A)}", "tpm": -5}, "litellm:keys:app:tpm: must be an integer from 1"),
        ({"hash": f"sha256:{sha(KEY_A)}", "max_parallel": -2}, "litellm:keys:app:max_parallel: must be an integer"),
        ({"hash": f"sha256:{sha(KEY_A)}", "rpm": "60"}, "litellm:keys:app:rpm: must be an integer from 1"),
        ({"hash": f"sha256:{sha(KEY_A)}", "disabled": "yes"}, "litellm:keys:app:disabled: must be true or false"),
        ({"hash": f"sha256:{sha(KEY_A)}", "key": KEY_A}, "litellm:keys:app: give exactly one of hash"),
        ({"models": ["llama3.2-3b"]}, "litellm:keys:app: give exactly one of hash"),
        ({"hash": f"sha256:{sha(KEY_A)}", "rpm_limit": 3}, "litellm:keys:app: unknown key(s) rpm_limit"),
        ({"key": "abc" * 12}, "litellm:keys:app:key: must start with 'sk-'"),
        ({"key": "sk-short"}, "litellm:keys:app:key: too short (8 characters)"),
        ({"key": "-----BEGIN PGP MESSAGE-----\nxx"}, "litellm:keys:app:key: still GPG-encrypted"),
        ("sha256:abc", "litellm:keys:app: must be a mapping"),
    ],
)
def test_each_bad_key_is_named(spec, expected):
    errors = key_errors({"app": spec})
    assert any(e.startswith(expected) for e in errors), errors


def test_duplicate_hashes_name_both_clients():
    errors = key_errors({"one": {"hash": f"sha256:{sha(KEY_A)}"}, "two": {"key": KEY_A}})
    assert errors == ["litellm:keys:two: same key as litellm:keys:one (duplicate hash)"]


def test_a_bad_client_name_and_a_bad_mapping():
    assert key_errors({"has space": {"hash": f"sha256:{sha(KEY_A)}"}})[0].startswith(
        "litellm:keys:has space: the client name must be"
    )
    assert key_errors(["app"]) == ["litellm:keys: must be a mapping of client name: settings, got ['app'] (list)"]


def test_a_plaintext_key_is_never_echoed():
    bad = "sk-" + "x y" * 12  # white space: refused, but never shown
    errors = key_errors({"app": {"key": bad}, "dup": {"key": TEST_MASTER_KEY}})
    assert errors and bad not in json.dumps(errors) and TEST_MASTER_KEY not in json.dumps(errors)


@pytest.mark.parametrize("section, key", [("general_settings", "custom_auth"),
                                          ("general_settings", "custom_auth_settings"),
                                          ("general_settings", "allow_requests_on_db_unavailable")])
def test_the_formulas_auth_settings_cannot_be_overridden(section, key):
    settings = settings_with({}, **{section: {key: True}})
    assert any(e.startswith(f"litellm:{section}:{key}:") for e in litellm_config.check_settings(settings))


# --- rendering ---------------------------------------------------------------------------


def test_key_table_holds_hashes_defaults_and_no_key():
    settings = settings_with(
        {
            "open-webui": {"hash": f"sha256:{sha(KEY_A).upper()}", "models": ["phi3-mini"], "rpm": 60,
                           "expires": "2027-06-30"},
            "team-research": {"key": KEY_B, "disabled": True, "max_parallel": 2,
                              "expires": "2027-06-30T12:30:00+02:00"},
        }
    )
    table = json.loads(litellm_config.key_table_text(settings))
    assert table == {
        "format": 1,
        "clients": {
            "open-webui": {"hash": sha(KEY_A), "models": ["phi3-mini"], "rpm": 60, "tpm": None, "max_parallel": None,
                           "expires": "2027-06-30T00:00:00+00:00", "disabled": False},
            # no models: [] (LiteLLM's all models), so an alias added or removed changes no table
            "team-research": {"hash": sha(KEY_B), "models": [], "rpm": None, "tpm": None, "max_parallel": 2,
                              "expires": "2027-06-30T12:30:00+02:00", "disabled": True},
        },
    }
    assert KEY_B not in litellm_config.key_table_text(settings)
    # stable text: the same pillar renders the same bytes (no change, no diff)
    assert litellm_config.key_table_text(settings) == litellm_config.key_table_text(settings)


def test_no_keys_renders_an_empty_table():
    assert json.loads(litellm_config.key_table_text(settings_with({}))) == {"format": 1, "clients": {}}


def test_keys_add_the_hook_to_the_config():
    settings = settings_with({"app": {"hash": f"sha256:{sha(KEY_A)}"}}, general_settings={"alerting": ["slack"]})
    config = litellm_config.build_config(settings)
    general = config["general_settings"]
    assert general["custom_auth"] == "litellm_client_keys.authenticate"
    assert general["custom_auth_settings"] == {"mode": "auto"}
    assert general["custom_auth_run_common_checks"] is True
    assert general["master_key"] == "os.environ/LITELLM_MASTER_KEY" and general["alerting"] == ["slack"]
    assert config["litellm_settings"]["enable_post_custom_auth_checks"] is True
    text = litellm_config.config_text(settings)
    assert sha(KEY_A) not in text  # the table is a file of its own, not config


def test_the_hook_module_name_is_the_shipped_file():
    assert HOOK_PATH.name == f"{litellm_config.AUTH_HOOK_MODULE}.py"
    assert litellm_config.KEY_TABLE_NAME == "client-keys.json"


# --- scripts/new-client-key -------------------------------------------------------------------


def test_new_client_key_shows_the_key_once_and_prints_the_pillar_line():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "new-client-key"), "open-webui", "--models",
                           "phi3-mini,llama3.2-3b", "--rpm", "60", "--expires", "2027-06-30"],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                          start_new_session=True)  # no controlling terminal: the key goes to stderr
    assert done.returncode == 0, done.stderr
    shown = [w for w in done.stderr.split() if w.startswith("sk-")]
    assert len(shown) == 1 and len(shown[0]) == 51
    key = shown[0]
    assert key not in done.stdout
    pillar = salt.utils.yaml.safe_load("keys:\n" + "\n".join(
        line for line in done.stdout.splitlines() if not line.startswith("#")))
    spec = pillar["keys"]["open-webui"]
    assert spec == {"hash": f"sha256:{sha(key)}", "models": ["phi3-mini", "llama3.2-3b"], "rpm": 60,
                    "expires": "2027-06-30"}
    assert litellm_config.check_settings(settings_with(pillar["keys"])) == []


def test_new_client_key_hashes_a_piped_key_without_showing_it():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "new-client-key"), "app", "--stdin"],
                          input=KEY_A + "\n", capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert f"app: {{hash: 'sha256:{sha(KEY_A)}'}}" in done.stdout
    assert KEY_A not in done.stdout + done.stderr


@pytest.mark.parametrize("args", [["bad name"], ["app", "--rpm", "-1"], ["app", "--expires", "soon"]])
def test_new_client_key_refuses_bad_input(args):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "new-client-key"), *args],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "sk-" not in done.stdout + done.stderr

"""
What the unit tests of client keys share (not a test module): two client keys,
their hashes, settings with a key table, and its validation errors.
"""

import hashlib

from tests.conftest import REPO, TEST_MASTER_KEY, load_salt_module, merged, reference_pillar

litellm_config = load_salt_module("modules", "litellm_config")
HOOK_PATH = REPO / "salt" / "litellm" / "files" / "litellm_client_keys.py"

KEY_A = "sk-" + "a1" * 24
KEY_B = "sk-" + "b2" * 24


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def settings_with(keys, **extra):
    return merged(reference_pillar(), {"master_key": TEST_MASTER_KEY, "keys": keys}, extra)


def key_errors(keys, **extra):
    return [e for e in litellm_config.check_settings(settings_with(keys, **extra)) if e.startswith("litellm:keys")]

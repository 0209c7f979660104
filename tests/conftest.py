"""Shared paths and helpers for every test layer."""

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import salt.utils.dictupdate
import salt.utils.yaml

REPO = Path(__file__).resolve().parent.parent
STATE_TREE = REPO / "salt"
MODULES_DIR = REPO / "_modules"
STATES_DIR = REPO / "_states"
PILLAR_DIR = REPO / "pillar"
GOLDEN_DIR = REPO / "tests" / "golden"

# A valid (random-looking, not a placeholder) key used by tests only.
TEST_MASTER_KEY = "sk-" + "9f3c2a7be14d08c65e7a91f2d3b4c5a6e7f80912"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_salt_module(kind, name):
    """Import _modules/<name>.py or _states/<name>.py under a distinct name."""
    path = (MODULES_DIR if kind == "modules" else STATES_DIR) / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"litellm_salt_{kind}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def formula_defaults():
    with open(STATE_TREE / "litellm" / "parameters" / "defaults.yaml", encoding="utf-8") as handle:
        return salt.utils.yaml.safe_load(handle)["values"]


def reference_pillar():
    with open(PILLAR_DIR / "litellm.sls", encoding="utf-8") as handle:
        return salt.utils.yaml.safe_load(handle)["litellm"]


def merged(*layers):
    """Merge like map.jinja does (smart strategy, lists replaced)."""
    result = copy.deepcopy(formula_defaults())
    for layer in layers:
        result = salt.utils.dictupdate.merge(result, copy.deepcopy(layer), strategy="smart", merge_lists=False)
    return result


@pytest.fixture
def reference_settings():
    """Defaults + the shipped reference pillar + a valid master key."""
    return merged(reference_pillar(), {"master_key": TEST_MASTER_KEY})


def pytest_sessionfinish(session):
    """Stop the gpg-agents the tests' GPG homes started; drop Salt's deferred log handler: at exit it
    would flush into pytest's closed capture stream."""
    import logging

    from tests.harness import site

    site.stop_gpg_agents()

    import salt._logging.impl as salt_logging

    handler = salt_logging.get_temp_handler()
    if handler is not None:
        logging.root.removeHandler(handler)
        handler.sync_with_handlers([logging.NullHandler()])

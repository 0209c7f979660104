"""Functional layer: the modules and states through Salt's real loader."""

import pytest
import salt.utils.yaml
from saltfactories.utils.functional import Loaders

from tests.conftest import MODULES_DIR, STATE_TREE, STATES_DIR, TEST_MASTER_KEY, UTILS_DIR

SITE_PILLAR = {
    "litellm": {
        "backends": ["http://127.0.0.1:21434", "http://127.0.0.1:21435"],
        "models": [{"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"}],
        "master_key": TEST_MASTER_KEY,
        # this machine is no test host: no evidence bundles written here
        "preflight": {"evidence_dir": ""},
    }
}


@pytest.fixture(scope="module")
def pillar_tree(tmp_path_factory):
    path = tmp_path_factory.mktemp("pillar")
    (path / "top.sls").write_text("base:\n  '*':\n    - litellm\n")
    (path / "litellm.sls").write_text(salt.utils.yaml.safe_dump(SITE_PILLAR))
    return path


@pytest.fixture(scope="module")
def minion_opts(request, salt_factories, pillar_tree, tmp_path_factory):
    """
    Minion options with the formula's trees; a test module may override
    ``pillar_tree``. The formula's ownership record goes to a temp dir: the
    tests must never write one on the machine that runs them.
    """
    factory = salt_factories.salt_minion_daemon(
        "functional-" + request.module.__name__.rsplit(".", 1)[-1].replace("_", "-"),
        overrides={
            "file_client": "local",
            "file_roots": {"base": [str(STATE_TREE)]},
            "pillar_roots": {"base": [str(pillar_tree)]},
            "module_dirs": [str(MODULES_DIR)],
            "states_dirs": [str(STATES_DIR)],
            "utils_dirs": [str(UTILS_DIR)],
            "litellm_owner_store": str(tmp_path_factory.mktemp("owner-store") / "litellm-salt"),
        },
    )
    return factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture
def modules(loaders):
    return loaders.modules


@pytest.fixture
def states(loaders):
    return loaders.states

"""Shared paths and helpers for every test layer."""

import copy
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import salt.utils.dictupdate
import salt.utils.yaml

REPO = Path(__file__).resolve().parent.parent
STATE_TREE = REPO / "salt"
MODULES_DIR = REPO / "_modules"
STATES_DIR = REPO / "_states"
UTILS_DIR = REPO / "_utils"
PILLAR_DIR = REPO / "pillar"
GOLDEN_DIR = REPO / "tests" / "golden"

# A valid (random-looking, not a placeholder) key used by tests only.
TEST_MASTER_KEY = "sk-" + "9f3c2a7be14d08c65e7a91f2d3b4c5a6e7f80912"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Under pytest-xdist (make test: two workers) each worker is a run of its own:
# the harness appends LITELLM_HARNESS_SUFFIX to every machine name, so the
# worker's id goes there too and two workers never register the same machine.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["LITELLM_HARNESS_SUFFIX"] = (
        os.environ.get("LITELLM_HARNESS_SUFFIX", "") + "-" + os.environ["PYTEST_XDIST_WORKER"]
    )

#: The slow modules, slowest first (seconds of the last full run, two workers; the rest, each below 148 s
#: there, in the order of an earlier serial run): with ``--dist loadfile`` a worker takes the next module
#: when it is nearly done with its own, so the longest start first and the short ones fill the gaps.
SLOW_MODULES = (
    "tests/integration/test_zero_downtime.py",  # 687 s
    "tests/integration/test_operations.py",  # 549 s, before test_upgrade.py (157 s) was folded in
    "tests/integration/test_smoke.py",  # 195 s
    "tests/integration/test_controller_steps.py",  # 194 s
    "tests/integration/test_edge.py",  # 184 s
    "tests/integration/test_ownership.py",  # 183 s
    "tests/integration/test_deploy.py",  # 158 s
    "tests/integration/test_fleet.py",  # 148 s
    "tests/integration/test_client_keys.py",
    "tests/integration/test_overload.py",
    "tests/integration/test_bookworm.py",
    "tests/integration/test_offline.py",
    "tests/functional/test_overload_live.py",
    "tests/integration/test_preflight.py",
    "tests/harness/test_systemd_host.py",
    "tests/functional/test_client_keys_live.py",
    "tests/functional/test_edge_live.py",
    "tests/functional/test_shared_state_live.py",
    "tests/functional/test_litellm_smoke_live.py",
    "tests/functional/test_litellm_preflight_live.py",
    "tests/harness/test_mirror.py",
)


def pytest_collection_modifyitems(items):
    """The slow modules first, in SLOW_MODULES' order; every module's tests stay in their order."""
    rank = {path: index for index, path in enumerate(SLOW_MODULES)}

    def module_rank(item):
        return rank.get(item.nodeid.split("::", 1)[0], len(SLOW_MODULES))

    items.sort(key=module_rank)  # stable


def _import(kind, path):
    spec = importlib.util.spec_from_file_location(f"litellm_salt_{kind}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SaltUtils:
    """
    ``__utils__`` for modules imported directly: ``utils["mod.function"]``
    and ``utils.mod.function`` as Salt's loader answers them, over the real
    ``_utils/*.py`` imported once (tests patch attributes of these modules).
    """

    def __init__(self, directory):
        self._modules = {path.stem: _import("utils", path) for path in sorted(directory.glob("*.py"))}

    def __getattr__(self, name):
        try:
            return self._modules[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        module, _, function = key.partition(".")
        found = getattr(self._modules.get(module), function, None) if not function.startswith("_") else None
        if not callable(found):  # Salt's loader serves functions only, never private ones
            raise KeyError(key)
        return getattr(self._modules[module], function)

    def __contains__(self, key):
        try:
            self[key]
        except KeyError:
            return False
        return True


SALT_UTILS = SaltUtils(UTILS_DIR)


def load_salt_module(kind, name):
    """Import _modules/<name>.py, _states/<name>.py or _utils/<name>.py under a distinct name; modules and
    states get ``__utils__`` (SALT_UTILS), which a ``configure_loader_modules`` fixture must pass on."""
    if kind == "utils":
        return getattr(SALT_UTILS, name)
    module = _import(kind, (MODULES_DIR if kind == "modules" else STATES_DIR) / f"{name}.py")
    module.__utils__ = SALT_UTILS
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


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory):
    """
    pytest-salt-factories' root below this run's (this worker's) temp dir, not
    its default /tmp: there every run on the machine would share the scripts
    it generates (/tmp/scripts/cli_salt_ssh.py, written once, naming the
    site-packages of whichever checkout wrote it first) and the daemons' dirs.
    """
    return {"root_dir": tmp_path_factory.getbasetemp() / "salt-factories"}


@pytest.fixture
def reference_settings():
    """Defaults + the shipped reference pillar + a valid master key."""
    return merged(reference_pillar(), {"master_key": TEST_MASTER_KEY})


def pytest_sessionstart(session):
    """Hosts that a killed run left in pytest's earlier temp dirs (their overlays still mounted, which
    pytest's rotation cannot delete): stopped and unmounted, if their owner is gone (a live run's stay);
    and the gpg-agents of its GPG homes."""
    if os.environ.get("PYTEST_XDIST_WORKER") or os.geteuid() != 0:
        return
    import getpass
    import tempfile

    from tests.harness.cleanup import reap_stale
    from tests.harness.site import reap_stale_gpg_agents

    stopped = reap_stale_gpg_agents()
    if stopped:
        print(f"conftest: stopped the gpg-agents of killed runs: {stopped}", file=sys.stderr)

    for run in sorted((Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}").glob("pytest-*")):
        try:
            reap_stale(run, depth=4)
        except Exception as exc:  # noqa: BLE001 - a sweep of earlier runs never stops this one
            print(f"conftest: could not reap stale hosts under {run}: {exc}", file=sys.stderr)


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

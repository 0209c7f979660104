"""
Changing the pinned LiteLLM version installs a new venv release from the
shipped lock, switches to it, restarts the service once, and the gateway
passes smoke on the new version; going back switches to the kept release.
"""

import copy

import pytest

from .conftest import journal_count, journal_cursor, service_show

pytestmark = pytest.mark.integration

VENV_PYTHON = "/opt/litellm/venv/bin/python"


def _installed_version(host):
    return host.run([VENV_PYTHON, "-c", "import importlib.metadata as m; print(m.version('litellm'))"]).stdout.strip()


@pytest.fixture(scope="module")
def deployed(apply, host, test_site):
    """The gateway on the default pinned version, from a bare host; bare again at the end
    (every module on the session host leaves it bare: under xdist any module may come next)."""
    original = copy.deepcopy(test_site.settings)
    apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert _installed_version(host) == test_site.settings.get("version", "1.108.7")
    yield
    test_site.write(original)
    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()


SWITCH = ["litellm-package-install-venv-installed", "litellm-service-running-service-running"]
# first time on 1.108.6: its lock file and, in the new release, the config check script
NEW_RELEASE = ["litellm-config-file-check-script-managed", "litellm-package-install-lock-file-managed"]


@pytest.mark.parametrize(("version", "expected"), [("1.108.6", NEW_RELEASE + SWITCH), ("1.108.7", SWITCH)])
def test_version_change_switches_the_release_and_restarts_once(deployed, apply, host, test_site, version, expected):
    pid_before = service_show(host, "MainPID")["MainPID"]
    cursor = journal_cursor(host)
    settings = copy.deepcopy(test_site.settings)
    settings["version"] = version
    test_site.write(settings)
    run = apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert run.changed() == sorted(expected)
    assert _installed_version(host) == version
    assert service_show(host, "MainPID")["MainPID"] != pid_before
    assert journal_count(host, "Started litellm.service", cursor) == 1
    assert run.states["litellm-smoke-passed"]["result"] is True
    again = apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert again.changed() == []


def test_a_version_without_a_lock_is_refused_before_any_change(deployed, apply, host, test_site):
    good = copy.deepcopy(test_site.settings)
    bad = copy.deepcopy(good)
    bad["version"] = "1.0.0"
    pid_before = service_show(host, "MainPID")["MainPID"]
    test_site.write(bad)
    try:
        run = apply.salt_ssh("state.apply", "litellm")
    finally:
        test_site.write(good)
    assert run.returncode != 0
    assert "litellm:version: no lock file for '1.0.0'" in run.states["litellm-validate-pillar-validated"]["comment"]
    assert run.changed() == []
    assert _installed_version(host) == "1.108.7"
    assert service_show(host, "MainPID")["MainPID"] == pid_before

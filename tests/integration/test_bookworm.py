"""
Debian 12 "bookworm" (oldstable, Python 3.11) stays covered while the other
integration tests run on the harness's default, Debian 13 "trixie": on a
bookworm host, a cold deploy with salt-ssh, chat through the gateway, no-op
re-applies with salt-ssh and salt-call --local (0 changes, same MainPID), the
unit's security score, and a smoke test that passes every check.

The tests are test_deploy's and test_smoke's own, imported: this module only
overrides the fixtures they use (``rootfs``, ``test_site``, ``host``,
``salt_master_factory``, ``apply``) with a bookworm host of its own. It gets its
own pillar and gateway port (the default suite's session host may be up at the
same time) and its own salt-ssh controller (its own cache: the same target id
must not get the other host's grains).
"""

import json

import pytest

from tests.harness import site
from tests.harness.systemd_host import build_rootfs, rootfs_meta

from . import test_deploy
from .conftest import Site, gateway_host, make_applier, make_controller
from .test_deploy import (  # noqa: F401 - collected here, on bookworm
    deployed,
    test_cold_deploy_converges_and_the_service_runs_as_litellm,
    test_gateway_serves_chat_and_both_backends_get_traffic,
    test_salt_call_local_apply_changes_nothing,
    test_second_salt_ssh_apply_changes_nothing_and_restarts_nothing,
    test_the_service_compiles_nothing_at_start_or_at_its_first_requests,
    test_unit_is_hardened,
)
from .test_smoke import test_healthy_gateway_passes_every_check  # noqa: F401 - collected here, on bookworm

pytestmark = pytest.mark.integration

SUITE = "bookworm"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Outside the session's site_dir: test_deploy looks for the master key in every file there."""
    return tmp_path_factory.mktemp("bookworm")


@pytest.fixture(scope="module")
def rootfs(require_real_host):
    return build_rootfs(suite=SUITE)


@pytest.fixture(scope="module")
def test_site(workdir, gpg_home, master_key, backends):
    return Site(workdir / "pillar", gpg_home, master_key, site.site_settings(backends.urls, site.free_port()))


@pytest.fixture(scope="module")
def host(rootfs, test_site, gpg_home, workdir):
    with gateway_host(rootfs, "litellm-bookworm", test_site.pillar_dir, gpg_home, workdir / "host") as systemd_host:
        yield systemd_host


@pytest.fixture(scope="module")
def salt_master_factory(salt_factories, test_site, gpg_home, workdir):
    return make_controller(
        salt_factories, "controller-bookworm", workdir / "controller", test_site.pillar_dir, gpg_home
    )


@pytest.fixture(scope="module")
def apply(salt_master_factory, host, outputs, workdir):
    return make_applier(salt_master_factory, host, outputs, workdir / "roster")


def test_the_host_is_bookworm_with_python_3_11(rootfs, host):
    assert rootfs.name.startswith("rootfs-bookworm-")
    assert rootfs_meta(rootfs)["python"] == "3.11"
    os_release = host.run(["cat", "/etc/os-release"]).stdout
    assert "VERSION_CODENAME=bookworm" in os_release, os_release
    assert host.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip() == "3.11"


@pytest.fixture(scope="module", autouse=True)
def report_timings():
    """What the imported tests measured here, on bookworm (not a benchmark): what they
    wrote into test_deploy's TIMINGS while this module ran (it may hold the default suite's)."""
    before = dict(test_deploy.TIMINGS)
    yield
    here = {k: round(v, 2) for k, v in test_deploy.TIMINGS.items() if before.get(k) != v}
    print("\nBOOKWORM TIMINGS " + json.dumps(here))

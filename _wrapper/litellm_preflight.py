"""
salt-ssh wrapper: ``salt-ssh <target> litellm_preflight.run`` (and each
check by name) gets the target's merged settings on the controller
(``salt://litellm/map.jinja`` with the target's grains and pillar, which a
raw salt-ssh module call on the target does not have) and runs the checks on
the target as one ``litellm_preflight.go`` state: the settings travel in
salt-ssh's state package (a file in the thin dir, as with ``state.apply``),
never in a command line. The state carries the report back; this returns it,
with one more check, ``ssh``, on the run itself (a roster entry whose own
``ssh_options`` drop the master's ControlMaster is a warning).

Loaded through ``wrapper_dirs`` (``etc/salt/master``, also in
``ssh_minion_opts``); the logic is the formula's ``_utils/litellm_steps.py``.
"""

import logging
import os
import sys

import salt.client.ssh.wrapper

log = logging.getLogger(__name__)

__virtualname__ = "litellm_preflight"

_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:0] = [] if _HERE in sys.path else [_HERE]  # the wrappers' shared file is beside them
import litellm_wrapper_common as _common  # noqa: E402


def __virtual__():
    return _common.virtual(__virtualname__)


def _ssh_check(utils):
    target = getattr(_common.loaded(__salt__), "kwargs", {}) or {}
    master = (__opts__.get("__master_opts__") or __opts__).get("ssh_options") or []
    status, detail = utils["litellm_steps.control_master"](target.get("ssh_options") or [], master)
    return status, detail


def _report(settings, evidence_dir, checks, saltenv):
    utils = _common.utils(__opts__, __context__)
    funcs = _common.loaded(__salt__)
    problems = utils["litellm_steps.pillar_errors"](_common.loaded(__pillar__))
    if problems:
        return utils["litellm_steps.failed_report"](utils, "pillar", "; ".join(problems))
    if settings is None:
        try:
            settings = utils["litellm_settings.merged"](funcs, saltenv)
        except Exception as exc:  # pylint: disable=broad-except
            log.debug("litellm/map.jinja did not render", exc_info=True)
            return utils["litellm_steps.failed_report"](
                utils, "pillar", "salt://litellm/map.jinja did not render: " + " ".join(str(exc).split())[:500]
            )
    if isinstance(checks, str):
        checks = [name.strip() for name in checks.split(",") if name.strip()]
    try:
        ret = funcs["state.high"](utils["litellm_steps.preflight_high"](settings, evidence_dir, checks, saltenv))
    except salt.client.ssh.wrapper.SSHCommandExecutionError as exc:
        ret = exc.to_ret()  # a failed state (NO-GO) exits non-zero on the target: its return is the report
    report, why = utils["litellm_steps.report_from_state"](ret)
    if report is None:
        detail = f"the preflight did not run on the target: {why}"
        return utils["litellm_steps.failed_report"](utils, "preflight", detail)
    if checks:
        return report
    return utils["litellm_steps.add_check"](utils, report, "ssh", *_ssh_check(utils))


def run(settings=None, evidence_dir=None, checks=None, saltenv="base"):
    """
    The preflight of the target for its merged settings (map.jinja + pillar,
    on the controller), run on the target: ``{"result": "GO"|"NO-GO",
    "checks", "failed", "warnings", "duration_ms", "evidence"}``, plus the
    ``ssh`` check of the run (ControlMaster kept or not: a warning).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.run
        salt-ssh gateway litellm_preflight.run checks=dns,backends
    """
    return _report(settings, evidence_dir, checks, saltenv)


def _one(name, settings, saltenv):
    report = _report(settings, None, [name], saltenv)
    found = [check for check in report["checks"] if check["name"] == name]
    return found[0] if found else report["checks"][0]


def pillar(settings=None, saltenv="base"):
    """
    The pillar check alone (validation of the merged settings).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.pillar
    """
    return _one("pillar", settings, saltenv)


def dns(settings=None, saltenv="base"):
    """
    The DNS check alone.

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.dns
    """
    return _one("dns", settings, saltenv)


def backends(settings=None, saltenv="base"):
    """
    The backends check alone (every backend answers and lists every model).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.backends
    """
    return _one("backends", settings, saltenv)


def bind_port(settings=None, saltenv="base"):
    """
    The bind port check alone.

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.bind_port
    """
    return _one("bind_port", settings, saltenv)


def ownership(settings=None, saltenv="base"):
    """
    The ownership check alone (nothing the deploy would create exists unless the formula's record lists it).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.ownership
    """
    return _one("ownership", settings, saltenv)


def runtime(settings=None, saltenv="base"):
    """
    The runtime check alone (the target python, venv, ensurepip, glibc).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.runtime
    """
    return _one("runtime", settings, saltenv)


def resources(settings=None, saltenv="base"):
    """
    The resources check alone (free disk, available memory).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.resources
    """
    return _one("resources", settings, saltenv)


def trust(settings=None, saltenv="base"):
    """
    The trust check alone (a verified TLS handshake with every https endpoint).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.trust
    """
    return _one("trust", settings, saltenv)


def package_index(settings=None, saltenv="base"):
    """
    The package index check alone (the pinned version is listed).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.package_index
    """
    return _one("package_index", settings, saltenv)


def init(settings=None, saltenv="base"):
    """
    The init check alone (systemd is PID 1 and running).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.init
    """
    return _one("init", settings, saltenv)


def redis(settings=None, saltenv="base"):
    """
    The Redis check alone (AUTH and PING; skipped without a Redis host).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_preflight.redis
    """
    return _one("redis", settings, saltenv)

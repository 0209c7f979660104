"""
Read-only go/no-go checks of a host before the litellm formula deploys to it.

Every check returns ``{"name", "status", "detail", "duration_ms"}`` with
``status`` one of ``pass``, ``fail``, ``warn`` or ``skip`` and a one-line
``detail``; ``run`` runs them all (or the named ones) and says ``GO`` or
``NO-GO`` (warnings never make NO-GO). Nothing here changes the host: sockets
are opened to probe and closed at once, files are only read, commands only
ask. The one exception is the evidence bundle that ``run`` writes when it is
asked to (``evidence_dir``). The master key never appears in any output.

This module is the face: each check lives in its own unit under ``_utils/``
(``litellm_preflight_dns``, ``_backends``, ``_port``, ``_host``, ``_tls``,
``_redis``, ``_site``; the run and the report in ``litellm_preflight_run``
and ``_report``), reached through ``__utils__``. Its pillar is
``litellm:preflight`` (every key and its default: ``pillar.example`` and
``salt/litellm/parameters/defaults.yaml``); ``litellm_config.validate``
checks it with every other section.
"""

import logging
import sys
import types

from salt.loader.context import NamedLoaderContext

log = logging.getLogger(__name__)

__virtualname__ = "litellm_preflight"

NO_PILLAR_NOTE = (
    "no litellm pillar and no salt://litellm/map.jinja here: salt-ssh ran the module on the target "
    "without the formula's wrapper; run salt-ssh from the repository root with the formula's "
    "etc/salt/master (wrapper_dirs), or: salt-ssh <target> state.sls litellm.preflight"
)
NO_MAP_NOTE = (
    "no salt://litellm/map.jinja here, so not the formula's defaults: pillar alone was checked; "
    "run salt-ssh with the formula's etc/salt/master (wrapper_dirs), or: salt-ssh <target> state.sls litellm.preflight"
)


def __virtual__():
    if not sys.platform.startswith("linux"):
        return (False, "litellm_preflight reads /proc and only runs on Linux")
    if "litellm_preflight_run.run" not in __utils__:
        return (False, "litellm_preflight needs the formula's _utils (saltutil.sync_utils, or utils_dirs)")
    return __virtualname__


def _loaded(dunder):
    """The object behind a loader dunder: Salt's proxies resolve only in this module's own context."""
    return dunder.value() if isinstance(dunder, NamedLoaderContext) else dunder


def _context(settings, saltenv):
    """(ctx, settings): the checks' view of this minion, and the settings (default: the merged map)."""
    salt, utils = _loaded(__salt__), _loaded(__utils__)

    def run(argv, timeout=15):
        """A read-only command through cmd.run_all; its output is never logged."""
        return salt["cmd.run_all"](argv, python_shell=False, timeout=timeout, ignore_retcode=True,
                                   output_loglevel="quiet")

    def validate(checked):
        return list(salt["litellm_config.validate"](settings=checked)["errors"])

    def owner(checked):
        if "litellm_owner.check" not in salt:
            return None
        return salt["litellm_owner.check"](salt["litellm_config.layout"](settings=checked))

    note = None
    if settings is None:
        missing = object()
        settings = utils["litellm_settings.merged"](salt, saltenv, without_map=missing)
        if settings is missing:
            # salt-ssh <target> litellm_preflight.run: no state tree, so no defaults.yaml here
            settings = utils["litellm_settings.pillar"](salt)
            note = NO_PILLAR_NOTE if not settings else NO_MAP_NOTE
    ctx = types.SimpleNamespace(utils=utils, run=run, grains=_loaded(__grains__), validate=validate, owner=owner,
                                note=note)
    return ctx, settings


def _public(name, settings, saltenv):
    ctx, settings = _context(settings, saltenv)
    return __utils__["litellm_preflight_run.timed"](ctx, name, settings)


def run(settings=None, evidence_dir=None, checks=None, saltenv="base"):
    """
    Run the preflight checks (all of them, or the named ``checks``) against
    ``settings`` (default: the formula's merged settings, map.jinja + pillar).
    Returns ``{"result": "GO"|"NO-GO", "checks", "failed", "warnings",
    "duration_ms", "evidence"}``; a failed check makes NO-GO, a warning does
    not. Read-only; with ``evidence_dir`` (default: pillar
    ``litellm:preflight:evidence_dir``) a bundle ``preflight-<UTC>/`` with
    ``report.json`` and ``summary.txt`` is written there (0700/0600), and
    only the newest ``litellm:preflight:keep_evidence`` bundles are kept.
    Through salt-ssh the formula's wrapper (``_wrapper/litellm_preflight.py``)
    merges the settings on the controller and runs this on the target as a
    state; called on a target without pillar or the state tree, the pillar
    check fails saying what to run instead.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.run
        salt-call litellm_preflight.run checks=dns,backends
        salt-ssh gateway litellm_preflight.run evidence_dir=/var/lib/litellm-preflight
    """
    ctx, settings = _context(settings, saltenv)
    target = evidence_dir
    if target is None and isinstance(settings, dict):
        target = __utils__["litellm_settings.pf_get"](settings, "evidence_dir")
    # The directories the evidence bundle creates are the formula's: recorded for litellm.clean.
    fresh = __salt__["litellm_owner.absent"](target) if target and "litellm_owner.absent" in __salt__ else []
    report = __utils__["litellm_preflight_run.run"](ctx, settings, evidence_dir, checks)
    if fresh and report.get("evidence"):
        __salt__["litellm_owner.note"](fresh, "preflight:evidence_dir")
    return report


def ownership(settings=None, saltenv="base"):
    """
    Nothing the deploy would create (venv, config dir, unit, user, group,
    systemd's directories of the service, site CA files) exists on this host
    unless the formula's record (``litellm_owner.show``) lists it as its own.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.ownership
    """
    return _public("ownership", settings, saltenv)


def dns(settings=None, saltenv="base"):
    """
    The gateway (``base_url`` host, else the fqdn grain) and every backend host
    resolve (A/AAAA); IP literals pass as literal. Compares with
    ``litellm:preflight:dns:expected`` and, with ``ptr: true``, the reverse
    lookups. All lookups together are bounded (5 s).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.dns
    """
    return _public("dns", settings, saltenv)


def backends(settings=None, saltenv="base"):
    """
    Every backend answers: TCP connect (3 s), ``GET /api/version``, ``GET
    /api/tags`` listing every configured model (``:latest`` when untagged).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.backends
    """
    return _public("backends", settings, saltenv)


def bind_port(settings=None, saltenv="base"):
    """
    ``bind_host:bind_port`` is free, or held by the litellm service itself;
    anything else holding it fails naming its PID and command.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.bind_port
    """
    return _public("bind_port", settings, saltenv)


def runtime(settings=None, saltenv="base"):
    """
    The target python (``litellm:lookup:python``) is >=3.9,<3.14 and imports
    ``venv`` and ``ensurepip``; glibc >= 2.28.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.runtime
    """
    return _public("runtime", settings, saltenv)


def resources(settings=None, saltenv="base"):
    """
    Free disk at the venv's nearest existing parent (``min_disk_gib``, fail)
    and MemAvailable (``min_memory_mib``, warn).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.resources
    """
    return _public("resources", settings, saltenv)


def trust(settings=None, saltenv="base"):
    """
    A verified TLS handshake with every https endpoint of the deploy (package
    indexes, https backends), with ``ca_bundle`` when set, else the system store.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.trust
    """
    return _public("trust", settings, saltenv)


def package_index(settings=None, saltenv="base"):
    """
    ``GET <index>/litellm/`` answers 200 and lists the pinned version (skipped
    with ``litellm:preflight:offline_wheelhouse``).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.package_index
    """
    return _public("package_index", settings, saltenv)


def init(settings=None, saltenv="base"):
    """
    systemd is PID 1 and ``systemctl is-system-running`` says running or
    degraded (starting: warn).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.init
    """
    return _public("init", settings, saltenv)


def redis(settings=None, saltenv="base"):
    """
    With ``litellm:redis:host``: Redis answers at host:port, accepts
    ``litellm:redis:password`` (AUTH, sent over the socket only, never in a
    process argument) and PING. Skipped without a Redis host.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.redis
    """
    return _public("redis", settings, saltenv)


def pillar(settings=None, saltenv="base"):
    """
    The settings pass ``litellm_config.validate`` and the ``litellm:preflight``
    keys are well-formed; a fail lists every error.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.pillar
    """
    return _public("pillar", settings, saltenv)


def site(settings=None, saltenv="base"):
    """
    The site checks (realm membership, admin sudo rule, a single netplan
    file, resolver), each skipped unless enabled under
    ``litellm:preflight:site``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.site
    """
    ctx, settings = _context(settings, saltenv)
    names = __utils__["litellm_preflight_run.site_check_names"]()
    return [__utils__["litellm_preflight_run.timed"](ctx, name, settings) for name in names]

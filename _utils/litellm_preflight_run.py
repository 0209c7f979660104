"""
The preflight run: which checks there are and which run, one check timed
and redacted, the pillar check, and the whole run with its report and
evidence bundle.

A check is ``check_<name>(ctx, settings) -> (status, detail)`` in one of the
``litellm_preflight_*`` utils; ``ctx`` carries what the execution module
gives: ``utils`` (``__utils__``), ``run`` (a read-only command), ``grains``,
``validate`` (``litellm_config.validate``), ``owner`` (``litellm_owner.check``
of the settings' layout, None without that module) and ``note`` (why the settings
may be incomplete, or None).
"""

import logging
import socket
import time

log = logging.getLogger(__name__)

CHECKS = {
    "pillar": "litellm_preflight_run.check_pillar",
    "ownership": "litellm_preflight_owner.check_ownership",
    "dns": "litellm_preflight_dns.check_dns",
    "backends": "litellm_preflight_backends.check_backends",
    "bind_port": "litellm_preflight_port.check_bind_port",
    "runtime": "litellm_preflight_host.check_runtime",
    "resources": "litellm_preflight_host.check_resources",
    "capacity": "litellm_preflight_capacity.check_capacity",
    "trust": "litellm_preflight_tls.check_trust",
    "package_index": "litellm_preflight_tls.check_package_index",
    "listener_cert": "litellm_preflight_tls.check_listener_cert",
    "init": "litellm_preflight_host.check_init",
    "redis": "litellm_preflight_redis.check_redis",
    "site_realm": "litellm_preflight_site.check_site_realm",
    "site_sudo": "litellm_preflight_site.check_site_sudo",
    "site_netplan": "litellm_preflight_site.check_site_netplan",
    "site_resolver": "litellm_preflight_site.check_site_resolver",
}
SITE_CHECKS = {
    "site_realm": "realm",
    "site_sudo": "admin_sudo_group",
    "site_netplan": "netplan_single_file",
    "site_resolver": "resolver",
}


def check_names():
    """Every check, in the order they run."""
    return list(CHECKS)


def site_check_names():
    return list(SITE_CHECKS)


def check_pillar(ctx, settings):
    if not isinstance(settings, dict):
        return "fail", f"litellm: must be a mapping of settings, got {type(settings).__name__}"
    errors = ctx.validate(settings)
    if errors:
        # the note first: a long list of errors is cut at the end of the detail
        note = f" ({ctx.note})" if ctx.note else ""
        return "fail", f"{len(errors)} error(s){note}: " + "; ".join(errors)
    return "pass", "settings are valid"


def timed(ctx, name, settings):
    """One check, timed; never raises (an unexpected error is a fail naming it)."""
    start = time.monotonic()
    if name != "pillar" and not isinstance(settings, dict):
        status, detail = "skip", "settings are not a mapping (see the pillar check)"
    else:
        check = CHECKS[name]
        try:
            status, detail = (check if callable(check) else ctx.utils[check])(ctx, settings)
        except Exception as exc:  # pylint: disable=broad-except
            # The exception's text is redacted below; never log a traceback (settings in frames).
            log.debug("preflight check %s raised %s", name, type(exc).__name__)
            status, detail = "fail", f"check raised {type(exc).__name__}: {exc}"
    elapsed = (time.monotonic() - start) * 1000
    redact = ctx.utils.litellm_redact
    return redact.redact(ctx.utils.litellm_preflight_report.result(name, status, detail, elapsed),
                         redact.settings_secrets(settings))


def selected_checks(utils, settings, checks=None):
    """The check names to run: the named ones, else the core ones plus enabled site checks (redis: with a host;
    listener_cert: with litellm:tls:enabled)."""
    if checks is None:
        redis = utils.litellm_settings.section(settings, "redis")
        pf_get = utils.litellm_settings.pf_get
        return [
            name
            for name in CHECKS
            if (name != "redis" or bool(redis.get("host")))
            and (name != "listener_cert" or utils.litellm_validate_tls.tls_enabled(settings))
            and (name not in SITE_CHECKS or pf_get(settings, "site", SITE_CHECKS[name]) not in (None, False, ""))
        ]
    if isinstance(checks, str):
        checks = [part.strip() for part in checks.split(",") if part.strip()]
    unknown = [name for name in checks if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    return list(checks)


def _keep(utils, settings):
    """``litellm:preflight:keep_evidence``, or None (nothing is pruned) when it is not a valid number."""
    keep = utils.litellm_settings.pf_get(settings, "keep_evidence")
    return keep if utils.litellm_settings.is_int(keep) and keep >= 1 else None


def run(ctx, settings, evidence_dir=None, checks=None):
    """Every selected check, the report, and (with ``evidence_dir`` or pillar's) the evidence bundle."""
    utils = ctx.utils
    start = time.monotonic()
    names = selected_checks(utils, settings if isinstance(settings, dict) else {}, checks)
    results = [timed(ctx, name, settings) for name in names]
    redact = utils.litellm_redact
    secrets = redact.settings_secrets(settings)
    report = redact.redact(utils.litellm_preflight_report.build_report(results, (time.monotonic() - start) * 1000),
                           secrets)
    if evidence_dir is None:
        evidence_dir = utils.litellm_settings.pf_get(settings, "evidence_dir")
    if evidence_dir:
        host = str(ctx.grains.get("id") or ctx.grains.get("fqdn") or socket.gethostname())
        report["evidence"] = utils.litellm_preflight_report.write_evidence(
            utils, report, evidence_dir, host=redact.redact_text(host, secrets)
        )
        keep = _keep(utils, settings)
        if keep:
            utils.litellm_preflight_report.prune_evidence(evidence_dir, keep, current=report["evidence"])
    return report

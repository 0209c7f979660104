"""
Preflight checks of what the deploy downloads from: ``trust`` (a verified
TLS handshake with every https endpoint, with the site's trust) and
``package_index`` (``GET <index>/litellm/`` answers 200 and lists the pinned
version), neither touching the network when the pinned version is installed
or an offline wheelhouse is set; and ``listener_cert``, the listener's own
certificate (``litellm:tls``), checked offline.
"""

import glob
import os
import re
import ssl
import time

PROBE_DEADLINE = 15.0  # seconds, all probes of one network check together
MAX_INDEX_BYTES = 8 * 1024 * 1024
UNTRUSTED_HINT = "; an internal CA goes in litellm:ca_certificates"


def installed_version_matches(settings):
    """The venv already holds the pinned LiteLLM: this run installs nothing."""
    venv, version = settings.get("venv"), settings.get("version")
    if not isinstance(venv, str) or not isinstance(version, str) or not venv.startswith("/"):
        return False
    return bool(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", f"litellm-{version}.dist-info")))


def https_endpoints(utils, settings):
    """(label, host, port) of every https endpoint the deploy needs, unique."""
    accessors, http = utils.litellm_settings, utils.litellm_http
    urls = []
    # The index the install really uses (PyPI when package_index:url is empty),
    # unless it is not used at all: pinned version installed, or a wheelhouse.
    if not installed_version_matches(settings) and not accessors.pf_get(settings, "offline_wheelhouse"):
        url, extra = accessors.index_urls(settings)
        urls.append(("package_index", url))
        urls += [("extra_index", u) for u in extra]
    urls += [("backend", u) for u in accessors.backend_urls(settings)]
    endpoints = []
    for label, url in urls:
        if accessors.valid_url(url) and url.startswith("https://"):
            host, port = http.host_port(url)
            if (host, port) not in [(h, p) for _, h, p in endpoints]:
                endpoints.append((label, host, port))
    return endpoints


def _days_left(not_after):
    try:
        return (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400
    except (TypeError, ValueError):
        return None


def _handshake_part(where, store, answer):
    kind, value = answer
    if kind == "ok":
        days = _days_left(value.get("not_after"))
        if days is not None and days < 14:
            return "warn", f"{where}: verified, but the certificate expires in {days:.0f} day(s)"
        return "pass", f"{where}: verified with {store} ({value['protocol']}, issuer {value['issuer']})"
    if kind == "timeout":
        return "fail", f"{where}: no TLS handshake within {PROBE_DEADLINE:.0f} s"
    if isinstance(value, ssl.SSLCertVerificationError):
        return "fail", f"{where}: not trusted by {store}: {value.verify_message}{UNTRUSTED_HINT}"
    return "fail", f"{where}: TLS handshake failed ({getattr(value, 'strerror', None) or value})"


def check_trust(ctx, settings):
    utils = ctx.utils
    endpoints = https_endpoints(utils, settings)
    if not endpoints:
        return "skip", "no https endpoint configured (package index or backends)"
    http = utils.litellm_http
    try:
        context, store = http.site_tls(settings)
    except (OSError, ssl.SSLError) as exc:
        return "fail", f"{http.site_store(settings)} cannot be loaded: {getattr(exc, 'strerror', None) or exc}"
    answers = utils.litellm_net.parallel(lambda e: http.tls_handshake(e[1], e[2], context), endpoints, PROBE_DEADLINE)
    parts = [_handshake_part(f"{h}:{p} ({label})", store, a) for (label, h, p), a in zip(endpoints, answers)]
    return utils.litellm_preflight_report.worst(s for s, _ in parts), "; ".join(text for _, text in parts)


def _index_skip(accessors, settings):
    """Why the package_index check does not apply, or None."""
    wheelhouse = accessors.pf_get(settings, "offline_wheelhouse")
    if wheelhouse:
        return f"offline wheelhouse set ({wheelhouse}); the index is not used"
    if installed_version_matches(settings):
        # A re-apply installs nothing: it must not touch the network either.
        return f"litellm {settings.get('version')} is already installed in {settings.get('venv')}"
    if not accessors.valid_url(accessors.index_urls(settings)[0]):
        return "package_index:url invalid (see the pillar check)"
    return None


def _index_verdict(shown, version, answer):
    kind, value = answer
    if kind == "timeout":
        return "fail", f"GET {shown}: no answer within {PROBE_DEADLINE:.0f} s"
    if kind == "error":
        reason = getattr(value, "reason", None) or value
        if isinstance(reason, ssl.SSLCertVerificationError):
            reason = f"TLS verification failed: {reason.verify_message}{UNTRUSTED_HINT}"
        return "fail", f"GET {shown}: {reason}"
    status, body = value
    if status != 200:
        return "fail", f"GET {shown} answered HTTP {status} (expected 200)"
    if isinstance(version, str) and version:
        pattern = re.compile(rb"litellm-" + re.escape(version.encode()) + rb"(-|\.tar|\.zip)", re.I)
        if len(body) < MAX_INDEX_BYTES and not pattern.search(body):
            return "fail", f"GET {shown} answered 200 but lists no file of litellm {version}"
        return "pass", f"GET {shown}: 200, litellm {version} listed"
    return "pass", f"GET {shown}: 200"


def check_package_index(ctx, settings):
    utils = ctx.utils
    why = _index_skip(utils.litellm_settings, settings)
    if why:
        return "skip", why
    http = utils.litellm_http
    url, _ = utils.litellm_settings.index_urls(settings)
    page = url.rstrip("/") + "/litellm/"
    context = None
    if url.startswith("https://"):
        try:
            context, _ = http.site_tls(settings)
        except (OSError, ssl.SSLError) as exc:
            return "fail", f"{http.site_store(settings)} cannot be loaded: {exc}"
    (answer,) = utils.litellm_net.parallel(lambda u: http.index_get(u, context), [page], PROBE_DEADLINE)
    return _index_verdict(http.url_without_credentials(page), settings.get("version"), answer)


def check_listener_cert(ctx, settings):
    """The listener's certificate (litellm:tls): pair, expiry, chain, names; warn under 30 days."""
    utils = ctx.utils
    if not utils.litellm_validate_tls.tls_enabled(settings):
        return "skip", "litellm:tls:enabled is false: the listener speaks plain HTTP"
    shape = []
    utils.litellm_validate_tls.check_tls(utils, shape, dict(settings, tls=dict(settings["tls"], enabled=False)))
    tls = settings["tls"]
    if shape or not utils.litellm_tls_cert.certificates(tls.get("certificate")) or \
            not utils.litellm_tls_cert.looks_like_key(tls.get("key")):
        return "skip", "litellm:tls invalid (see the pillar check)"
    errors, warnings, facts = utils.litellm_validate_tls.listener_cert_findings(utils, settings)
    if errors:
        return "fail", "; ".join(errors)
    if warnings:
        return "warn", "; ".join(warnings)
    return "pass", f"certificate for {facts}, verified with {utils.litellm_http.site_store(settings)}"

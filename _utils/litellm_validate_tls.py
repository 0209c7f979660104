"""
Validation of the gateway's edge: ``litellm:tls`` (HTTPS on the listener)
and ``litellm:metrics`` (the Prometheus scrape endpoint).

The certificate checks (``listener_cert_findings``) are shared with the
preflight's ``listener_cert`` check: a key that does not match the
certificate, a certificate expiring within 14 days (a warning under 30), a
chain the site's trust (system store or ``ca_bundle``, plus
``ca_certificates``) does not verify, SANs that do not cover the
``base_url`` host. The key is never echoed.
"""

import ipaddress
import urllib.parse

TLS_KEYS = {"enabled", "certificate", "key"}
METRICS_KEYS = {"enabled", "bind_host", "port", "allow"}


def _mapping(utils, errors, key, value, allowed):
    if not isinstance(value, dict):
        errors.append(f"litellm:{key}: must be a mapping, got {utils.litellm_validate.describe(value)}")
        return None
    utils.litellm_validate.unknown_keys(errors, f"litellm:{key}", value, allowed)
    if not isinstance(value.get("enabled", False), bool):
        errors.append(f"litellm:{key}:enabled: must be true or false, got "
                      f"{utils.litellm_validate.describe(value.get('enabled'))}")
        return None
    return value


def tls_enabled(settings):
    tls = settings.get("tls") if isinstance(settings, dict) else None
    return isinstance(tls, dict) and tls.get("enabled") is True


def base_url_host(settings):
    """The host of ``base_url`` (what clients connect to, what the SANs must cover), or None."""
    base_url = settings.get("base_url")
    if isinstance(base_url, str) and base_url:
        try:
            return urllib.parse.urlsplit(base_url).hostname
        except ValueError:
            return None
    return None


def _expiry_finding(days, errors, warnings):
    if days < 0:
        errors.append(f"litellm:tls:certificate: expired {-days:.0f} day(s) ago")
    elif days < 14:
        errors.append(f"litellm:tls:certificate: expires in {days:.1f} day(s) (less than 14); renew it first")
    elif days < 30:
        warnings.append(f"litellm:tls:certificate: expires in {days:.0f} day(s) (less than 30)")


def listener_cert_findings(utils, settings):
    """
    (errors, warnings, facts) of the listener's certificate in ``settings``
    (``tls:enabled`` true and the shape already valid). ``facts`` describes
    a good certificate (subject, names, days left) for the preflight report.
    """
    cert_util, tls = utils.litellm_tls_cert, settings["tls"]
    cert_pem, key_pem = tls["certificate"], tls["key"]
    errors, warnings = [], []
    try:
        info = cert_util.decode(cert_pem)
    except ValueError as exc:
        return [f"litellm:tls:certificate: {exc}"], [], ""
    pair = cert_util.pair_problem(cert_pem, key_pem)
    if pair:
        errors.append(f"litellm:tls:key: {pair}")
    days = cert_util.days_left(info)
    _expiry_finding(days, errors, warnings)
    if cert_util.not_yet_valid(info):
        errors.append(f"litellm:tls:certificate: not valid before {info['notBefore']}")
    host = base_url_host(settings)
    dns, ips = cert_util.names(info)
    if host and not cert_util.covers(info, host):
        errors.append(f"litellm:tls:certificate: its names ({', '.join(dns + ips) or 'none'}) do not cover "
                      f"the litellm:base_url host {host!r}")
    if not pair:
        try:
            context, store = utils.litellm_http.site_tls(settings)
        except (OSError, ValueError) as exc:
            errors.append(f"litellm:tls:certificate: the site's trust cannot be loaded ({exc})")
        else:
            chain = cert_util.chain_problem(cert_pem, key_pem, context)
            if chain:
                errors.append(f"litellm:tls:certificate: the chain does not verify against {store}: {chain}; "
                              "an internal CA goes in litellm:ca_certificates, intermediates after the leaf")
    facts = f"{', '.join(dns + ips)}, {days:.0f} day(s) left"
    return errors, warnings, facts


def _check_tls_shape(utils, errors, tls):
    """Whether an enabled ``tls`` has a certificate and a usable key (its value never echoed)."""
    before = len(errors)
    cert_util = utils.litellm_tls_cert
    certificate = tls.get("certificate", "")
    if not cert_util.certificates(certificate):
        errors.append("litellm:tls:certificate: must be the PEM certificate chain (-----BEGIN CERTIFICATE-----)")
    elif "PRIVATE KEY" in certificate:
        errors.append("litellm:tls:certificate: holds a private key; the key goes in litellm:tls:key (secret)")
    key = tls.get("key", "")
    if utils.litellm_validate_secrets.secret_given(errors, "litellm:tls:key", key):
        if "ENCRYPTED PRIVATE KEY" in key or "Proc-Type: 4,ENCRYPTED" in key:
            errors.append("litellm:tls:key: is passphrase-protected; the service cannot unlock it (use a plain key)")
        elif not cert_util.looks_like_key(key):
            errors.append("litellm:tls:key: must be a PEM private key (-----BEGIN PRIVATE KEY-----)")
    return len(errors) == before


def check_tls(utils, errors, settings):
    tls = _mapping(utils, errors, "tls", settings.get("tls", {}), TLS_KEYS)
    if tls is None:
        return
    for key in ("certificate", "key"):
        if not isinstance(tls.get(key, ""), str):
            errors.append(f"litellm:tls:{key}: must be a PEM string, got a {type(tls.get(key)).__name__}")
            return
    if not tls.get("enabled"):
        return
    base_url = settings.get("base_url")
    if isinstance(base_url, str) and base_url.startswith("http://"):
        errors.append("litellm:base_url: must be https:// with litellm:tls:enabled")
    if _check_tls_shape(utils, errors, tls):
        found, _, _ = listener_cert_findings(utils, settings)
        errors.extend(found)


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_metrics(utils, errors, settings):
    metrics = _mapping(utils, errors, "metrics", settings.get("metrics", {}), METRICS_KEYS)
    if metrics is None:
        return
    validate = utils.litellm_validate
    host = metrics.get("bind_host")
    try:
        ipaddress.ip_address(host)
    except (TypeError, ValueError):
        errors.append(f"litellm:metrics:bind_host: must be an IP address, got {validate.describe(host)}")
        host = None
    validate.check_int(errors, "metrics:port", metrics.get("port"), 1, 65535)
    if metrics.get("enabled") and metrics.get("port") == settings.get("bind_port"):
        errors.append("litellm:metrics:port: must differ from litellm:bind_port")
    allow = metrics.get("allow", [])
    if not isinstance(allow, list):
        errors.append(f"litellm:metrics:allow: must be a list of addresses or CIDRs, got {validate.describe(allow)}")
        return
    for position, entry in enumerate(allow):
        try:
            ipaddress.ip_network(entry, strict=False)
        except (TypeError, ValueError):
            errors.append(f"litellm:metrics:allow:{position}: not an address or CIDR: {validate.describe(entry)}")
    if metrics.get("enabled") and host and not is_loopback(host) and not allow:
        errors.append(f"litellm:metrics:allow: required when litellm:metrics:bind_host ({host}) is not loopback: "
                      "the endpoint has no key, only the addresses listed may scrape it")

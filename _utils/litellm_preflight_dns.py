"""
Preflight check ``dns``: the gateway (``base_url`` host, else the fqdn grain)
and every backend host resolve; IP literals pass as literal. Compared with
``litellm:preflight:dns:expected`` and, with ``ptr: true``, the reverse
lookups. All lookups together are bounded (``DNS_TIMEOUT``).
"""

import ipaddress
import socket
import urllib.parse

DNS_TIMEOUT = 5.0  # seconds, all lookups of the dns check together


def is_literal(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def same_name(host, names):
    """Whether a PTR answer names ``host`` (one side unqualified: the first labels are compared)."""
    host = host.lower().rstrip(".")
    for name in names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if "." not in host or "." not in name:
            if name.split(".", 1)[0] == host.split(".", 1)[0]:
                return True
    return False


def expected_matches(addresses, expected):
    """Compare on the address families the expectation lists."""
    want = {ipaddress.ip_address(str(a)) for a in expected}
    versions = {a.version for a in want}
    have = {ipaddress.ip_address(a) for a in addresses if ipaddress.ip_address(a).version in versions}
    return have == want


def _gateway_host(ctx, settings):
    base_url = settings.get("base_url")
    if isinstance(base_url, str) and base_url and ctx.utils.litellm_settings.valid_url(base_url):
        return urllib.parse.urlsplit(base_url).hostname
    return ctx.grains.get("fqdn") or socket.getfqdn()


def _hosts(ctx, settings, expected):
    """(role, host) to resolve, unique: the gateway, the backends, the expected ones."""
    hosts = [("gateway", _gateway_host(ctx, settings))]
    backends = ctx.utils.litellm_settings.backend_urls(settings)
    hosts += [("backend", urllib.parse.urlsplit(url).hostname) for url in backends]
    hosts += [("expected", str(host)) for host in expected]
    unique = []
    for role, host in hosts:
        if host and host not in [h for _, h in unique]:
            unique.append((role, host))
    return unique


def _lookup(net, host, ptr):
    addresses = net.resolve(host)
    reverse = {}
    if ptr:
        for address in addresses:
            try:
                reverse[address] = net.reverse(address)
            except OSError as exc:
                reverse[address] = exc
    return addresses, reverse


def _verdict(label, host, value, expected):
    """(status, text) of one resolved host."""
    addresses, reverse = value
    status, text = "pass", f"{label}: {', '.join(addresses)}"
    if host in expected and not expected_matches(addresses, expected[host]):
        status = "fail"
        text += f" but expected {', '.join(map(str, expected[host]))}"
    for address, names_or_error in reverse.items():
        if isinstance(names_or_error, Exception):
            status = "fail"
            text += f"; PTR of {address} missing"
        elif not same_name(host, names_or_error):
            status = "fail"
            text += f"; PTR of {address} is {names_or_error[0]}"
    if reverse and status == "pass":
        text += " (PTR ok)"
    return status, text


def _answer(label, host, answer, expected):
    kind, value = answer
    if kind == "timeout":
        return "fail", f"{label}: no answer within {DNS_TIMEOUT:.0f} s"
    if kind == "error":
        reason = value.strerror if isinstance(value, OSError) and value.strerror else str(value)
        return "fail", f"{label}: does not resolve ({reason})"
    return _verdict(label, host, value, expected)


def check_dns(ctx, settings):
    pf_get = ctx.utils.litellm_settings.pf_get
    expected = pf_get(settings, "dns", "expected", default={})
    expected = expected if isinstance(expected, dict) else {}
    ptr = pf_get(settings, "dns", "ptr", default=False) is True
    unique = _hosts(ctx, settings, expected)
    if not unique:
        return "skip", "no host to resolve"
    names = [host for _, host in unique if not is_literal(host)]
    net = ctx.utils.litellm_net
    answers = dict(zip(names, net.parallel(lambda h: _lookup(net, h, ptr), names, DNS_TIMEOUT)))
    statuses, parts = [], []
    for role, host in unique:
        label = f"{host} ({role})"
        if is_literal(host):
            status, text = "pass", f"{label}: literal"
        else:
            status, text = _answer(label, host, answers[host], expected)
        statuses.append(status)
        parts.append(text)
    return ctx.utils.litellm_preflight_report.worst(statuses), "; ".join(parts)

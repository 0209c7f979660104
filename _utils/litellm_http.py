"""
The HTTP client of the formula's modules, with the site's trust: a verifying
TLS context (``ca_bundle``, else the system store, plus the site CAs of
``ca_certificates``), plain GETs without redirects, a package index GET that
follows redirects and the proxy environment like pip, and a TLS handshake
that reports the peer; and the client of a LiteLLM gateway's API (``Target``,
``request``, ``stream_request``) for the smoke test.
"""

import base64
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPConnection, HTTPSConnection

CONNECT_TIMEOUT = 3.0  # seconds, every TCP connect
HTTP_TIMEOUT = 5.0  # seconds, every HTTP request (socket timeout)


def tls_context(ca_bundle=None, ca_certificates=None):
    """
    Verifying client context: the ca_bundle only when given, else the system
    store; plus the site CAs of pillar ``ca_certificates``, which the formula
    installs into the system store before it downloads anything.
    """
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    for pem in (ca_certificates or {}).values() if isinstance(ca_certificates, dict) else ():
        if isinstance(pem, str):
            context.load_verify_locations(cadata=pem)
    return context


def site_cas(settings):
    cas = settings.get("ca_certificates")
    return cas if isinstance(cas, dict) else {}


def site_store(settings):
    """What the formula's TLS clients trust, in words."""
    ca_bundle = settings.get("ca_bundle") or None
    store = f"ca_bundle {ca_bundle}" if ca_bundle else "the system trust store"
    if site_cas(settings):
        store += f" + litellm:ca_certificates ({', '.join(sorted(map(str, site_cas(settings))))})"
    return store


def site_tls(settings):
    """(context, what it trusts, in words) for the formula's settings."""
    return tls_context(settings.get("ca_bundle") or None, site_cas(settings)), site_store(settings)


def connection(scheme, host, port, timeout, context=None):
    """An HTTP(S) connection (not yet connected); https verifies with ``context`` (default: the system store)."""
    if scheme == "https":
        return HTTPSConnection(host, port, timeout=timeout, context=context or ssl.create_default_context())
    return HTTPConnection(host, port, timeout=timeout)


def host_port(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def url_without_credentials(url):
    """``https://user:pw@host/x`` -> ``https://host/x`` (for messages)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def get(url, context=None, timeout=HTTP_TIMEOUT, limit=1 << 20):
    """(status, body bytes) of one GET; no redirects, no credentials."""
    host, port = host_port(url)
    parts = urllib.parse.urlsplit(url)
    conn = connection(parts.scheme, host, port, timeout, context)
    try:
        conn.request("GET", parts.path or "/", headers={"Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read(limit)
    finally:
        conn.close()


def index_get(url, context, timeout=HTTP_TIMEOUT, limit=8 * 1024 * 1024):
    """
    (status, body bytes) of a GET of a package index page, following redirects
    and the proxy environment like pip; URL credentials go in a header that is
    not passed on to a redirect's host.
    """
    parts = urllib.parse.urlsplit(url)
    request = urllib.request.Request(url_without_credentials(url), headers={"Accept": "text/html"})
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_unredirected_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(limit)
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def tls_handshake(host, port, context, timeout=CONNECT_TIMEOUT):
    """Handshake with verification; the peer's protocol, issuer and notAfter."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert() or {}
            issuer = dict(pair[0] for pair in cert.get("issuer", ()) if pair)
            return {
                "protocol": tls.version(),
                "issuer": issuer.get("commonName") or issuer.get("organizationName") or "?",
                "not_after": cert.get("notAfter"),
            }


# --- a gateway's API: one request per connection, bounded --------------------------------

MAX_BODY_BYTES = 1024 * 1024
MAX_SSE_LINES = 4000
USER_AGENT = "litellm-salt-smoke"


def _ms(started):
    return round((time.monotonic() - started) * 1000.0, 1)


class Target:
    """The gateway: scheme, host, port and path prefix of its URL."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(str(url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        prefix = parts.path.rstrip("/")
        if prefix.endswith("/v1"):  # a base_url like http://gw:4000/v1
            prefix = prefix[: -len("/v1")]
        self.prefix = prefix
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{self.scheme}://{host}:{self.port}{self.prefix}"

    def connection(self, timeout):
        return connection(self.scheme, self.host, self.port, timeout)


def target(url):
    """The gateway at ``url`` (a ``Target``); raises ValueError when it is not an http(s) URL."""
    return Target(url)


def _headers(master_key=None, body=False):
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if master_key:
        headers["Authorization"] = f"Bearer {master_key}"
    if body:
        headers["Content-Type"] = "application/json"
    return headers


def request(target, method, path, timeout, master_key=None, body=None):
    """
    One request on a fresh connection. Returns ``{"status", "headers",
    "body", "ms"}`` (body text, at most MAX_BODY_BYTES); raises OSError or
    http.client.HTTPException when there is no answer.
    """
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    started = time.monotonic()
    conn = target.connection(timeout)
    try:
        conn.request(method, target.prefix + path, body=body, headers=_headers(master_key, body is not None))
        response = conn.getresponse()
        data = response.read(MAX_BODY_BYTES)
        return {
            "status": response.status,
            "headers": {k.lower(): v for k, v in response.getheaders()},
            "body": data.decode("utf-8", "replace"),
            "ms": _ms(started),
        }
    finally:
        conn.close()


def stream_request(target, path, timeout, master_key, body):
    """A streaming POST; reads SSE lines until ``[DONE]``, EOF or a bound."""
    started = time.monotonic()
    deadline = started + timeout
    conn = target.connection(timeout)
    try:
        conn.request("POST", target.prefix + path, body=json.dumps(body).encode(), headers=_headers(master_key, True))
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        lines = []
        size = 0
        first_ms = None
        while len(lines) < MAX_SSE_LINES and size < MAX_BODY_BYTES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream not finished after {timeout} s")
            line = response.readline(65536)
            if not line:
                break
            size += len(line)
            text = line.decode("utf-8", "replace")
            if first_ms is None and text.startswith("data:"):
                first_ms = _ms(started)
            lines.append(text)
            if text.strip() == "data: [DONE]":
                break
        return {
            "status": response.status,
            "headers": headers,
            "body": "".join(lines),
            "ms": _ms(started),
            "first_chunk_ms": first_ms,
        }
    finally:
        conn.close()

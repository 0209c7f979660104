"""
The listener's certificate (``litellm:tls``), read with the standard library
only (the gateway host has no ``cryptography``): its chain split from PEM,
decoded (subject, SANs, validity), matched against its private key, checked
against the site's trust, and its names against a host.

The key is only ever written to a private temporary directory (0700, removed
at once) because ``ssl`` loads keys from files; it is never returned, logged
or put in a message.
"""

import contextlib
import ipaddress
import os
import re
import shutil
import ssl
import tempfile
import time

PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.S)
PEM_KEY_RE = re.compile(r"-----BEGIN ((RSA|EC|ENCRYPTED) )?PRIVATE KEY-----\s.*?-----END \1?PRIVATE KEY-----", re.S)
EXPIRY_REFUSE_DAYS = 14  # a certificate expiring sooner is refused
EXPIRY_WARN_DAYS = 30  # sooner than this: a warning
HANDSHAKE_ROUNDS = 20


def certificates(pem):
    """The PEM certificate blocks of ``pem``, in order (leaf first)."""
    return PEM_CERT_RE.findall(pem) if isinstance(pem, str) else []


def looks_like_key(pem):
    return isinstance(pem, str) and bool(PEM_KEY_RE.search(pem))


@contextlib.contextmanager
def _private_files(**texts):
    """Paths of the given texts in a 0700 temporary directory, removed on exit."""
    where = tempfile.mkdtemp(prefix="litellm-tls-")
    try:
        paths = {}
        for name, text in texts.items():
            path = os.path.join(where, name)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                handle.write(text)
            paths[name] = path
        yield paths
    finally:
        shutil.rmtree(where, ignore_errors=True)


def decode(cert_pem):
    """The decoded leaf certificate (``ssl``'s dict: subject, subjectAltName, notAfter...); ValueError if bad."""
    blocks = certificates(cert_pem)
    if not blocks:
        raise ValueError("no PEM certificate (-----BEGIN CERTIFICATE-----)")
    with _private_files(cert=blocks[0] + "\n") as paths:
        try:
            return ssl._ssl._test_decode_cert(paths["cert"])  # pylint: disable=protected-access
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"the certificate cannot be decoded ({exc.__class__.__name__})") from None


def days_left(info, now=None):
    """Days until ``notAfter`` of a decoded certificate (negative: expired)."""
    return (ssl.cert_time_to_seconds(info["notAfter"]) - (time.time() if now is None else now)) / 86400


def not_yet_valid(info, now=None):
    return ssl.cert_time_to_seconds(info["notBefore"]) > (time.time() if now is None else now)


def names(info):
    """(DNS names, IP addresses) the certificate is for (its SANs; the CN only without any)."""
    sans = info.get("subjectAltName") or ()
    dns = [value.lower() for kind, value in sans if kind == "DNS"]
    ips = [value.strip() for kind, value in sans if kind == "IP Address"]
    if not sans:
        dns = [value.lower() for rdn in info.get("subject", ()) for key, value in rdn if key == "commonName"]
    return dns, ips


def _dns_match(pattern, host):
    if pattern == host:
        return True
    if pattern.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == pattern[2:]  # a wildcard covers exactly one label
    return False


def covers(info, host):
    """Whether the certificate's names cover ``host`` (a name or an IP address), as a TLS client checks it."""
    dns, ips = names(info)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return any(_dns_match(pattern, host.lower().rstrip(".")) for pattern in dns)
    return any(_same_ip(address, ip) for ip in ips)


def _same_ip(address, text):
    try:
        return ipaddress.ip_address(text) == address
    except ValueError:
        return False


def pair_problem(cert_pem, key_pem):
    """Why the key does not go with the certificate (never quoting the key), or None."""
    with _private_files(cert=cert_pem, key=key_pem) as paths:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(paths["cert"], paths["key"], password=lambda: b"")
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
                return "the private key does not match the certificate"
            return f"the certificate and key cannot be loaded together ({exc.reason or exc.__class__.__name__})"
    return None


def _pump(client, server, c_in, c_out, s_in, s_out):
    """One in-memory TLS handshake; the client's exception, or None once both sides are done."""
    done = {"client": False, "server": False}
    for _ in range(HANDSHAKE_ROUNDS):
        for side, obj in (("client", client), ("server", server)):
            if done[side]:
                continue
            try:
                obj.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                if side == "client":
                    return exc
                done[side] = True  # the server gives up after the client's alert; the client says why
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return None
    return ssl.SSLError("the handshake did not finish")


def chain_problem(cert_pem, key_pem, trust):
    """
    Why a client trusting ``trust`` (a client ``SSLContext``, the site's
    store) would not verify this certificate chain, or None: a real TLS
    handshake in memory, server with the certificate and key, client
    without a host name check (``covers`` is the name check).
    """
    trust.check_hostname = False
    trust.verify_mode = ssl.CERT_REQUIRED
    with _private_files(cert=cert_pem, key=key_pem) as paths:
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(paths["cert"], paths["key"], password=lambda: b"")
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = trust.wrap_bio(c_in, c_out, server_side=False)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    error = _pump(client, server, c_in, c_out, s_in, s_out)
    if error is None:
        return None
    return getattr(error, "verify_message", None) or getattr(error, "reason", None) or str(error)

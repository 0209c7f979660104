"""
A throw-away test CA and server certificates, for the package mirror over TLS
(tests/harness/mirror.py) and any other test that needs a site's internal CA:

- ``make_ca(dir)``: a root CA (EC P-256) as ``ca.crt``/``ca.key``;
- ``CA.issue(dir, hosts)``: a server certificate for ``hosts``.

``cryptography`` (which Salt brings) only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write_key(path: Path, key) -> None:
    """A private key, PEM, created 0600 (never world-readable, not even briefly)."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _validity(builder: x509.CertificateBuilder, days: int = 30) -> x509.CertificateBuilder:
    """now-1 day (clock skew between host and container) .. now+``days`` (negative: already expired)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    before = now - datetime.timedelta(days=1 if days >= 0 else 2 - days)
    return builder.not_valid_before(before).not_valid_after(now + datetime.timedelta(days=days))


_KEY_USAGES = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
               "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage extension with only the named usages set."""
    unknown = set(allowed) - set(_KEY_USAGES)
    if unknown:
        raise ValueError(f"unknown key usages {sorted(unknown)}")
    return x509.KeyUsage(**{usage: usage in allowed for usage in _KEY_USAGES})


@dataclass
class CA:
    """A root CA: ``cert_path`` is the PEM the formula installs as a trusted CA."""

    cert_path: Path
    key_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(self, dir, hosts, valid_days: int = 30) -> tuple[Path, Path]:
        """
        A server certificate and key for ``hosts`` (IP addresses become IPAddress
        SANs, anything else DNS SANs; rustls in uv checks IPs only against
        IPAddress SANs), serverAuth, written as ``server.crt``/``server.key``
        under ``dir``, valid for ``valid_days`` from now (negative: expired). The
        certificate file holds the leaf only: the CA is what clients must be given.
        """
        dir = Path(dir)
        dir.mkdir(parents=True, exist_ok=True)
        hosts = list(hosts)
        if not hosts:
            raise ValueError("a server certificate needs at least one host")
        sans = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(hosts[0]))]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage("digital_signature"), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        cert = _validity(builder, valid_days).sign(self.key, hashes.SHA256())
        cert_path, key_path = dir / "server.crt", dir / "server.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path


def make_ca(dir, name: str = "litellm-salt test CA") -> CA:
    """
    A new root CA (EC P-256, CA:TRUE critical, keyCertSign) as ``ca.crt`` (PEM;
    the .crt suffix is what update-ca-certificates picks up) and ``ca.key``
    (0600) under ``dir``. Key identifiers are included because OpenSSL's strict
    mode (Python >= 3.13 default) and webpki both want a well-formed chain.
    """
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder, 365).sign(key, hashes.SHA256())
    cert_path, key_path = dir / "ca.crt", dir / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return CA(cert_path, key_path, cert, key)

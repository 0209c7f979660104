"""
The offline mirror of tests/harness/mirror.py, on this machine: a test CA, a
certificate for 127.0.0.1, the wheelhouse of the shipped lock, and the two
installers the formula runs (pip bootstraps uv, uv installs the lock) pointed
at it with the formula's own environment (``litellm_venv.installer_env``).

It proves what the container test relies on: pip 23.0.1 and uv 0.13.9 both
take the index, the install really goes through it, and without the CA both
refuse it. The venvs use /usr/bin/python3, Debian's 3.11.2, the same Python
(and ensurepip pip) as the bookworm test host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import load_salt_module
from tests.harness import mirror

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "salt/litellm/files/locks/litellm-1.108.7.txt"
UV = REPO / ".venv/bin/uv"
PYTHON = "/usr/bin/python3"  # Debian's, as in the container (python3-venv)


litellm_venv = load_salt_module("modules", "litellm_venv")  # installer_env and requirement_block


def installer_env(tmp: Path, index_url: str, ca_bundle: str = "") -> dict[str, str]:
    """
    The formula's environment for pip and uv, on top of a bare one: this
    machine's own trust and pip settings (SSL_CERT_DIR, PIP_CERT, find-links
    to /opt/wheels, constraints) must not help or hinder, and a fresh uv
    cache makes uv fetch everything from the mirror.
    """
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp / "home"),
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "UV_NO_CONFIG": "1",
    }
    env.update(litellm_venv.installer_env(index_url, [], ca_bundle))
    env["UV_CACHE_DIR"] = str(tmp / "uv-cache")
    return env


def run(argv, env, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, timeout=timeout)


def new_venv(path: Path, with_pip: bool) -> Path:
    argv = [PYTHON, "-m", "venv", path] + ([] if with_pip else ["--without-pip"])
    result = run(argv, {"PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr
    return path / "bin/python"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki_dir = tmp_path_factory.mktemp("pki")
    ca = mirror.make_ca(pki_dir / "ca")
    cert, key = ca.issue(pki_dir / "server", ["127.0.0.1"])
    return ca, cert, key


@pytest.fixture(scope="module")
def house():
    """The wheelhouse, with how long getting it took (cold on a new lock, then cached)."""
    started = time.monotonic()
    path = mirror.wheelhouse(LOCK)
    first = time.monotonic() - started
    started = time.monotonic()
    assert mirror.wheelhouse(LOCK) == path
    again = time.monotonic() - started
    files = json.loads((path / mirror.MANIFEST).read_text())["files"]
    print(
        f"\nwheelhouse {path}: {len(files)} files, {sum(f['size'] for f in files) / 1e6:.1f} MB; "
        f"first call {first:.1f}s, cached call {again * 1000:.1f}ms"
    )
    return path


@pytest.fixture(scope="module")
def index(house, pki):
    _, cert, key = pki
    with mirror.PackageIndex(house, ("127.0.0.1", 0), cert, key) as served:
        yield served


def _file_of(house: Path, name: str) -> str:
    files = json.loads((house / mirror.MANIFEST).read_text())["files"]
    return next(f["filename"] for f in files if f["name"] == name)


def test_ca_and_server_certificate(pki):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca, cert_path, key_path = pki
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    cert.verify_directly_issued_by(ca.cert)
    assert oct(key_path.stat().st_mode & 0o777) == oct(ca.key_path.stat().st_mode & 0o777) == "0o600"


def test_wheelhouse_has_every_file_the_lock_needs_and_nothing_else(house):
    reqs = [r for r in mirror.parse_lock(LOCK.read_text()) if mirror.applies(r)]
    files = json.loads((house / mirror.MANIFEST).read_text())["files"]
    assert sorted((f["name"], f["version"]) for f in files) == sorted((r.name, r.version) for r in reqs)
    assert mirror.verify(house, LOCK) == []
    # Bookworm's Python is 3.11.2: a `python_full_version < '3.11.3'` pin must be there.
    assert any(f["name"] == "async-timeout" for f in files)
    assert not any(f["name"] in {"colorama", "pywin32", "tzdata"} for f in files)


def test_uv_syncs_the_lock_through_the_mirror(index, house, pki, tmp_path):
    ca, _, _ = pki
    python = new_venv(tmp_path / "venv", with_pip=False)
    index.requests.clear()
    env = installer_env(tmp_path, index.url, str(ca.cert_path))
    started = time.monotonic()
    result = run(
        [UV, "pip", "sync", "--python", python, "--require-hashes", "--compile-bytecode", LOCK], env
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    fetched = index.file_requests()
    print(f"\nuv pip sync from the mirror: {took:.1f}s, {len(fetched)} files, {len(index.requests)} requests")
    assert _file_of(house, "litellm") in fetched
    version = run([python, "-c", "import importlib.metadata as m; print(m.version('litellm'))"], env)
    assert version.stdout.strip() == "1.108.7", version.stderr


def test_uv_refuses_the_mirror_without_the_ca(index, tmp_path):
    python = new_venv(tmp_path / "venv", with_pip=False)
    index.requests.clear()
    index.errors.clear()
    env = installer_env(tmp_path, index.url)  # no ca_bundle: the system store only
    result = run([UV, "pip", "sync", "--python", python, "--require-hashes", LOCK], env)
    print(f"\nuv without the CA (exit {result.returncode}):\n{result.stderr}")
    assert result.returncode != 0
    assert "invalid peer certificate: UnknownIssuer" in result.stderr
    assert index.requests == []  # no request got past the handshake
    assert index.errors, "the index saw no refused handshake"
    print(f"the index saw: {index.errors[0]}")


def test_pip_installs_uv_from_the_mirror(index, house, pki, tmp_path):
    ca, _, _ = pki
    python = new_venv(tmp_path / "venv", with_pip=True)
    block = tmp_path / "uv.txt"
    block.write_text(litellm_venv.requirement_block(LOCK.read_text(), "uv"))
    index.requests.clear()
    env = installer_env(tmp_path, index.url, str(ca.cert_path))
    pip_version = run([python, "-m", "pip", "--version"], env)
    started = time.monotonic()
    result = run([python, "-m", "pip", "install", "--require-hashes", "--no-deps", "-r", block], env)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\n{pip_version.stdout.split(' from ')[0]} installed uv from the mirror in {took:.1f}s")
    assert index.file_requests() == [_file_of(house, "uv")]
    assert run([tmp_path / "venv/bin/uv", "--version"], env).stdout.split()[:2] == ["uv", "0.13.9"]


def test_pip_refuses_the_mirror_without_the_ca(index, tmp_path):
    python = new_venv(tmp_path / "venv", with_pip=True)
    block = tmp_path / "uv.txt"
    block.write_text(litellm_venv.requirement_block(LOCK.read_text(), "uv"))
    index.requests.clear()
    index.errors.clear()
    env = installer_env(tmp_path, index.url) | {"PIP_RETRIES": "0"}
    result = run([python, "-m", "pip", "install", "--require-hashes", "--no-deps", "-r", block], env)
    output = result.stdout + result.stderr
    print(f"\npip without the CA (exit {result.returncode}):\n{output}")
    assert result.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in output
    assert index.requests == []
    assert index.errors, "the index saw no refused handshake"
    print(f"the index saw: {index.errors[0]}")

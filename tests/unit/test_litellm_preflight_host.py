"""
Unit tests of litellm_preflight's host checks (runtime, resources, trust and
package_index, init, pillar, site), their I/O mocked.
"""

import json
import ssl
import time

import pytest

from tests.unit import preflight_common
from tests.unit.preflight_common import (
    HOST,
    HTTP,
    PROC,
    RUN,
    SITE,
    check,
    settings,
)

# the loader's fixtures, bound in this module's scope (saltfactories asks for configure_loader_modules)
configure_loader_modules = preflight_common.configure_loader_modules
run_all = preflight_common.run_all


# --- runtime ------------------------------------------------------------------------------


def probe(version=(3, 11, 2), modules=None, libc="glibc 2.36"):
    modules = {"venv": "", "ensurepip": ""} if modules is None else modules
    return {"retcode": 0, "stdout": json.dumps({"version": list(version), "modules": modules, "libc": libc}) + "\n"}


@pytest.fixture
def python_exists(monkeypatch):
    monkeypatch.setattr(HOST.os, "access", lambda path, mode: True)


def test_runtime_passes(run_all, python_exists):
    run_all.return_value = probe()
    out = check("runtime", settings())
    assert out["status"] == "pass"
    assert out["detail"] == "/usr/bin/python3 3.11.2, venv ok, ensurepip ok, glibc 2.36"
    argv = run_all.call_args.args[0]
    assert argv[:3] == ["/usr/bin/python3", "-I", "-c"]
    assert run_all.call_args.kwargs["python_shell"] is False


@pytest.mark.parametrize("version", [(3, 8, 10), (3, 14, 0)])
def test_runtime_fails_outside_the_python_range(run_all, python_exists, version):
    run_all.return_value = probe(version=version)
    out = check("runtime", settings())
    assert out["status"] == "fail" and "is outside >=3.9,<3.14" in out["detail"]


def test_runtime_missing_ensurepip_warns_when_the_formula_installs_it(run_all, python_exists):
    run_all.return_value = probe(modules={"venv": "", "ensurepip": "ModuleNotFoundError: No module named 'ensurepip'"})
    out = check("runtime", settings())
    assert out["status"] == "warn" and "the formula installs python3-venv" in out["detail"]
    cfg = settings()
    cfg["lookup"]["pkgs"] = []
    out = check("runtime", cfg)
    assert out["status"] == "fail" and "ensurepip not importable (ModuleNotFoundError" in out["detail"]


@pytest.mark.parametrize(
    "libc, words", [("glibc 2.27", "glibc 2.27 < 2.28"), ("", "not glibc"), ("musl 1.2", "not glibc")]
)
def test_runtime_fails_on_old_or_no_glibc(run_all, python_exists, libc, words):
    run_all.return_value = probe(libc=libc)
    out = check("runtime", settings())
    assert out["status"] == "fail" and words in out["detail"]


def test_runtime_fails_without_the_python(monkeypatch, run_all):
    cfg = settings()
    cfg["lookup"]["python"] = "/nonexistent/python3"
    out = check("runtime", cfg)
    assert out["status"] == "fail" and "/nonexistent/python3: not found" in out["detail"]
    run_all.assert_not_called()


def test_runtime_probe_runs_in_this_python():
    import subprocess
    import sys

    argv = [sys.executable, "-I", "-c", HOST.RUNTIME_PROBE]
    answer = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    assert answer["version"] == list(sys.version_info[:3])
    assert set(answer["modules"]) == {"venv", "ensurepip"}


# --- resources ------------------------------------------------------------------------------


def test_resources(monkeypatch):
    monkeypatch.setattr(HOST, "free_bytes", lambda path: 10 * 1024**3)
    monkeypatch.setattr(PROC, "meminfo", lambda: {"MemAvailable": 4096 * 1024})
    out = check("resources", settings(venv="/nonexistent-dir/litellm/venv"))
    assert out["status"] == "pass"
    assert out["detail"] == "disk 10.0 GiB free at / (>= 2 GiB); memory 4096 MiB available (>= 1024 MiB)"
    monkeypatch.setattr(PROC, "meminfo", lambda: {"MemAvailable": 512 * 1024})
    assert check("resources", settings())["status"] == "warn"
    monkeypatch.setattr(HOST, "free_bytes", lambda path: 1 * 1024**3)
    out = check("resources", settings(preflight={"min_disk_gib": 1.5}))
    assert out["status"] == "fail" and "disk 1.0 GiB free" in out["detail"] and "< 1.5 GiB" in out["detail"]


def test_nearest_existing_parent(tmp_path):
    assert HOST.nearest_existing(str(tmp_path / "a" / "b")) == str(tmp_path)
    assert HOST.nearest_existing("/") == "/"


# --- trust and package_index ------------------------------------------------------------------


def verify_error(message):
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    exc.verify_message = message
    return exc


def test_trust_skips_without_https():
    cfg = settings(package_index={"url": "http://mirror.example.internal/simple", "extra_urls": []})
    assert check("trust", cfg)["status"] == "skip"
    # the index is not used with a wheelhouse: neither is its TLS
    assert check("trust", settings(preflight={"offline_wheelhouse": "/srv/wheels"}))["status"] == "skip"


def test_trust_checks_pypi_when_no_index_is_set(monkeypatch):
    seen = []

    def handshake(host, port, context):
        seen.append((host, port))
        return {"protocol": "TLSv1.3", "issuer": "Test CA", "not_after": "Jan  1 00:00:00 2099 GMT"}

    monkeypatch.setattr(HTTP, "tls_handshake", handshake)
    out = check("trust", settings())
    assert seen == [("pypi.org", 443)]
    assert out["status"] == "pass" and "pypi.org:443 (package_index): verified" in out["detail"]


def test_trust_fails_naming_host_and_verification_error(monkeypatch):
    cfg = settings(
        backends=["https://llm01.example.internal:11434", "http://10.0.0.12:11434"],
        package_index={"url": "https://mirror.example.internal/simple", "extra_urls": []},
    )

    def handshake(host, port, context):
        if host == "mirror.example.internal":
            raise verify_error("self-signed certificate")
        return {"protocol": "TLSv1.3", "issuer": "Site CA", "not_after": "Jan  1 00:00:00 2099 GMT"}

    monkeypatch.setattr(HTTP, "tls_handshake", handshake)
    out = check("trust", cfg)
    assert out["status"] == "fail"
    assert (
        "mirror.example.internal:443 (package_index): not trusted by the system trust store: self-signed certificate"
        in out["detail"]
    )
    assert "llm01.example.internal:11434 (backend): verified" in out["detail"]


def test_trust_warns_on_a_certificate_about_to_expire(monkeypatch):
    soon = time.strftime("%b %d %H:%M:%S %Y GMT", time.gmtime(time.time() + 3 * 86400))
    answer = {"protocol": "TLSv1.3", "issuer": "CA", "not_after": soon}
    monkeypatch.setattr(HTTP, "tls_handshake", lambda host, port, context: answer)
    out = check("trust", settings(backends=["https://llm01.example.internal:11434"]))
    assert out["status"] == "warn" and "expires in" in out["detail"]


def test_trust_fails_on_a_missing_ca_bundle():
    cfg = settings(backends=["https://llm01.example.internal:11434"], ca_bundle="/nonexistent/ca.pem")
    out = check("trust", cfg)
    assert out["status"] == "fail" and "ca_bundle /nonexistent/ca.pem cannot be loaded" in out["detail"]


def test_package_index(monkeypatch):
    page = b'<a href="litellm-1.108.7-py3-none-any.whl#sha256=00">litellm-1.108.7-py3-none-any.whl</a>'
    calls = []

    def index_get(url, context):
        calls.append(url)
        return 200, page

    monkeypatch.setattr(HTTP, "index_get", index_get)
    out = check("package_index", settings())
    assert out["status"] == "pass"
    assert out["detail"] == "GET https://pypi.org/simple/litellm/: 200, litellm 1.108.7 listed"
    cfg = settings(package_index={"url": "https://u:pw@mirror.example/simple", "extra_urls": []}, version="1.108.8")
    out = check("package_index", cfg)
    assert calls[-1] == "https://u:pw@mirror.example/simple/litellm/"
    assert out["status"] == "fail" and "lists no file of litellm 1.108.8" in out["detail"]
    assert "pw" not in out["detail"]
    monkeypatch.setattr(HTTP, "index_get", lambda url, context: (404, b""))
    out = check("package_index", settings())
    assert out["status"] == "fail" and "answered HTTP 404 (expected 200)" in out["detail"]
    out = check("package_index", settings(preflight={"offline_wheelhouse": "/srv/wheels"}))
    assert out["status"] == "skip" and "/srv/wheels" in out["detail"]


def test_package_index_names_a_tls_error(monkeypatch):
    def index_get(url, context):
        import urllib.error

        raise urllib.error.URLError(verify_error("unable to get local issuer certificate"))

    monkeypatch.setattr(HTTP, "index_get", index_get)
    out = check("package_index", settings())
    assert out["status"] == "fail"
    assert "TLS verification failed: unable to get local issuer certificate" in out["detail"]


# --- init and pillar -------------------------------------------------------------------------


def test_init_fails_when_pid1_is_not_systemd(monkeypatch, run_all):
    monkeypatch.setattr(PROC, "pid1_name", lambda: "process_api")
    out = check("init", settings())
    assert out["status"] == "fail" and "'process_api', not systemd" in out["detail"]
    run_all.assert_not_called()


@pytest.mark.parametrize(
    "state, status",
    [("running", "pass"), ("degraded", "pass"), ("starting", "warn"), ("maintenance", "fail"), ("", "fail")],
)
def test_init_under_systemd(monkeypatch, run_all, state, status):
    monkeypatch.setattr(PROC, "pid1_name", lambda: "systemd")
    monkeypatch.setattr(SITE.shutil, "which", lambda name: f"/usr/bin/{name}")
    run_all.return_value = {"retcode": 0 if status == "pass" else 1, "stdout": state + "\n", "stderr": ""}
    assert check("init", settings())["status"] == status
    assert run_all.call_args.args[0] == ["systemctl", "is-system-running"]


def test_pillar_check_passes_valid_settings_with_preflight_keys():
    out = check("pillar", settings(preflight={"min_disk_gib": 3}))
    assert out["status"] == "pass"


def test_pillar_check_lists_every_error_naming_the_key():
    out = check("pillar", settings(bind_port="x", routing_strategy="nope", preflight={"min_memory_mib": -1}))
    assert out["status"] == "fail"
    assert out["detail"].startswith("3 error(s): ")
    for key in ("litellm:bind_port:", "litellm:routing_strategy:", "litellm:preflight:min_memory_mib:"):
        assert key in out["detail"]


def test_pillar_check_of_a_non_mapping():
    assert check("pillar", "oops")["status"] == "fail"
    assert check("dns", "oops")["status"] == "skip"


# --- site checks ---------------------------------------------------------------------------------


def site(**options):
    return settings(preflight={"site": options})


def test_site_checks_are_off_by_default():
    for name in RUN.SITE_CHECKS:
        out = check(name, settings())
        assert out["status"] == "skip" and "not enabled" in out["detail"]


def test_site_realm(monkeypatch, run_all, tmp_path):
    monkeypatch.setattr(SITE.shutil, "which", lambda name: "/usr/sbin/realm" if name == "realm" else None)
    run_all.return_value = {"retcode": 0, "stdout": "example.internal\n", "stderr": ""}
    out = check("site_realm", site(realm=True))
    assert out["status"] == "pass" and "joined to example.internal" in out["detail"]
    run_all.return_value = {"retcode": 0, "stdout": "", "stderr": ""}
    assert check("site_realm", site(realm=True))["status"] == "fail"
    # no realm tool: the files tell
    monkeypatch.setattr(SITE.shutil, "which", lambda name: None)
    for name in ("KRB5_CONF", "KRB5_KEYTAB", "SSSD_CONF"):
        monkeypatch.setattr(SITE, name, str(tmp_path / name))
    out = check("site_realm", site(realm=True))
    assert out["status"] == "skip" and "cannot be told" in out["detail"]
    (tmp_path / "KRB5_CONF").write_text("[libdefaults]\n  default_realm = EXAMPLE.INTERNAL\n")
    out = check("site_realm", site(realm=True))
    assert out["status"] == "warn" and "default_realm EXAMPLE.INTERNAL" in out["detail"]
    (tmp_path / "SSSD_CONF").write_text("[sssd]\ndomains = example.internal\n")
    out = check("site_realm", site(realm=True))
    assert out["status"] == "pass" and "domains example.internal" in out["detail"]


def test_site_sudo(monkeypatch, tmp_path):
    sudoers, sudoers_d = tmp_path / "sudoers", tmp_path / "sudoers.d"
    sudoers_d.mkdir()
    sudoers.write_text("root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n")
    monkeypatch.setattr(SITE, "SUDOERS", str(sudoers))
    monkeypatch.setattr(SITE, "SUDOERS_D", str(sudoers_d))
    (sudoers_d / "admins.disabled").write_text("%admins ALL=(ALL) ALL\n")  # ignored by sudo
    out = check("site_sudo", site(admin_sudo_group="admins"))
    assert out["status"] == "fail" and "no sudoers rule for %admins" in out["detail"]
    (sudoers_d / "admins").write_text("%admins ALL=(ALL:ALL) ALL\n")
    out = check("site_sudo", site(admin_sudo_group="admins"))
    assert out["status"] == "pass" and out["detail"].endswith("admins: %admins ALL=(ALL:ALL) ALL")


def test_site_sudo_warns_when_sudoers_is_unreadable(monkeypatch, tmp_path):
    def unreadable(path, limit=None):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(SITE, "SUDOERS", str(tmp_path / "sudoers"))
    monkeypatch.setattr(SITE, "SUDOERS_D", str(tmp_path / "none"))
    monkeypatch.setattr(SITE, "read", unreadable)
    out = check("site_sudo", site(admin_sudo_group="admins"))
    assert out["status"] == "warn" and "cannot read" in out["detail"]


def test_site_netplan(monkeypatch, tmp_path):
    monkeypatch.setattr(SITE, "NETPLAN_DIR", str(tmp_path / "netplan"))
    assert check("site_netplan", site(netplan_single_file=True))["status"] == "fail"
    (tmp_path / "netplan").mkdir()
    assert "no *.yaml" in check("site_netplan", site(netplan_single_file=True))["detail"]
    (tmp_path / "netplan" / "01-net.yaml").write_text("network: {}\n")
    assert check("site_netplan", site(netplan_single_file=True))["status"] == "pass"
    (tmp_path / "netplan" / "50-cloud-init.yaml").write_text("network: {}\n")
    out = check("site_netplan", site(netplan_single_file=True))
    assert out["status"] == "fail" and "2 netplan files" in out["detail"]


def test_site_resolver(monkeypatch, tmp_path):
    resolv, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    monkeypatch.setattr(SITE, "RESOLV_CONF", str(resolv))
    monkeypatch.setattr(SITE, "RESOLVED_UPSTREAM", str(upstream))
    resolv.write_text("search example.internal\n")
    assert check("site_resolver", site(resolver=True))["status"] == "fail"
    resolv.write_text("nameserver 10.0.0.2\n")
    assert check("site_resolver", site(resolver=True))["detail"] == "nameservers 10.0.0.2"
    resolv.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    out = check("site_resolver", site(resolver=True))
    assert out["status"] == "pass" and "upstream servers not readable" in out["detail"]
    upstream.write_text("# no servers\n")
    assert check("site_resolver", site(resolver=True))["status"] == "fail"
    upstream.write_text("nameserver 10.0.0.2\nnameserver 10.0.0.3\n")
    out = check("site_resolver", site(resolver=True))
    assert out["status"] == "pass" and "systemd-resolved stub 127.0.0.53; upstream 10.0.0.2, 10.0.0.3" in out["detail"]

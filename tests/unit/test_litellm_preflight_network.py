"""Unit tests of litellm_preflight's network checks (dns, backends, bind_port), their I/O mocked."""

import errno
import json
import socket
import time

from tests.unit import preflight_common
from tests.unit.preflight_common import (
    BACKENDS,
    DNS,
    HTTP,
    NET,
    PORT,
    PROC,
    SITE,
    check,
    ctx,
    settings,
)

# the loader's fixtures, bound in this module's scope (saltfactories asks for configure_loader_modules)
configure_loader_modules = preflight_common.configure_loader_modules
run_all = preflight_common.run_all


# --- dns ---------------------------------------------------------------------------


def fake_resolver(table):
    def resolve(host):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(table[host])

    return resolve


def test_dns_passes_when_every_host_resolves(monkeypatch):
    table = {"gw.example.internal": ["10.0.0.1"], "llm01.example.internal": ["10.0.0.11", "fd00::11"]}
    monkeypatch.setattr(NET, "resolve", fake_resolver(table))
    out = check("dns", settings())
    assert out["status"] == "pass"
    assert "gw.example.internal (gateway): 10.0.0.1" in out["detail"]
    assert "llm01.example.internal (backend): 10.0.0.11, fd00::11" in out["detail"]
    assert "10.0.0.12 (backend): literal" in out["detail"]


def test_dns_uses_the_fqdn_grain_without_base_url(monkeypatch):
    monkeypatch.setattr(NET, "resolve", fake_resolver({"llm01.example.internal": ["10.0.0.11"]}))
    out = check("dns", settings(base_url=""))
    assert out["status"] == "fail"
    assert "gw.example.internal (gateway): does not resolve (Name or service not known)" in out["detail"]


def test_dns_compares_expected_addresses_per_family(monkeypatch):
    table = {"gw.example.internal": ["10.0.0.1", "fd00::1"], "llm01.example.internal": ["10.0.0.99"]}
    monkeypatch.setattr(NET, "resolve", fake_resolver(table))
    expected = {"gw.example.internal": ["10.0.0.1"], "llm01.example.internal": ["10.0.0.11"]}
    out = check("dns", settings(preflight={"dns": {"expected": expected}}))
    assert out["status"] == "fail"
    assert "gw.example.internal (gateway): 10.0.0.1, fd00::1;" in out["detail"]  # v6 not compared
    assert "llm01.example.internal (backend): 10.0.0.99 but expected 10.0.0.11" in out["detail"]


def test_dns_checks_ptr_records(monkeypatch):
    monkeypatch.setattr(
        NET, "resolve", fake_resolver({"gw.example.internal": ["10.0.0.1"], "llm01.example.internal": ["10.0.0.11"]})
    )
    reverse = {"10.0.0.1": ["gw.example.internal"], "10.0.0.11": ["something-else.example.internal"]}

    def fake_reverse(address):
        return reverse[address]

    monkeypatch.setattr(NET, "reverse", fake_reverse)
    out = check("dns", settings(preflight={"dns": {"ptr": True}}))
    assert out["status"] == "fail"
    assert "gw.example.internal (gateway): 10.0.0.1 (PTR ok)" in out["detail"]
    assert "PTR of 10.0.0.11 is something-else.example.internal" in out["detail"]


def test_dns_is_bounded_in_time(monkeypatch):
    def slow(host):
        time.sleep(5)
        return ["10.0.0.1"]

    monkeypatch.setattr(NET, "resolve", slow)
    monkeypatch.setattr(DNS, "DNS_TIMEOUT", 0.2)
    start = time.monotonic()
    out = check("dns", settings())
    assert time.monotonic() - start < 1.5
    assert out["status"] == "fail" and "no answer within" in out["detail"]


# --- backends ---------------------------------------------------------------------------


def fake_ollama(tags, down=(), status=None):
    def http_get(url, context=None, timeout=None, limit=None):
        base, _, path = url.partition("/api/")
        if status and base in status:
            return status[base], b"{}"
        if path == "version":
            return 200, b'{"version": "0.5.7"}'
        return 200, json.dumps({"models": [{"name": m, "model": m} for m in tags[base]]}).encode()

    def tcp_connect(host, port, timeout=None):
        if f"{host}:{port}" in down:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return True

    return http_get, tcp_connect


def patch_ollama(monkeypatch, tags, down=(), status=None):
    http_get, tcp_connect = fake_ollama(tags, down, status)
    monkeypatch.setattr(HTTP, "get", http_get)
    monkeypatch.setattr(NET, "tcp_connect", tcp_connect)


def test_backends_pass_when_every_model_is_everywhere(monkeypatch):
    patch_ollama(monkeypatch, {u: ["llama3.2:3b", "mistral:latest"] for u in BACKENDS})
    out = check("backends", settings())
    assert out["status"] == "pass"
    assert f"{BACKENDS[0]}: ollama 0.5.7, 2/2 model(s)" in out["detail"]


def test_backends_fail_naming_the_missing_model_and_backend(monkeypatch):
    patch_ollama(monkeypatch, {BACKENDS[0]: ["llama3.2:3b", "mistral:latest"], BACKENDS[1]: ["llama3.2:3b"]})
    out = check("backends", settings())
    assert out["status"] == "fail"
    assert f"model 'mistral' missing on {BACKENDS[1]}" in out["detail"]
    assert f"missing on {BACKENDS[0]}" not in out["detail"]


def test_backends_fail_naming_a_backend_that_is_down(monkeypatch):
    patch_ollama(monkeypatch, {u: ["llama3.2:3b", "mistral"] for u in BACKENDS}, down={"10.0.0.12:11434"})
    out = check("backends", settings())
    assert out["status"] == "fail"
    assert f"{BACKENDS[1]}: TCP connect failed (Connection refused)" in out["detail"]


def test_backends_fail_on_an_http_error(monkeypatch):
    patch_ollama(monkeypatch, {u: [] for u in BACKENDS}, status={BACKENDS[0]: 500})
    out = check("backends", settings())
    assert out["status"] == "fail"
    assert f"{BACKENDS[0]}: GET /api/version answered HTTP 500" in out["detail"]


def test_backends_skip_without_valid_urls():
    assert check("backends", settings(backends=["ftp://x"]))["status"] == "skip"


# --- bind_port ----------------------------------------------------------------------------


def in_use(host, port):
    return OSError(errno.EADDRINUSE, "Address already in use")


def patch_port(monkeypatch, sockets, holders, cgroups=None, main_pid=None):
    monkeypatch.setattr(NET, "try_bind", in_use)
    monkeypatch.setattr(PROC, "tcp_sockets", lambda: sockets)
    monkeypatch.setattr(PROC, "socket_holders", lambda inodes: {i: holders.get(i, []) for i in inodes})
    monkeypatch.setattr(PROC, "process_command", lambda pid: f"nginx: master process (pid {pid})")
    monkeypatch.setattr(PROC, "process_cgroup", lambda pid: (cgroups or {}).get(pid, "0::/user.slice\n"))
    monkeypatch.setattr(PORT, "service_main_pid", lambda ctx, service: main_pid)


LISTENER = {"address": "0.0.0.0", "port": 4000, "state": "LISTEN", "uid": 0, "inode": 777}


def test_bind_port_free(monkeypatch):
    monkeypatch.setattr(NET, "try_bind", lambda host, port: None)
    out = check("bind_port", settings(bind_host="127.0.0.1"))
    assert out == dict(out, status="pass", detail="127.0.0.1:4000 is free")


def test_bind_port_held_by_another_process_fails_naming_pid_and_command(monkeypatch):
    patch_port(monkeypatch, [LISTENER], {777: [4242]})
    out = check("bind_port", settings())
    assert out["status"] == "fail"
    assert "0.0.0.0:4000 is held by PID 4242 (nginx: master process (pid 4242))" in out["detail"]
    assert "random port" in out["detail"]


def test_bind_port_held_by_the_service_cgroup_passes(monkeypatch):
    patch_port(monkeypatch, [LISTENER], {777: [300, 301]}, cgroups={301: "0::/system.slice/litellm.service\n"})
    out = check("bind_port", settings())
    assert out["status"] == "pass" and "held by the litellm service itself (PID 301)" in out["detail"]


def test_bind_port_held_by_the_service_main_pid_passes(monkeypatch):
    patch_port(monkeypatch, [LISTENER], {777: [300]}, main_pid=300)
    assert check("bind_port", settings())["status"] == "pass"


def test_systemd_main_pid_asks_systemctl_only_under_systemd(monkeypatch, run_all):
    monkeypatch.setattr(PROC, "pid1_name", lambda: "process_api")
    assert PORT.service_main_pid(ctx(), "litellm") is None
    run_all.assert_not_called()
    monkeypatch.setattr(PROC, "pid1_name", lambda: "systemd")
    monkeypatch.setattr(SITE.shutil, "which", lambda name: f"/usr/bin/{name}")
    run_all.return_value = {"retcode": 0, "stdout": "1234\n", "stderr": ""}
    assert PORT.service_main_pid(ctx(), "litellm") == 1234
    assert run_all.call_args.args[0] == ["systemctl", "show", "-p", "MainPID", "--value", "litellm.service"]
    run_all.return_value = {"retcode": 0, "stdout": "0\n", "stderr": ""}
    assert PORT.service_main_pid(ctx(), "litellm") is None


def test_bind_port_in_time_wait_only_passes(monkeypatch):
    patch_port(monkeypatch, [dict(LISTENER, state="TIME_WAIT", inode=0)], {})
    out = check("bind_port", settings())
    assert out["status"] == "pass" and "TIME_WAIT" in out["detail"]


def test_bind_port_held_by_an_invisible_process_fails(monkeypatch):
    patch_port(monkeypatch, [dict(LISTENER, uid=1001)], {})
    out = check("bind_port", settings())
    assert out["status"] == "fail" and "uid 1001" in out["detail"] and "run as root" in out["detail"]


def test_bind_port_on_a_foreign_address_fails(monkeypatch):
    monkeypatch.setattr(NET, "try_bind", lambda h, p: OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))
    out = check("bind_port", settings(bind_host="192.0.2.1"))
    assert out["status"] == "fail" and "not an address of this host" in out["detail"]


def test_bind_port_skips_invalid_settings():
    assert check("bind_port", settings(bind_port="x"))["status"] == "skip"


def test_try_bind_reports_a_held_port_for_real():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert NET.try_bind("127.0.0.1", port).errno == errno.EADDRINUSE
    assert NET.try_bind("127.0.0.1", port) is None

"""Unit tests of litellm_preflight: the pure parts, and each check's logic with its I/O mocked."""

import errno
import ipaddress
import json
import os
import socket
import ssl
import stat
import time
from unittest.mock import MagicMock

import pytest

from tests.conftest import SALT_UTILS, TEST_MASTER_KEY, load_salt_module, merged

litellm_preflight = load_salt_module("modules", "litellm_preflight")
litellm_config = load_salt_module("modules", "litellm_config")
preflight_state = load_salt_module("states", "litellm_preflight")

PF = litellm_preflight
U = SALT_UTILS
RUN, REPORT = U.litellm_preflight_run, U.litellm_preflight_report
DNS, BACKEND, PORT = U.litellm_preflight_dns, U.litellm_preflight_backends, U.litellm_preflight_port
HOST, TLS, SITE = U.litellm_preflight_host, U.litellm_preflight_tls, U.litellm_preflight_site
NET, PROC, HTTP, REDACT = U.litellm_net, U.litellm_proc, U.litellm_http, U.litellm_redact
BACKENDS = ["http://llm01.example.internal:11434", "http://10.0.0.12:11434"]

# /proc/net/tcp and tcp6 as the kernel prints them (x86_64, little endian).
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 41210 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18423 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0FA0 0100007F:D2F4 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   3: 0C00000A:B83E 0100000A:2CAA 01 00000000:00000000 02:000A7D4F 00000000  1000        0 52117 2 0000000000000000 20 4 30 10 -1
"""  # noqa: E501 (the kernel's own line format)
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0FA0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61001 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61002 1 0000000000000000 100 0 0 10 0
   2: 000080FE00000000FF005452F10004FE:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61003 1 0000000000000000 100 0 0 10 0
"""  # noqa: E501 (the kernel's own line format)


def settings(**overrides):
    base = merged(
        {
            "backends": list(BACKENDS),
            "models": [
                {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
                {"name": "chat", "provider": "ollama", "model": "mistral"},
            ],
            "master_key": TEST_MASTER_KEY,
            "base_url": "http://gw.example.internal:4000/v1",
            # unit tests write no evidence bundles on this machine
            "preflight": {"evidence_dir": ""},
        }
    )
    base.update(overrides)
    return base


@pytest.fixture
def run_all():
    return MagicMock(return_value={"retcode": 0, "stdout": "", "stderr": ""})


@pytest.fixture
def configure_loader_modules(run_all):
    salt = {"cmd.run_all": run_all, "litellm_config.validate": litellm_config.validate}
    return {
        litellm_preflight: {
            "__salt__": salt,
            "__grains__": {"fqdn": "gw.example.internal", "id": "gw"},
            "__utils__": U,
        },
        litellm_config: {"__salt__": {}, "__utils__": U},
        preflight_state: {
            "__salt__": {"litellm_preflight.run": litellm_preflight.run},
            "__opts__": {"test": False},
            "__utils__": U,
        },
    }


def ctx(cfg=None):
    """The checks' context the module gives them."""
    return PF._context(cfg if cfg is not None else settings(), "base")[0]


def preflight_errors(cfg):
    """The errors of litellm:preflight, which litellm_config.check_settings checks with every other section."""
    return [e for e in litellm_config.check_settings(cfg) if e.startswith("litellm:preflight")]


def check(name, cfg):
    """Run one check through the module's own wrapper (timing, redaction)."""
    out = PF._public(name, cfg, "base")
    assert set(out) == {"name", "status", "detail", "duration_ms"}
    assert "\n" not in out["detail"]
    return out


# --- pure parts -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, normal",
    [
        ("llama3", "llama3:latest"),
        ("llama3.2:3b", "llama3.2:3b"),
        ("Qwen2.5:7B", "qwen2.5:7b"),
        ("library/mistral", "mistral:latest"),
        ("registry.ollama.ai/library/phi3:mini", "phi3:mini"),
        ("hf.co/org/repo", "hf.co/org/repo:latest"),
        ("myregistry:5000/team/model", "myregistry:5000/team/model:latest"),
        ("", ""),
    ],
)
def test_model_names_normalise_like_ollama(name, normal):
    assert BACKEND.normalize_model(name) == normal


def test_missing_models_apply_the_latest_rule():
    available = ["llama3.2:3b", "mistral:latest"]
    assert BACKEND.missing_models(["llama3.2:3b", "mistral", "mistral:latest"], available) == []
    assert BACKEND.missing_models(["llama3.2", "qwen2.5:7b"], available) == ["llama3.2", "qwen2.5:7b"]
    payload = {"models": [{"name": "a:1b", "model": "a:1b"}, {"model": "b:latest"}, "junk"]}
    assert BACKEND.missing_models(["a:1b", "b"], BACKEND.tags_model_names(payload)) == []


def test_proc_net_tcp_parsing():
    sockets = PROC.parse_proc_net_tcp(PROC_NET_TCP)
    assert sockets[0] == {"address": "127.0.0.1", "port": 4000, "state": "LISTEN", "uid": 998, "inode": 41210}
    assert sockets[1]["address"] == "0.0.0.0" and sockets[1]["port"] == 22
    assert sockets[2]["state"] == "TIME_WAIT" and sockets[2]["inode"] == 0
    assert sockets[3]["address"] == "10.0.0.12" and sockets[3]["state"] == "ESTABLISHED"
    six = PROC.parse_proc_net_tcp(PROC_NET_TCP6)
    assert [(s["address"], s["port"]) for s in six] == [
        ("::1", 4000),
        (str(ipaddress.ip_address("::ffff:127.0.0.1")), 8080),
        ("fe80::5254:ff:fe04:f1", 22),
    ]
    assert PROC.parse_proc_net_tcp("header only\n garbage line\n") == []


def test_proc_net_tcp_parsing_of_this_host_finds_a_real_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with open("/proc/net/tcp", encoding="ascii") as handle:
            found = [s for s in PROC.parse_proc_net_tcp(handle.read()) if s["port"] == port]
    assert found and found[0]["state"] == "LISTEN" and found[0]["address"] == "127.0.0.1"


@pytest.mark.parametrize(
    "text, expected",
    [("3.11.2", (3, 11, 2)), ("glibc 2.36", (2, 36)), ([3, 9, 0], (3, 9, 0)), ("musl", None), (None, None)],
)
def test_parse_version(text, expected):
    assert HOST.parse_version(text) == expected


@pytest.mark.parametrize(
    "version, ok",
    [((3, 8, 18), False), ((3, 9, 0), True), ((3, 11, 2), True), ((3, 13, 9), True), ((3, 14, 0), False)],
)
def test_python_version_range(version, ok):
    assert HOST.version_in_range(version, HOST.PYTHON_MIN, HOST.PYTHON_BELOW) is ok


def test_glibc_comparison():
    assert HOST.parse_version("glibc 2.28") >= HOST.GLIBC_MIN
    assert HOST.parse_version("glibc 2.27") < HOST.GLIBC_MIN
    assert HOST.parse_version("glibc 2.36") >= HOST.GLIBC_MIN


def test_result_is_one_bounded_line():
    out = REPORT.result("dns", "pass", "a\nb   c" + "x" * 5000, 1.234)
    assert out["detail"].startswith("a b c") and len(out["detail"]) == REPORT.MAX_DETAIL
    assert out["duration_ms"] == 1.2
    with pytest.raises(ValueError):
        REPORT.result("dns", "ok", "")


def test_worst_status():
    assert REPORT.worst(["pass", "warn", "skip"]) == "warn"
    assert REPORT.worst(["pass", "fail", "warn"]) == "fail"
    assert REPORT.worst(["skip", "skip"]) == "skip"
    assert REPORT.worst(["skip", "pass"]) == "pass"


def test_report_verdict_ignores_warnings():
    checks = [REPORT.result("a", "pass", "ok"), REPORT.result("b", "warn", "low"), REPORT.result("c", "skip", "-")]
    report = REPORT.build_report(checks, 12.34)
    assert report == {
        "result": "GO",
        "checks": checks,
        "failed": [],
        "warnings": ["b"],
        "duration_ms": 12.3,
        "evidence": None,
    }
    report = REPORT.build_report(checks + [REPORT.result("d", "fail", "bad")], 1)
    assert report["result"] == "NO-GO" and report["failed"] == ["d"]


def test_summary_is_a_readable_table():
    checks = [
        REPORT.result("backends", "fail", "model 'x' missing on http://a:1", 12),
        REPORT.result("dns", "pass", "ok", 3),
    ]
    text = REPORT.format_summary(REPORT.build_report(checks, 20), host="gw", generated="20260101T000000Z")
    lines = text.splitlines()
    assert lines[0] == "LiteLLM preflight: NO-GO"
    assert "host: gw" in lines[1] and "20260101T000000Z" in lines[1]
    header = next(line for line in lines if line.startswith("CHECK"))
    row = next(line for line in lines if line.startswith("backends"))
    assert row.index("FAIL") == header.index("STATUS")
    assert row.endswith("model 'x' missing on http://a:1")
    assert "failed: backends" in lines and "warnings: none" in lines


def test_redaction_of_the_master_key_url_passwords_and_sk_keys():
    data = {
        "detail": f"key {TEST_MASTER_KEY} leaked",
        "nested": [f"Bearer {TEST_MASTER_KEY}", ("x", TEST_MASTER_KEY)],
        TEST_MASTER_KEY: 1,
        "url": "https://alice:s3cr3t%40@mirror.example/simple",
        "other": "sk-abcdefghijklmnopqrstuvwx",
    }
    text = json.dumps(REDACT.redact(data, [TEST_MASTER_KEY]))
    assert TEST_MASTER_KEY not in text
    assert "s3cr3t" not in text and "alice:<redacted>@mirror.example" in text
    assert "sk-abcdefghijklmnopqrstuvwx" not in text
    assert REDACT.redact(5, ["x"]) == 5


def test_secrets_include_index_passwords():
    cfg = settings(package_index={"url": "https://bob:pa%24%24word@mirror/simple", "extra_urls": []})
    secrets = REDACT.settings_secrets(cfg)
    assert TEST_MASTER_KEY in secrets and "pa$$word" in secrets and "pa%24%24word" in secrets
    assert HTTP.url_without_credentials("https://bob:pw@mirror/simple/") == "https://mirror/simple/"


def test_preflight_keys_are_validated():
    assert preflight_errors(settings()) == []
    good = {
        "min_disk_gib": 5,
        "min_memory_mib": 2048,
        "evidence_dir": "/var/lib/litellm-preflight",
        "offline_wheelhouse": "/srv/wheels",
        "dns": {"expected": {"gw": ["10.0.0.1", "fd00::1"]}, "ptr": True},
        "site": {"realm": True, "admin_sudo_group": "admins", "netplan_single_file": False, "resolver": True},
    }
    assert preflight_errors(settings(preflight=good)) == []
    bad = {
        "min_disk_gib": "lots",
        "evidence_dir": "relative",
        "dns": {"expected": {"gw": ["not-an-ip"]}, "ptr": "yes"},
        "site": {"realm": "yes", "colour": True},
        "typo": 1,
    }
    errors = preflight_errors(settings(preflight=bad))
    for words in (
        "litellm:preflight: unknown key(s) typo",
        "litellm:preflight:min_disk_gib",
        "litellm:preflight:evidence_dir",
        "litellm:preflight:dns:ptr",
        "litellm:preflight:dns:expected:gw: 'not-an-ip'",
        "litellm:preflight:site:realm",
        "litellm:preflight:site: unknown key 'colour'",
    ):
        assert any(words in e for e in errors), (words, errors)


def test_cgroup_and_sudoers_and_resolv_parsing():
    assert PROC.in_service_cgroup("0::/system.slice/litellm.service\n", "litellm")
    assert PROC.in_service_cgroup("1:name=systemd:/system.slice/litellm.service/worker\n", "litellm")
    assert not PROC.in_service_cgroup("0::/system.slice/litellm-other.service\n", "litellm")
    assert not PROC.in_service_cgroup("0::/user.slice/session-1.scope\n", "litellm")
    sudoers = (
        "# %admins ALL=(ALL) ALL\n"
        "%adminsx ALL=(ALL) ALL\n"
        "%admins ALL=(ALL:ALL) ALL\n"
        '%"domain admins" ALL=(ALL) ALL\n'
        "%linux\\ ops ALL=(ALL) \\\n    NOPASSWD: ALL\n"
    )
    assert SITE.sudoers_rules_for_group(sudoers, "admins") == ["%admins ALL=(ALL:ALL) ALL"]
    assert SITE.sudoers_rules_for_group(sudoers, "domain admins") == ['%"domain admins" ALL=(ALL) ALL']
    assert SITE.sudoers_rules_for_group(sudoers, "linux ops")[0].endswith("NOPASSWD: ALL")
    assert SITE.sudoers_rules_for_group(sudoers, "wheel") == []
    assert SITE.sudoers_include_name_ok("admins") and not SITE.sudoers_include_name_ok("admins.bak")
    assert not SITE.sudoers_include_name_ok("admins~")
    assert SITE.nameservers("# c\nnameserver 10.0.0.2\nsearch x\nnameserver  fd00::53 # dns2\n") == [
        "10.0.0.2",
        "fd00::53",
    ]


def test_selected_checks():
    assert RUN.selected_checks(U, settings()) == [
        "pillar",
        "ownership",
        "dns",
        "backends",
        "bind_port",
        "runtime",
        "resources",
        "capacity",
        "trust",
        "package_index",
        "init",
    ]
    cfg = settings(preflight={"site": {"realm": True, "admin_sudo_group": "admins", "resolver": False}})
    assert RUN.selected_checks(U, cfg)[-2:] == ["site_realm", "site_sudo"]
    assert RUN.selected_checks(U, cfg, "dns, backends") == ["dns", "backends"]
    with pytest.raises(ValueError, match="unknown check"):
        RUN.selected_checks(U, cfg, ["dns", "nope"])


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


# --- run(), evidence, the state -----------------------------------------------------------------


@pytest.fixture
def fake_checks(monkeypatch):
    """Replace every check with a canned answer (one leaks the key, on purpose)."""
    answers = {name: ("pass", f"{name} ok") for name in RUN.CHECKS}
    answers["resources"] = ("warn", "memory 512 MiB available (< 1024 MiB)")
    answers["dns"] = ("pass", f"leaky detail {TEST_MASTER_KEY}")
    checks = {name: (lambda ctx, s, n=name: answers[n]) for name in RUN.CHECKS}
    monkeypatch.setattr(RUN, "CHECKS", checks)
    return answers


def test_run_says_go_with_warnings(fake_checks):
    report = PF.run(settings=settings())
    assert report["result"] == "GO"
    assert report["warnings"] == ["resources"] and report["failed"] == []
    assert [c["name"] for c in report["checks"]] == RUN.selected_checks(U, settings())
    assert report["evidence"] is None
    assert TEST_MASTER_KEY not in json.dumps(report)


def test_run_says_no_go_and_runs_only_the_named_checks(fake_checks):
    fake_checks["backends"] = ("fail", "model 'x' missing on http://a:1")
    report = PF.run(settings=settings(), checks="backends,init")
    assert report["result"] == "NO-GO" and report["failed"] == ["backends"]
    assert [c["name"] for c in report["checks"]] == ["backends", "init"]


def test_a_check_that_raises_is_a_fail_not_a_crash(monkeypatch):
    def boom(ctx, settings):
        raise RuntimeError(f"unexpected {TEST_MASTER_KEY}")

    monkeypatch.setitem(RUN.CHECKS, "init", boom)
    out = PF._public("init", settings(), "base")
    assert out["status"] == "fail" and "check raised RuntimeError" in out["detail"]
    assert TEST_MASTER_KEY not in out["detail"]


def test_run_writes_a_private_evidence_bundle_without_the_key(fake_checks, tmp_path):
    evidence = tmp_path / "evidence"
    report = PF.run(settings=settings(), evidence_dir=str(evidence))
    bundle = report["evidence"]
    assert os.path.dirname(bundle) == str(evidence)
    assert os.path.basename(bundle).startswith("preflight-") and bundle.endswith("Z")
    assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o700
    assert sorted(os.listdir(bundle)) == ["report.json", "summary.txt"]
    for name in ("report.json", "summary.txt"):
        path = os.path.join(bundle, name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        assert TEST_MASTER_KEY not in text
        assert "<redacted>" in text
    with open(os.path.join(bundle, "report.json"), encoding="utf-8") as handle:
        document = json.load(handle)
    assert document["result"] == "GO" and document["evidence"] == bundle and document["host"] == "gw"
    with open(os.path.join(bundle, "summary.txt"), encoding="utf-8") as handle:
        assert handle.readline() == "LiteLLM preflight: GO\n"
    again = PF.run(settings=settings(), evidence_dir=str(evidence))
    assert again["evidence"] != bundle  # a second run in the same second gets its own bundle


def test_run_takes_the_evidence_dir_from_pillar(fake_checks, tmp_path):
    report = PF.run(settings=settings(preflight={"evidence_dir": str(tmp_path)}))
    assert report["evidence"].startswith(str(tmp_path))


def test_run_defaults_to_the_merged_settings(monkeypatch, fake_checks):
    renderer = MagicMock(return_value={"settings": settings(), "pillar_is_mapping": True})
    monkeypatch.setitem(PF.__salt__, "slsutil.renderer", renderer)
    assert PF.run()["result"] == "GO"
    assert "litellm/map.jinja" in renderer.call_args.kwargs["string"]


def test_state_go_lists_failures_and_never_changes(fake_checks):
    fake_checks["backends"] = ("fail", "model 'x' missing on http://a:1")
    fake_checks["init"] = ("fail", "PID 1 is 'sh', not systemd")
    ret = preflight_state.go("litellm", settings())
    assert ret["result"] is False and ret["changes"] == {}
    assert "Preflight NO-GO: 2 of 11 check(s) failed" in ret["comment"]
    assert "- backends: model 'x' missing on http://a:1" in ret["comment"]
    assert "- init: PID 1 is 'sh', not systemd" in ret["comment"]
    assert "- resources: memory 512 MiB" in ret["comment"]
    assert TEST_MASTER_KEY not in ret["comment"]


def test_state_go_passes_with_warnings_in_test_mode_too(fake_checks, tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(preflight_state.__opts__, "test", True)
        ret = preflight_state.go("litellm", settings(), evidence_dir=str(tmp_path))
    assert ret["result"] is True and ret["changes"] == {}
    assert "Preflight GO: 11 check(s), none failed" in ret["comment"]
    assert "Warnings (1):" in ret["comment"]
    assert f"Evidence: {tmp_path}/preflight-" in ret["comment"]


def test_state_go_fails_cleanly_on_an_unknown_check(fake_checks):
    ret = preflight_state.go("litellm", settings(), checks=["nope"])
    assert ret["result"] is False and "unknown check(s) nope" in ret["comment"]


def test_package_index_and_its_tls_are_skipped_when_the_pinned_version_is_installed(tmp_path):
    venv = tmp_path / "venv"
    settings = {
        "venv": str(venv),
        "version": "1.108.7",
        "package_index": {"url": "https://mirror.invalid/simple", "extra_urls": []},
        "backends": ["http://127.0.0.1:11434"],
    }
    assert [label for label, _, _ in TLS.https_endpoints(U, settings)] == ["package_index"]
    (venv / "lib" / "python3.11" / "site-packages" / "litellm-1.108.7.dist-info").mkdir(parents=True)
    status, detail = TLS.check_package_index(ctx(), settings)
    assert status == "skip" and "already installed" in detail
    assert TLS.https_endpoints(U, settings) == []
    settings["version"] = "1.108.8"
    assert [label for label, _, _ in TLS.https_endpoints(U, settings)] == ["package_index"]


# --- evidence pruning, settings without the state tree, the state's check list --------------


def test_keep_evidence_is_validated():
    assert preflight_errors(settings(preflight={"keep_evidence": 5})) == []
    for bad in (0, -1, "many", 2.5, True):
        errors = preflight_errors(settings(preflight={"keep_evidence": bad}))
        assert any("litellm:preflight:keep_evidence: must be an integer >= 1" in e for e in errors), (bad, errors)


def test_run_keeps_only_the_newest_evidence_bundles(fake_checks, tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for name in ("preflight-20240101T000000Z", "preflight-20240101T000000Z-2", "preflight-20240101T000000Z-10"):
        (evidence / name).mkdir()
        (evidence / name / "report.json").write_text("{}")
    (evidence / "notes").mkdir()  # not a bundle: never touched
    (evidence / "preflight-keep.txt").write_text("x")
    cfg = settings(preflight={"evidence_dir": str(evidence), "keep_evidence": 2})
    report = PF.run(settings=cfg)
    kept = sorted(os.listdir(evidence))
    newest = os.path.basename(report["evidence"])
    assert kept == sorted(["notes", "preflight-keep.txt", "preflight-20240101T000000Z-10", newest])
    again = PF.run(settings=cfg)
    assert sorted(os.listdir(evidence)) == sorted(
        ["notes", "preflight-keep.txt", newest, os.path.basename(again["evidence"])]
    )


def test_evidence_keeps_twenty_bundles_by_default(fake_checks, tmp_path):
    for second in range(25):
        (tmp_path / f"preflight-20240101T0000{second:02d}Z").mkdir()
    report = PF.run(settings=settings(), evidence_dir=str(tmp_path))
    kept = sorted(os.listdir(tmp_path))
    from tests.conftest import formula_defaults

    assert len(kept) == formula_defaults()["preflight"]["keep_evidence"] == 20
    assert os.path.basename(report["evidence"]) in kept
    assert "preflight-20240101T000024Z" in kept and "preflight-20240101T000005Z" not in kept


def test_prune_never_removes_the_current_bundle_or_symlinks(tmp_path):
    (tmp_path / "preflight-20240101T000000Z").mkdir()
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "preflight-20230101T000000Z")
    current = str(tmp_path / "preflight-20240101T000000Z")
    assert REPORT.prune_evidence(str(tmp_path), 0, current=current) == []
    assert os.path.isdir(current) and os.path.islink(tmp_path / "preflight-20230101T000000Z")
    assert REPORT.prune_evidence(str(tmp_path / "missing"), 1) == []


def test_every_default_lives_in_defaults_yaml_only():
    from tests.conftest import MODULES_DIR, STATES_DIR, UTILS_DIR, formula_defaults

    # the modules read defaults.yaml through map.jinja (or receive the merged map): nothing mirrors it
    paths = [*MODULES_DIR.glob("*.py"), *STATES_DIR.glob("*.py"), *UTILS_DIR.glob("*.py")]
    evidence_dir = formula_defaults()["preflight"]["evidence_dir"]
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for mirror in ("FORMULA_DEFAULTS", "OS_FAMILY_DEFAULTS", "DEFAULT_MIN_DISK_GIB", "DEFAULT_KEEP_EVIDENCE"):
            assert mirror not in text, (path.name, mirror)
        assert evidence_dir not in text, path.name


def test_without_the_state_tree_pillar_alone_is_checked_and_the_pillar_check_says_why(monkeypatch, fake_checks):
    from salt.exceptions import SaltRenderError

    def no_tree(**kwargs):
        raise SaltRenderError("Jinja error: litellm/map.jinja\njinja2.exceptions.TemplateNotFound: litellm/map.jinja")

    pillar = {"backends": list(BACKENDS), "bind_port": 4100, "preflight": {"min_disk_gib": 7}}
    monkeypatch.setitem(PF.__salt__, "slsutil.renderer", no_tree)
    monkeypatch.setitem(PF.__salt__, "pillar.get", MagicMock(return_value=pillar))
    context, checked = PF._context(None, "base")
    assert checked == pillar  # no defaults.yaml here: nothing is made up
    assert context.note == PF.NO_MAP_NOTE
    # a real template error is not hidden
    syntax = SaltRenderError("Jinja syntax error: unexpected '}'; litellm/map.jinja line 3")
    monkeypatch.setitem(PF.__salt__, "slsutil.renderer", MagicMock(side_effect=syntax))
    with pytest.raises(SaltRenderError):
        PF._context(None, "base")


def test_salt_ssh_without_pillar_says_so_in_the_pillar_check(monkeypatch):
    from salt.exceptions import SaltRenderError

    monkeypatch.setitem(
        PF.__salt__, "slsutil.renderer", MagicMock(side_effect=SaltRenderError("TemplateNotFound: litellm/map.jinja"))
    )
    # no pillar, no defaults.yaml: nothing to go on, and no evidence directory either
    monkeypatch.setitem(PF.__salt__, "pillar.get", MagicMock(return_value={}))
    report = PF.run(checks="pillar")
    assert report["evidence"] is None
    assert report["result"] == "NO-GO"
    detail = report["checks"][0]["detail"]
    assert "litellm:backends" in detail and PF.NO_PILLAR_NOTE in detail


def test_state_comment_lists_every_check_with_its_status(fake_checks):
    ret = preflight_state.go("litellm", settings())
    line = next(ln for ln in ret["comment"].splitlines() if ln.startswith("Checks: "))
    for name in RUN.selected_checks(U, settings()):
        assert f"{name} " in line
    assert "resources warn" in line and "pillar pass" in line


def test_ownership_fails_naming_the_key_when_the_deploy_would_take_something_over(monkeypatch):
    seen = {}

    def owner_check(entries):
        seen["entries"] = entries
        return {"claims": [], "labels": [], "adopted": False, "problems": [
            "litellm:service:user: user 'www-data' already exists on this host (uid 33, a system account)"]}

    monkeypatch.setitem(PF.__salt__, "litellm_owner.check", owner_check)
    monkeypatch.setitem(PF.__salt__, "litellm_config.layout",
                        lambda settings=None: litellm_config.plan_layout(settings))
    out = check("ownership", settings(service={"name": "litellm", "user": "www-data", "group": "litellm"}))
    assert out["status"] == "fail" and "litellm:service:user: user 'www-data' already exists" in out["detail"]
    assert ("user", "www-data") in {(e["kind"], e.get("name")) for e in seen["entries"]}
    monkeypatch.setitem(PF.__salt__, "litellm_owner.check",
                        lambda entries: {"claims": entries, "labels": [], "adopted": False, "problems": []})
    assert check("ownership", settings())["status"] == "pass"
    monkeypatch.delitem(PF.__salt__, "litellm_owner.check")
    assert check("ownership", settings())["status"] == "skip"


def test_the_evidence_directories_a_run_creates_are_recorded_as_the_formulas(fake_checks, tmp_path, monkeypatch):
    evidence = tmp_path / "store" / "evidence"
    noted = []
    monkeypatch.setitem(PF.__salt__, "litellm_owner.absent", lambda path: [str(evidence), str(evidence.parent)])
    monkeypatch.setitem(PF.__salt__, "litellm_owner.note", lambda paths, key: noted.append((paths, key)))
    report = PF.run(settings=settings(), evidence_dir=str(evidence))
    assert report["evidence"].startswith(str(evidence))
    assert noted == [([str(evidence), str(evidence.parent)], "preflight:evidence_dir")]
    noted.clear()
    PF.run(settings=settings(), evidence_dir="")  # no bundle: nothing to record
    assert noted == []

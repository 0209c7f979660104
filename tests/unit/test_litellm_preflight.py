"""
Unit tests of litellm_preflight's pure parts: names, versions, /proc parsing,
the report, redaction, its pillar keys.
"""

import ipaddress
import json
import socket

import pytest

from tests.unit import preflight_common
from tests.unit.preflight_common import (
    BACKEND,
    HOST,
    HTTP,
    PROC,
    PROC_NET_TCP,
    PROC_NET_TCP6,
    REDACT,
    REPORT,
    RUN,
    SITE,
    U,
    preflight_errors,
    settings,
    TEST_MASTER_KEY,
)

# the loader's fixtures, bound in this module's scope (saltfactories asks for configure_loader_modules)
configure_loader_modules = preflight_common.configure_loader_modules
run_all = preflight_common.run_all


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

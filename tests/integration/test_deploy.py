"""
The formula on a real systemd host, in the order an operator lives it: cold
deploy with salt-ssh, traffic through the gateway, no-op re-applies (salt-ssh
and salt-call), a change that reloads once, bad pillar and a bad config that
never go live, and no secret anywhere it should not be.
"""

import copy
import json
import re
import time

import pytest

from .conftest import (
    FORMULA_IN_HOST,
    gateway_request,
    gateway_workers,
    journal_count,
    journal_cursor,
    service_show,
)

pytestmark = pytest.mark.integration

TIMINGS = {}


def _chat(port, key, model, text="ping"):
    return gateway_request(
        port,
        "POST",
        "/v1/chat/completions",
        key=key,
        body={"model": model, "messages": [{"role": "user", "content": text}], "stream": False},
    )


def _file_state(host, path):
    proc = host.run(["stat", "-c", "%U:%G %a %Y", path], check=False)
    checksum = host.run(["sha256sum", path], check=False).stdout.split(" ")[0]
    return proc.stdout.strip(), checksum


@pytest.fixture(scope="module")
def deployed(apply, host, test_site):
    """Cold deploy: bare container to a ready gateway, with salt-ssh."""
    run = apply.salt_ssh("state.apply", "litellm")
    TIMINGS["cold_salt_ssh"] = run.elapsed
    run.assert_ok()
    return run


def test_cold_deploy_converges_and_the_service_runs_as_litellm(deployed, host):
    changed = deployed.changed()
    states = deployed.states
    assert states["litellm-preflight-go"]["result"] is True
    assert states["litellm-smoke-passed"]["result"] is True
    assert "PASS" in states["litellm-smoke-passed"]["comment"]
    for state_id in (
        "litellm-package-install-user-present",
        "litellm-package-install-venv-installed",
        "litellm-config-file-config-managed",
        "litellm-config-file-env-managed",
        "litellm-service-running-unit-file-managed",
        "litellm-service-running-service-running",
    ):
        assert state_id in changed
    # uv came out of its hashed wheel from the index (not pip); only the compile list was compiled
    venv_comment = states["litellm-package-install-venv-installed"]["comment"]
    assert "uv from its wheel" in venv_comment and ", bytecode " in venv_comment, venv_comment
    assert "packages and bytecode" not in venv_comment, venv_comment
    shown = service_show(host, "ActiveState", "SubState", "MainPID", "User", "UnitFileState")
    assert shown["ActiveState"] == "active" and shown["SubState"] == "running"
    assert shown["UnitFileState"] == "enabled"
    socket = host.run(["systemctl", "show", "litellm.socket", "--property=ActiveState,UnitFileState,Listen"]).stdout
    assert "ActiveState=active" in socket and "UnitFileState=enabled" in socket, socket
    owner = host.run(["ps", "-o", "user=", "-p", shown["MainPID"]]).stdout.strip()
    assert owner == "litellm"
    shell = host.run(["getent", "passwd", "litellm"]).stdout.strip().split(":")[-1]
    assert shell == "/usr/sbin/nologin"


def test_workers_auto_runs_one_uvicorn_worker_per_core(deployed, host):
    cores = int(host.run(["nproc"]).stdout)
    mem_mib = int(host.run(["awk", "/^MemTotal:/ {print $2}", "/proc/meminfo"]).stdout) // 1024
    expected = min(cores, 4, max(1, mem_mib // 768))
    unit = host.run(["cat", "/etc/systemd/system/litellm.service"]).stdout
    assert re.search(rf"^ExecStart=.* --workers {expected}\b", unit, re.M), unit
    workers = gateway_workers(host)
    # always a supervisor, even for one worker: a reload replaces workers under it
    assert len(workers) == expected, workers


def test_the_venv_is_read_only_and_precompiled(deployed, host):
    """The service (PYTHONDONTWRITEBYTECODE, read-only venv) finds the proxy's bytecode instead of
    compiling it at every start; it cannot write into its venv."""
    pyc = host.run(["sh", "-c", "ls /opt/litellm/venv/lib/python3*/site-packages/litellm/proxy/__pycache__/"
                                "proxy_server.cpython-*.pyc"], check=False)
    assert pyc.returncode == 0, pyc.stderr
    site_packages = host.run(["sh", "-c", "ls -d /opt/litellm/venv/lib/python3*/site-packages"]).stdout.strip()
    assert host.run(["stat", "-c", "%U", site_packages]).stdout.strip() == "root"
    cannot_write = host.run(["runuser", "-u", "litellm", "--", "test", "-w", site_packages], check=False)
    assert cannot_write.returncode != 0


WATCHER = f"{FORMULA_IN_HOST}/tests/integration/opened_sources.py"
VENV_PYTHON = "/opt/litellm/venv/bin/python"


def _uncompiled(host, paths):
    return host.run([VENV_PYTHON, WATCHER, "uncompiled", *paths]).stdout.split()


def _wait_all_workers_serve(host, port, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = host.run(["cat", "/run/litellm/workers.json"], check=False).stdout
        try:
            serving = json.loads(status).get("ok") is True
            if serving and gateway_request(port, "GET", "/health/readiness", timeout=5)[0] == 200:
                return
        except (ValueError, OSError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"litellm did not serve again within {timeout} s: {status}")


def _start_watch(host, site_packages, out):
    """The watcher as a transient unit of the host, once it watches every directory."""
    host.run(["rm", "-f", out, out + ".ready"])
    host.run(["systemd-run", "--unit=litellm-test-opened-sources", "--collect", VENV_PYTHON, WATCHER, "watch",
              site_packages, out])
    deadline = time.monotonic() + 60
    while host.run(["test", "-f", out + ".ready"], check=False).returncode != 0:
        assert time.monotonic() < deadline, "the watch did not start"
        time.sleep(0.2)


def test_the_service_compiles_nothing_at_start_or_at_its_first_requests(deployed, host, test_site):
    """The release compiled only its lock's compile list (issue 17): what the service imports, as
    the real unit starts and serves, all has bytecode. Every source opened in the venv meanwhile is
    watched (inotify); a source opened without current bytecode is one Python compiled."""
    port = test_site.settings["bind_port"]
    site_packages = host.run(["sh", "-c", "echo /opt/litellm/venv/lib/python3*/site-packages"]).stdout.strip()
    # a source of the release left uncompiled (a provider no model uses): proof the watch sees compiles
    candidates = host.run(["sh", "-c", f"find {site_packages}/litellm/llms -name '*.py' | sort | head -300"]).stdout
    probe = _uncompiled(host, candidates.split())[0]
    out = "/run/litellm-test-opened-sources.txt"
    _start_watch(host, site_packages, out)
    try:
        compile_probe = f"import importlib.machinery as m; m.SourceFileLoader('p', {probe!r}).get_code('p')"
        host.run([VENV_PYTHON, "-c", compile_probe], env={"PYTHONDONTWRITEBYTECODE": "1"})
        started = time.monotonic()
        host.run(["systemctl", "restart", "litellm"])
        _wait_all_workers_serve(host, port)
        restart_s = time.monotonic() - started
        model = test_site.settings["models"][0]["name"]
        for _ in range(6):
            assert _chat(port, test_site.master_key, model)[0] == 200
            assert gateway_request(port, "GET", "/v1/models", key=test_site.master_key)[0] == 200
        time.sleep(0.5)  # the last events reach the file
    finally:
        host.run(["systemctl", "stop", "litellm-test-opened-sources"], check=False)
    opened = host.run(["cat", out]).stdout.split()
    compiled = _uncompiled(host, opened)
    print(f"\nrestart to all workers serving {restart_s:.1f} s; {len(set(opened))} sources opened, "
          f"compiled: {compiled}")
    assert probe in compiled, f"the watch missed the probe's compile of {probe}"
    assert [path for path in compiled if path != probe] == []


def test_files_have_the_right_owner_and_mode(deployed, host):
    assert _file_state(host, "/etc/litellm/litellm.env")[0].startswith("root:litellm 640 ")
    assert _file_state(host, "/etc/litellm/config.yaml")[0].startswith("root:litellm 640 ")
    assert _file_state(host, "/etc/systemd/system/litellm.service")[0].startswith("root:root 644 ")


def test_unit_is_hardened(deployed, host):
    out = host.run(["systemd-analyze", "security", "litellm.service", "--no-pager"]).stdout
    score = float(out.strip().splitlines()[-1].split("level for litellm.service:")[1].split()[0])
    TIMINGS["security_score"] = score
    assert score <= 1.5, out[-2000:]


def test_gateway_serves_chat_and_both_backends_get_traffic(deployed, test_site, backends):
    backends.reset()
    port = test_site.settings["bind_port"]
    served_by = set()
    for index in range(12):
        status, headers, body = _chat(port, test_site.master_key, "chat-small", f"hello {index}")
        assert status == 200, body[:500]
        reply = json.loads(body)["choices"][0]["message"]["content"]
        assert reply.startswith("Hello from llm0"), reply
        served_by.add(reply.split(":")[0])
    assert served_by == {"Hello from llm01", "Hello from llm02"}
    chats = [stats["requests"].get("/api/chat", 0) for stats in backends.stats()]
    assert all(count > 0 for count in chats), chats


def test_every_request_succeeds_with_one_backend_dead(deployed, test_site, backends):
    import concurrent.futures

    port = test_site.settings["bind_port"]
    backends.kill(1)
    try:
        sequential = [_chat(port, test_site.master_key, "chat-small", f"seq {i}")[0] for i in range(20)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            concurrent_codes = list(
                pool.map(lambda i: _chat(port, test_site.master_key, "chat-large", f"conc {i}")[0], range(20))
            )
    finally:
        backends.revive(1)
    assert sequential == [200] * 20
    assert concurrent_codes == [200] * 20
    # the gateway sees the revived backend healthy again (background checks)
    deadline = time.monotonic() + 30
    while True:
        status, _, body = gateway_request(port, "GET", "/health", key=test_site.master_key)
        if status == 200 and json.loads(body)["unhealthy_count"] == 0:
            break
        assert time.monotonic() < deadline, body[:500]
        time.sleep(1)


def test_models_need_the_master_key(deployed, test_site):
    port = test_site.settings["bind_port"]
    assert gateway_request(port, "GET", "/v1/models")[0] == 401
    status, _, body = gateway_request(port, "GET", "/v1/models", key=test_site.master_key)
    assert status == 200
    assert sorted(m["id"] for m in json.loads(body)["data"]) == ["chat-large", "chat-small"]


def test_second_salt_ssh_apply_changes_nothing_and_restarts_nothing(deployed, apply, host):
    pid_before = service_show(host, "MainPID")["MainPID"]
    run = apply.salt_ssh("state.apply", "litellm").assert_ok()
    TIMINGS["noop_salt_ssh"] = run.elapsed
    assert run.changed() == []
    assert service_show(host, "MainPID")["MainPID"] == pid_before


def test_salt_call_local_apply_changes_nothing(deployed, apply, host):
    pid_before = service_show(host, "MainPID")["MainPID"]
    run = apply.salt_call("state.apply", "litellm").assert_ok()
    TIMINGS["noop_salt_call"] = run.elapsed
    assert run.changed() == []
    assert service_show(host, "MainPID")["MainPID"] == pid_before


def test_test_mode_reports_changes_and_changes_nothing(deployed, apply, host, test_site):
    before = _file_state(host, "/etc/litellm/config.yaml")
    pid_before = service_show(host, "MainPID")["MainPID"]
    settings = copy.deepcopy(test_site.settings)
    settings["request_timeout"] = 300
    test_site.write(settings)
    try:
        run = apply.salt_ssh("state.apply", "litellm", "test=True")
        assert run.states["litellm-config-file-config-managed"]["result"] is None
        assert "timeout: 300" in json.dumps(run.states["litellm-config-file-config-managed"]["changes"])
        assert _file_state(host, "/etc/litellm/config.yaml") == before
        assert service_show(host, "MainPID")["MainPID"] == pid_before
    finally:
        settings["request_timeout"] = 600
        test_site.write(settings)


def test_alias_change_reloads_once_and_keeps_the_supervisor(deployed, apply, host, test_site):
    port = test_site.settings["bind_port"]
    pid_before = service_show(host, "MainPID")["MainPID"]
    cursor = journal_cursor(host)
    settings = copy.deepcopy(test_site.settings)
    settings["models"][0]["name"] = "chat-tiny"
    test_site.write(settings)
    run = apply.salt_ssh("state.apply", "litellm").assert_ok()
    TIMINGS["alias_change_apply"] = run.elapsed
    # the smoke key follows the first alias (its entry in the key table, re-read by the hook: no restart)
    assert run.changed() == ["litellm-config-file-config-managed", "litellm-config-file-keys-managed",
                             "litellm-service-running-service-running"]
    state = run.states["litellm-service-running-service-running"]
    assert state["changes"]["path"] == "reload" and "RELOADED" in state["comment"], state
    assert service_show(host, "MainPID")["MainPID"] == pid_before
    assert journal_count(host, "Reloaded litellm.service", cursor) == 1
    assert journal_count(host, "Started litellm.service", cursor) == 0
    status, _, body = gateway_request(port, "GET", "/v1/models", key=test_site.master_key)
    assert sorted(m["id"] for m in json.loads(body)["data"]) == ["chat-large", "chat-tiny"]
    assert _chat(port, test_site.master_key, "chat-tiny")[0] == 200


def test_bad_pillar_stops_the_run_before_any_change(deployed, apply, host, test_site):
    config_before = _file_state(host, "/etc/litellm/config.yaml")
    env_before = _file_state(host, "/etc/litellm/litellm.env")
    pid_before = service_show(host, "MainPID")["MainPID"]
    good = copy.deepcopy(test_site.settings)
    bad = copy.deepcopy(good)
    bad["bind_port"] = "4000x"
    bad["backends"][1] = "llm02:11434"
    test_site.write(bad)
    try:
        run = apply.salt_ssh("state.apply", "litellm")
        assert run.returncode != 0
        comment = run.states["litellm-validate-pillar-validated"]["comment"]
        assert "litellm:bind_port: must be an integer from 1 to 65535, got '4000x'" in comment
        assert "litellm:backends:1: must start with http:// or https://" in comment
        assert [s for s, v in run.states.items() if v.get("changes")] == []
    finally:
        test_site.write(good)
    assert _file_state(host, "/etc/litellm/config.yaml") == config_before
    assert _file_state(host, "/etc/litellm/litellm.env") == env_before
    assert service_show(host, "MainPID")["MainPID"] == pid_before


def test_config_litellm_rejects_never_goes_live(deployed, apply, host, test_site):
    port = test_site.settings["bind_port"]
    config_before = _file_state(host, "/etc/litellm/config.yaml")
    pid_before = service_show(host, "MainPID")["MainPID"]
    good = copy.deepcopy(test_site.settings)
    bad = copy.deepcopy(good)
    # Valid pillar, but LiteLLM itself refuses this config.
    bad["router_settings"] = {"routing_strategy": "fastest-please"}
    test_site.write(bad)
    try:
        run = apply.salt_ssh("state.apply", "litellm")
        assert run.returncode != 0
        state = run.states["litellm-config-file-config-managed"]
        assert state["result"] is False
        assert "LiteLLM rejected the new config" in state["comment"], state["comment"]
        assert "fastest-please" in state["comment"], state["comment"]
        assert run.states["litellm-service-running-service-running"]["result"] is False
    finally:
        test_site.write(good)
    assert _file_state(host, "/etc/litellm/config.yaml") == config_before
    assert service_show(host, "MainPID")["MainPID"] == pid_before
    assert _chat(port, test_site.master_key, "chat-large")[0] == 200


def test_master_key_is_never_exposed(deployed, apply, host, test_site, outputs, site_dir):
    key = test_site.master_key
    # the controller's files (salt-ssh cache, job returns, logs): only ciphertext
    # (site_dir/host holds the test host's own disk, checked below from inside)
    on_controller = [
        str(path)
        for path in site_dir.rglob("*")
        if path.is_file()
        and not path.is_symlink()
        and (site_dir / "host") not in path.parents
        and key.encode() in path.read_bytes()
    ]
    assert on_controller == []
    # state outputs of every run of this session (salt-ssh and salt-call)
    assert outputs and all(key not in text for text in outputs if text)
    # the journal
    journal = host.run(["journalctl", "--no-pager", "-o", "cat"]).stdout
    assert key not in journal
    # process arguments of every process in the host
    cmdlines = host.run(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"]).stdout
    assert key not in cmdlines
    # files any unprivileged user can read (the key goes to grep on stdin, never argv)
    readable = host.run(
        [
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "grep", "-rlF", "--devices=skip", "-f", "/dev/stdin",
            "/etc", "/opt", "/var", "/tmp", "/srv", "/home", "/root", "/run", "/usr/local",
        ],
        input=key + "\n",
        check=False,
    )
    assert readable.stdout.strip() == "", readable.stdout
    # the env file holds it, readable by root and the service group only
    counted = host.run(["grep", "-c", "-F", "-f", "/dev/stdin", "/etc/litellm/litellm.env"], input=key + "\n")
    assert counted.stdout.strip() == "1"


def test_clean_removes_everything_the_formula_added(deployed, apply, host):
    run = apply.salt_ssh("state.apply", "litellm.clean").assert_ok()
    assert "litellm-service-clean-owned-removed" in run.changed()
    for path in ("/etc/litellm", "/opt/litellm/venv", "/etc/systemd/system/litellm.service",
                 "/etc/systemd/system/litellm.socket",
                 "/var/lib/litellm", "/var/cache/litellm", "/var/cache/litellm-salt", "/opt/litellm",
                 "/var/lib/litellm-salt"):
        assert host.run(["test", "-e", path], check=False).returncode != 0, f"{path} left behind"
    assert host.run(["getent", "passwd", "litellm"], check=False).returncode != 0
    assert host.run(["getent", "group", "litellm"], check=False).returncode != 0
    assert host.run(["systemctl", "is-active", "litellm"], check=False).stdout.strip() in ("inactive", "unknown")
    assert host.run(["systemctl", "is-active", "litellm.socket"], check=False).stdout.strip() in ("inactive", "unknown")
    again = apply.salt_ssh("state.apply", "litellm.clean").assert_ok()
    assert again.changed() == []


@pytest.fixture(scope="module", autouse=True)
def report_timings():
    """Prints what this run measured, for the closing notes (not a benchmark)."""
    yield
    print("\nINTEGRATION TIMINGS " + json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}))

"""
The seed's five steps, each one command from the controller through salt-ssh
(and the same through salt-call --local on the host), on one real systemd host
of this module: site setup (scripts/new-site) from nothing to a passing
preflight, then preflight, validate/render, apply, smoke, release status and
rollback; each healthy and with one failure, each a structured answer and
never a traceback. The generated master key works with the openai SDK and is
in no file but the encrypted pillar and the target's env file.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import salt.utils.yaml

from tests.conftest import REPO
from tests.harness import site
from tests.harness.common import CONTAINER_PATH
from tests.harness.ssh import CLIENT_OPTIONS, CONTROL_OPTIONS

from .conftest import TARGET, Applier, gateway_host, make_controller

pytestmark = pytest.mark.integration

KEY_RE = re.compile(r"sk-[0-9a-f]{48}")


def no_traceback(run):
    assert "Traceback" not in run.text and "An Exception occurred" not in run.text, run.text[-3000:]
    return run


def new_site(steps, *extra, alias=TARGET):
    argv = [
        sys.executable, str(REPO / "scripts/new-site"), alias, "--host", "127.0.0.1",
        "--port", str(steps.host.ssh_port), "--priv", str(steps.host.client_key),
        "--roster-option", f"set_path={CONTAINER_PATH}",
        "--roster-option", "ssh_options=" + ",".join([*CLIENT_OPTIONS, *CONTROL_OPTIONS]),
        "--bind-host", "127.0.0.1", "--bind-port", str(steps.port),
        "--ca-bundle", "/etc/litellm-test/ca-bundle.crt",
        "--config-dir", str(steps.controller.config_dir), "--roster", str(steps.roster),
        # salt-factories' master config lists pillar roots of its own too: name this site's
        "--pillar-dir", str(steps.pillar_dir), "--gpg-home", str(steps.root / "gpg"),
        *extra,
    ]
    # no terminal (start_new_session): the key is shown on stderr, once
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, start_new_session=True,
                          stdin=subprocess.DEVNULL)


class Steps:
    """This module's host, controller and site (made by new-site)."""

    def __init__(self, root, host, controller, outputs):
        self.root = root
        self.host = host
        self.controller = controller
        self.roster = root / "roster"
        self.pillar_dir = root / "pillar"
        self.port = site.free_port()
        self.key = None
        self.apply = None
        self.outputs = outputs

    def connect(self):
        cli = self.controller.salt_ssh_cli(roster_file=str(self.roster), client_key=str(self.host.client_key),
                                           ssh_user="root", timeout=900)
        self.apply = Applier(cli, self.host, self.outputs)

    def pillar(self):
        return salt.utils.yaml.safe_load((self.pillar_dir / "litellm.sls").read_text())

    def write_pillar(self, data):
        (self.pillar_dir / "litellm.sls").write_text(salt.utils.yaml.safe_dump(data))


@pytest.fixture(scope="module")
def steps(rootfs, salt_factories, tmp_path_factory, backends):
    root = tmp_path_factory.mktemp("steps")
    (root / "pillar").mkdir()
    gpg_home = root / "gpg"  # empty: new-site makes the controller's key
    gpg_home.mkdir(mode=0o700)
    with gateway_host(rootfs, "litellm-steps", root / "pillar", gpg_home, root / "host") as host:
        site.GPG_HOMES.append(gpg_home)
        controller = make_controller(salt_factories, "steps", root / "controller", root / "pillar", gpg_home)
        yield Steps(root, host, controller, [])


# --- step 2 first: site setup from nothing --------------------------------------------------


def test_site_setup_refuses_bad_input_and_writes_nothing(steps, backends):
    bad = new_site(steps, "--backend", "htp://llm01:11434", "--model", "a=llama3.2:3b", "--model", "a=qwen2.5:7b")
    assert bad.returncode == 2, bad.stderr
    assert "litellm:backends:0: must start with http:// or https://" in bad.stderr
    assert "litellm:models:1:name: duplicate alias 'a'" in bad.stderr
    unreachable = subprocess.run(
        [sys.executable, str(REPO / "scripts/new-site"), "gw9", "--host", "127.0.0.1", "--port", "1",
         "--backend", backends.urls[0], "--model", "a=llama3.2:3b", "--config-dir", str(steps.controller.config_dir),
         "--roster", str(steps.roster)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert unreachable.returncode == 2 and "roster:gw9:host: 127.0.0.1:1 is not reachable" in unreachable.stderr
    for proc in (bad, unreachable):
        assert "Traceback" not in proc.stderr and "nothing written" in proc.stderr
    assert list(steps.pillar_dir.iterdir()) == [] and not steps.roster.exists()


def test_site_setup_from_nothing_to_a_passing_preflight(steps, backends):
    proc = new_site(steps, "--backend", backends.urls[0], "--backend", backends.urls[1],
                    "--model", "chat-small=llama3.2:3b", "--model", "chat-large=qwen2.5:7b")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "preflight: GO" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    keys = KEY_RE.findall(proc.stderr)
    assert len(set(keys)) == 1 and proc.stderr.count(keys[0]) == 1, "the key is shown exactly once"
    assert keys[0] not in proc.stdout
    steps.key = keys[0]
    secrets_file = steps.pillar_dir / "litellm_secrets.sls"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    assert "BEGIN PGP MESSAGE" in secrets_file.read_text() and steps.key not in secrets_file.read_text()
    roster = salt.utils.yaml.safe_load(steps.roster.read_text())
    assert "ControlMaster=auto" in roster[TARGET]["ssh_options"]
    assert steps.pillar()["litellm"]["backends"] == backends.urls
    # it never overwrites: the same site again is refused, naming what exists
    again = new_site(steps, "--backend", backends.urls[0], "--model", "x=llama3.2:3b")
    assert again.returncode == 2 and "duplicate alias" in again.stderr and "exists" in again.stderr
    assert proc.stderr.count(steps.key) == 1 and steps.key not in again.stderr
    steps.connect()


# --- step 1: preflight ------------------------------------------------------------------------


def test_preflight_over_salt_ssh_and_salt_call(steps, backends):
    for run in (steps.apply.salt_ssh("litellm_preflight.run"), steps.apply.salt_call("litellm_preflight.run")):
        report = no_traceback(run).data
        assert report["result"] == "GO", report
        assert {"result", "checks", "failed", "warnings", "duration_ms", "evidence"} <= set(report)
        assert {c["name"]: c["status"] for c in report["checks"]}["pillar"] == "pass"
    one = no_traceback(steps.apply.salt_ssh("litellm_preflight.backends")).data
    assert one["name"] == "backends" and one["status"] == "pass", one


def test_preflight_failure_names_the_check(steps):
    good = steps.pillar()
    bad = json.loads(json.dumps(good))
    bad["litellm"]["backends"] = [f"http://127.0.0.1:{site.free_port()}"]
    steps.write_pillar(bad)
    try:
        for run in (steps.apply.salt_ssh("litellm_preflight.run"), steps.apply.salt_call("litellm_preflight.run")):
            report = no_traceback(run).data
            assert report["result"] == "NO-GO" and report["failed"] == ["backends"], report["failed"]
    finally:
        steps.write_pillar(good)


def test_control_master_dropped_by_a_roster_entry_is_a_warning(steps, salt_factories):
    overrides = site.master_config(steps.root / "cm", steps.pillar_dir, steps.root / "gpg")
    overrides["ssh_options"] = list(CONTROL_OPTIONS)
    (steps.root / "cm").mkdir(exist_ok=True)
    controller = salt_factories.salt_master_daemon("steps-cm", overrides=overrides)
    roster = salt.utils.yaml.safe_load(steps.roster.read_text())
    roster[TARGET]["ssh_options"] = list(CLIENT_OPTIONS)  # its own options, without ControlMaster
    roster_file = steps.root / "roster-no-cm"
    roster_file.write_text(salt.utils.yaml.safe_dump(roster))
    cli = controller.salt_ssh_cli(roster_file=str(roster_file), client_key=str(steps.host.client_key),
                                  ssh_user="root", timeout=900)
    report = no_traceback(Applier(cli, steps.host, steps.outputs).salt_ssh("litellm_preflight.run")).data
    ssh = {c["name"]: c for c in report["checks"]}["ssh"]
    assert ssh["status"] == "warn" and "without ControlMaster" in ssh["detail"], ssh
    assert report["result"] == "GO"


# --- step 3: validate / render ------------------------------------------------------------------


def test_validate_and_render_over_salt_ssh_and_salt_call(steps):
    for call in (steps.apply.salt_ssh, steps.apply.salt_call):
        assert no_traceback(call("litellm_config.validate")).data == {"valid": True, "errors": []}
        run = no_traceback(call("litellm_config.render"))
        assert run.data["valid"] is True, run.text[-2000:]
        assert {"config", "env", "keys", "unit", "socket"} <= set(run.data), run.text[-2000:]
        assert f"ListenStream=127.0.0.1:{steps.port}" in run.data["socket"] and "--fd 3" in run.data["unit"]
        assert "chat-small" in run.data["config"]
        assert steps.key not in run.text


def test_validate_failure_names_the_key(steps):
    good = steps.pillar()
    bad = json.loads(json.dumps(good))
    bad["litellm"]["bind_port"] = 70000
    steps.write_pillar(bad)
    try:
        for call in (steps.apply.salt_ssh, steps.apply.salt_call):
            for function in ("litellm_config.validate", "litellm_config.render"):
                answer = no_traceback(call(function)).data
                assert answer["valid"] is False and any(e.startswith("litellm:bind_port:") for e in answer["errors"])
    finally:
        steps.write_pillar(good)


def test_without_the_wrapper_a_raw_call_says_what_to_run(steps, salt_factories):
    overrides = site.master_config(steps.root / "raw", steps.pillar_dir, steps.root / "gpg")
    overrides.pop("wrapper_dirs")
    overrides["ssh_minion_opts"].pop("wrapper_dirs")
    (steps.root / "raw").mkdir(exist_ok=True)
    controller = salt_factories.salt_master_daemon("steps-raw", overrides=overrides)
    cli = controller.salt_ssh_cli(roster_file=str(steps.roster), client_key=str(steps.host.client_key),
                                  ssh_user="root", timeout=900)
    answer = no_traceback(Applier(cli, steps.host, steps.outputs).salt_ssh("litellm_config.render")).data
    assert answer["valid"] is False and len(answer["errors"]) == 1
    assert "salt-ssh <target> state.sls litellm.validate" in answer["errors"][0]


# --- step 4: apply; step 5: smoke -----------------------------------------------------------------


def test_apply_refuses_bad_pillar_then_deploys(steps):
    good = steps.pillar()
    bad = json.loads(json.dumps(good))
    bad["litellm"]["backends"] = ["ftp://llm01"]
    steps.write_pillar(bad)
    try:
        run = no_traceback(steps.apply.salt_ssh("state.apply", "litellm"))
        assert run.returncode != 0 and run.changed() == []
        assert "litellm:backends:0:" in run.failed()["litellm-validate-pillar-validated"]
    finally:
        steps.write_pillar(good)
    # Valid pillar that LiteLLM itself refuses, on a first deploy: no live config to keep, so the config
    # check is the service's (its launcher, before the first worker): the start fails with the verdict.
    rejected = json.loads(json.dumps(good))
    rejected["litellm"]["router_settings"] = {"routing_strategy": "fastest-please"}
    steps.write_pillar(rejected)
    try:
        run = no_traceback(steps.apply.salt_ssh("state.apply", "litellm"))
        assert run.returncode != 0
        service = run.states["litellm-service-running-service-running"]
        assert service["result"] is False, service
        assert "LiteLLM rejected the config" in service["comment"] and "fastest-please" in service["comment"]
        assert run.states["litellm-config-file-config-managed"]["result"] is True  # no second import of LiteLLM
        shown = steps.host.run(["systemctl", "show", "litellm.service", "-p", "ActiveState", "-p", "NRestarts"])
        # not restarted (exit 78), then stopped with its socket (which clears "failed"): not active
        assert "NRestarts=0" in shown.stdout and "ActiveState=active" not in shown.stdout, shown.stdout
        # nothing serves: the socket is stopped too, so a client is refused instead of held in its backlog
        assert "litellm.socket stopped" in service["comment"], service["comment"]
        socket = steps.host.run(["systemctl", "show", "litellm.socket", "-p", "ActiveState"]).stdout
        assert "ActiveState=inactive" in socket or "ActiveState=failed" in socket, socket
        port = good["litellm"]["bind_port"]
        connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)"
        refused = steps.host.run(["python3", "-c", connect], check=False)
        assert refused.returncode != 0 and "ConnectionRefusedError" in refused.stderr, refused.stderr
    finally:
        steps.write_pillar(good)
    # the good pillar: the rejected config is live now, so LiteLLM checks the new one before it replaces it
    no_traceback(steps.apply.salt_ssh("state.apply", "litellm")).assert_ok()


def test_smoke_over_salt_ssh_and_salt_call(steps):
    for call in (steps.apply.salt_ssh, steps.apply.salt_call):
        report = no_traceback(call("litellm_smoke.run")).data
        assert report["result"] == "PASS", report.get("summary")
        assert steps.key not in json.dumps(report)
    down = no_traceback(steps.apply.salt_ssh("litellm_smoke.run", f"url=http://127.0.0.1:{site.free_port()}")).data
    assert down["result"] == "FAIL" and isinstance(down["checks"], list), down.get("summary")


def test_the_key_works_with_the_openai_sdk(steps):
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{steps.port}/v1", api_key=steps.key, max_retries=0)
    reply = client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    wrong = openai.OpenAI(base_url=f"http://127.0.0.1:{steps.port}/v1", api_key="sk-" + "1" * 48, max_retries=0)
    with pytest.raises(openai.APIStatusError):
        wrong.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "hi"}])


# --- release status and rollback -------------------------------------------------------------------


def test_release_status_and_rollback(steps):
    for call in (steps.apply.salt_ssh, steps.apply.salt_call):
        status = no_traceback(call("litellm_release.status")).data
        assert len(status["releases"]) == 1 and status["releases"][0]["live"] is True, status
    # one release only: nothing older to go back to, said as an answer
    refused = no_traceback(steps.apply.salt_ssh("litellm_config.rollback")).data
    assert refused["action"] != "rolled_back" and refused.get("reason"), refused
    changed = steps.pillar()
    changed["litellm"]["models"].append({"name": "chat-extra", "provider": "ollama", "model": "llama3.2:3b"})
    steps.write_pillar(changed)
    no_traceback(steps.apply.salt_ssh("state.apply", "litellm")).assert_ok()
    run = no_traceback(steps.apply.salt_ssh("litellm_config.rollback"))
    assert run.data["action"] == "rolled_back" and run.data["smoke_result"] == "PASS", run.data
    assert steps.key not in run.text


def test_the_key_is_in_no_file_but_the_encrypted_pillar_and_the_env_file(steps):
    assert steps.key
    # the controller: this module's site, controllers and caches
    found = subprocess.run(["grep", "-rlF", steps.key, str(steps.root)], capture_output=True, text=True).stdout
    assert [line for line in found.splitlines() if "/host/" not in line] == []
    # the target: every file written since boot is in its overlay's upper directory
    upper = steps.host.instance_dir / "upper"
    assert upper.is_dir(), "the host's overlay upper directory"
    found = subprocess.run(["grep", "-rlF", steps.key, str(upper)], capture_output=True, text=True).stdout
    paths = sorted("/" + os.path.relpath(p, upper) for p in found.splitlines())
    assert "/etc/litellm/litellm.env" in paths
    others = [p for p in paths if p != "/etc/litellm/litellm.env"
              and not re.match(r"^/var/lib/litellm-salt/known-good/[^/]+/litellm\.env$", p)]
    assert others == [], others
    for text in steps.outputs:
        assert steps.key not in text

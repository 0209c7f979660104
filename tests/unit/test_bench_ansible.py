"""bench/_ansible.py: the seed-style Ansible baseline's playbook, inventory and phase split (pure parts)."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

_ansible = pytest.importorskip("_ansible")

SETTINGS = {
    "bind_host": "127.0.0.1",
    "bind_port": 4123,
    "backends": ["http://127.0.0.1:1001", "http://127.0.0.1:1002"],
    "models": [
        {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
        {"name": "chat-large", "provider": "ollama", "model": "qwen2.5:7b"},
    ],
}


def tasks_by_name(play):
    return {task["name"]: task for task in play["tasks"]}


def test_config_has_one_entry_per_model_and_backend():
    config = _ansible.litellm_config(SETTINGS["backends"], SETTINGS["models"])
    pairs = [(e["model_name"], e["litellm_params"]["model"], e["litellm_params"]["api_base"])
             for e in config["model_list"]]
    assert pairs == [
        ("chat-small", "ollama/llama3.2:3b", "http://127.0.0.1:1001"),
        ("chat-small", "ollama/llama3.2:3b", "http://127.0.0.1:1002"),
        ("chat-large", "ollama/qwen2.5:7b", "http://127.0.0.1:1001"),
        ("chat-large", "ollama/qwen2.5:7b", "http://127.0.0.1:1002"),
    ]
    # the key is read from the env file at start, never written into config.yaml
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"


def test_playbook_is_the_seed_role_in_order():
    (play,) = _ansible.playbook(SETTINGS, "1.108.7", "/ca.crt")
    names = [task["name"] for task in play["tasks"]]
    assert names == [
        "litellm group",
        "litellm system user, no login shell",
        "python3 -m venv",
        "pip install litellm[proxy]",
        "config directory",
        "config.yaml",
        "litellm.env",
        "systemd unit",
        "daemon-reload, enable, start",
        "wait for /health/readiness",
    ]
    tasks = tasks_by_name(play)
    assert tasks["litellm system user, no login shell"]["ansible.builtin.user"]["shell"] == "/usr/sbin/nologin"
    pip = tasks["pip install litellm[proxy]"]
    assert "'litellm[proxy]==1.108.7'" in pip["ansible.builtin.command"]["cmd"]
    assert pip["environment"]["PIP_CERT"] == "/ca.crt"
    for name in ("config.yaml", "litellm.env"):
        copy = tasks[name]["ansible.builtin.copy"]
        assert (copy["mode"], copy["owner"], copy["group"]) == ("0640", "root", "litellm")
    start = tasks["daemon-reload, enable, start"]["ansible.builtin.systemd_service"]
    assert start["daemon_reload"] is True and start["state"] == "started"
    assert tasks["wait for /health/readiness"]["ansible.builtin.uri"]["url"] == "http://127.0.0.1:4123/health/readiness"


def test_the_master_key_stays_out_of_the_playbook_and_the_log():
    (play,) = _ansible.playbook(SETTINGS, "1.108.7", "/ca.crt")
    env_task = tasks_by_name(play)["litellm.env"]
    assert env_task["no_log"] is True
    assert "{{ litellm_master_key }}" in env_task["ansible.builtin.copy"]["content"]


def test_unit_is_hardened_and_runs_as_the_service_user():
    unit = _ansible.unit_text("127.0.0.1", 4123).splitlines()
    for line in ("User=litellm", "NoNewPrivileges=true", "ProtectSystem=strict", "ProtectHome=true",
                 "PrivateTmp=true", "EnvironmentFile=/etc/litellm/litellm.env"):
        assert line in unit
    assert "ExecStart=/opt/litellm/venv/bin/litellm --config /etc/litellm/config.yaml --host 127.0.0.1 --port 4123" \
        in unit


def test_inventory_reaches_the_container_sshd_as_root():
    host = _ansible.inventory(2222, "/k/id")["all"]["hosts"]["gateway"]
    assert (host["ansible_host"], host["ansible_port"], host["ansible_user"]) == ("127.0.0.1", 2222, "root")
    assert host["ansible_ssh_private_key_file"] == "/k/id"


def test_phases_from_junit_sums_tasks_by_phase():
    xml = """<?xml version="1.0" ?>
<testsuites><testsuite name="playbook">
<testcase name="[gateway] hx_litellm_proxy (seed-style): litellm group" time="0.5"/>
<testcase name="[gateway] hx_litellm_proxy (seed-style): litellm system user, no login shell" time="0.7"/>
<testcase name="[gateway] hx_litellm_proxy (seed-style): python3 -m venv" time="3.0"/>
<testcase name="[gateway] hx_litellm_proxy (seed-style): pip install litellm[proxy]" time="40.0"/>
<testcase name="[gateway] hx_litellm_proxy (seed-style): config.yaml" time="1.0"/>
<testcase name="[gateway] hx_litellm_proxy (seed-style): daemon-reload, enable, start" time="1.5"/>
<testcase name="[gateway] hx_litellm_proxy (seed-style): wait for /health/readiness" time="6.0"/>
<testcase name="[gateway] hx_litellm_proxy (seed-style): something else" time="0.25"/>
</testsuite></testsuites>"""
    phases = _ansible.phases_from_junit(xml)
    assert phases == pytest.approx({
        "OS packages (user, pkg)": 1.2,
        "venv install": 43.0,
        "config": 1.0,
        "start to ready": 7.5,
        "other tasks": 0.25,
    })

"""
The seed-style Ansible deployment, as a baseline for bench/deploy.py (not a benchmark itself).

The original deployment was an Ansible role (``hx_litellm_proxy``: user, venv,
config, env file, systemd unit, restart handler). This is its steps as one
playbook, run with ansible-core from the package index (installed once into
the bench's own venv, ``.state/bench/ansible-venv``; not Debian's ansible)
over ssh to the container's sshd, as salt-ssh reaches it:

- a ``litellm`` system user and group, no login shell;
- ``python3 -m venv`` and ``pip install 'litellm[proxy]==<version>'`` (pip's
  defaults: bytecode compiled, cold cache);
- ``/etc/litellm/config.yaml`` (0640, one ``model_list`` entry per model x
  backend) and ``/etc/litellm/litellm.env`` (0640, the master key; ``no_log``);
- a hardened systemd unit, daemon-reload, start, then ``/health/readiness``.

The role's restart handler is left out: on a cold deploy it would restart the
service once more after the first start, which only makes the baseline slower.

Timings per task come from ansible-core's own ``junit`` callback. The pure
parts (playbook, inventory, config, unit, phase split) are unit-tested in
tests/unit/test_bench_ansible.py.
"""

import json
import os
import shlex
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ANSIBLE_CORE = "ansible-core==2.19.14"  # the newest ansible-core whose controller runs on Python 3.11
VENV_DIR = "/opt/litellm/venv"
CONFIG_DIR = "/etc/litellm"
UNIT_PATH = "/etc/systemd/system/litellm.service"

#: task name -> phase label of the table (same labels as the formula's phases where they match)
PHASE_OF_TASK = {
    "litellm group": "OS packages (user, pkg)",
    "litellm system user, no login shell": "OS packages (user, pkg)",
    "python3 -m venv": "venv install",
    "pip install litellm[proxy]": "venv install",
    "config directory": "config",
    "config.yaml": "config",
    "litellm.env": "config",
    "systemd unit": "start to ready",
    "daemon-reload, enable, start": "start to ready",
    "wait for /health/readiness": "start to ready",
}


def litellm_config(backends, models, request_timeout=600, max_retries=2):
    """The seed's config.yaml: one model_list entry per model x backend, the key from the env."""
    model_list = [
        {
            "model_name": model["name"],
            "litellm_params": {
                "model": f"{model.get('provider', 'ollama')}/{model['model']}",
                "api_base": backend,
            },
        }
        for model in models
        for backend in backends
    ]
    return {
        "model_list": model_list,
        "litellm_settings": {"request_timeout": request_timeout, "num_retries": max_retries},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


def unit_text(bind_host, bind_port):
    """The seed's hardened unit (the hardening the original design names, plus the usual set)."""
    return "\n".join([
        "[Unit]",
        "Description=LiteLLM proxy",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "User=litellm",
        "Group=litellm",
        f"EnvironmentFile={CONFIG_DIR}/litellm.env",
        "Environment=HOME=/var/lib/litellm",
        f"ExecStart={VENV_DIR}/bin/litellm --config {CONFIG_DIR}/config.yaml --host {bind_host} --port {bind_port}",
        "Restart=on-failure",
        "StateDirectory=litellm",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ProtectHome=true",
        "PrivateTmp=true",
        "PrivateDevices=true",
        "ProtectKernelTunables=true",
        "ProtectKernelModules=true",
        "ProtectControlGroups=true",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def playbook(settings, version, ca_bundle):
    """The role's steps as one play (a list of plays, as YAML wants it; JSON is YAML)."""
    bind_host, bind_port = settings.get("bind_host", "127.0.0.1"), settings["bind_port"]
    config = litellm_config(settings["backends"], settings["models"])
    pip_env = {"PIP_CERT": ca_bundle, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    tasks = [
        {"name": "litellm group", "ansible.builtin.group": {"name": "litellm", "system": True}},
        {"name": "litellm system user, no login shell", "ansible.builtin.user": {
            "name": "litellm", "group": "litellm", "system": True, "shell": "/usr/sbin/nologin",
            "home": "/opt/litellm", "create_home": False}},
        {"name": "python3 -m venv", "ansible.builtin.command": {
            "cmd": f"python3 -m venv {VENV_DIR}", "creates": f"{VENV_DIR}/bin/python"}},
        {"name": "pip install litellm[proxy]", "environment": pip_env, "ansible.builtin.command": {
            "cmd": f"{VENV_DIR}/bin/pip install -q {shlex.quote(f'litellm[proxy]=={version}')}",
            "creates": f"{VENV_DIR}/bin/litellm"}},
        {"name": "config directory", "ansible.builtin.file": {
            "path": CONFIG_DIR, "state": "directory", "owner": "root", "group": "litellm", "mode": "0750"}},
        {"name": "config.yaml", "ansible.builtin.copy": {
            "dest": f"{CONFIG_DIR}/config.yaml", "content": "{{ litellm_config | to_nice_yaml }}",
            "owner": "root", "group": "litellm", "mode": "0640"}},
        {"name": "litellm.env", "no_log": True, "ansible.builtin.copy": {
            "dest": f"{CONFIG_DIR}/litellm.env",
            "content": "LITELLM_MASTER_KEY={{ litellm_master_key }}\nLITELLM_LOCAL_MODEL_COST_MAP=True\n",
            "owner": "root", "group": "litellm", "mode": "0640"}},
        {"name": "systemd unit", "ansible.builtin.copy": {
            "dest": UNIT_PATH, "content": unit_text(bind_host, bind_port), "mode": "0644"}},
        {"name": "daemon-reload, enable, start", "ansible.builtin.systemd_service": {
            "name": "litellm", "daemon_reload": True, "enabled": True, "state": "started"}},
        {"name": "wait for /health/readiness", "ansible.builtin.uri": {
            "url": f"http://{bind_host}:{bind_port}/health/readiness", "status_code": 200},
         "register": "ready", "until": "ready.status == 200", "retries": 600, "delay": 0.5},
    ]
    return [{
        "name": "hx_litellm_proxy (seed-style)",
        "hosts": "gateway",
        "gather_facts": True,  # the default of a play: a role's playbook gathers facts
        "vars": {"litellm_config": config},
        "tasks": tasks,
    }]


def inventory(ssh_port, client_key, host="127.0.0.1"):
    """One host ``gateway``: root over ssh to the container's sshd, no host key checks."""
    return {"all": {"hosts": {"gateway": {
        "ansible_host": host,
        "ansible_port": ssh_port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(client_key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "ansible_python_interpreter": "/usr/bin/python3",
    }}}}


def phases_from_junit(xml_text):
    """{phase label: seconds} from the junit callback's report (task names -> PHASE_OF_TASK)."""
    phases = {}
    for case in ET.fromstring(xml_text).iter("testcase"):
        name = case.get("name", "")
        task = name.split(": ", 1)[-1].split(" (", 1)[0] if ": " in name else name
        label = next((lab for t, lab in PHASE_OF_TASK.items() if task.startswith(t)), "other tasks")
        phases[label] = phases.get(label, 0.0) + float(case.get("time") or 0)
    return phases


def ensure_venv(repo, uv):
    """The bench's own venv with ansible-core (from the package index), built once."""
    venv = Path(repo) / ".state" / "bench" / "ansible-venv"
    stamp = venv / ".ansible-core"
    # bytecode compiled as `pip install ansible-core` does, and as bootstrap.sh does for Salt
    built = f"{ANSIBLE_CORE} bytecode"
    if stamp.is_file() and stamp.read_text() == built:
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
    env = dict(os.environ, UV_NATIVE_TLS="1", PIP_CONFIG_FILE="/dev/null")
    env.pop("PIP_FIND_LINKS", None)
    subprocess.run([str(uv), "pip", "install", "-q", "--compile-bytecode", "--python", str(venv / "bin/python"),
                    ANSIBLE_CORE], check=True, env=env)
    stamp.write_text(built)
    return venv


def run(bench_site, version, ca_bundle, venv):
    """Run the playbook against bench_site's host; {'total': s, 'phases': {...}, 'rc': n, 'text': ...}."""
    work = bench_site.workdir / "ansible"
    (work / "junit").mkdir(parents=True, exist_ok=True)
    (work / "playbook.yml").write_text(json.dumps(playbook(bench_site.settings, version, ca_bundle), indent=1))
    (work / "inventory.yml").write_text(json.dumps(
        inventory(bench_site.host.ssh_port, bench_site.host.client_key), indent=1))
    extra = work / "secret.json"  # the master key reaches ansible in a 0600 file, never argv
    extra.touch(mode=0o600)
    extra.write_text(json.dumps({"litellm_master_key": bench_site.master_key}))
    env = dict(
        os.environ,
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_CALLBACKS_ENABLED="junit",
        JUNIT_OUTPUT_DIR=str(work / "junit"),
        JUNIT_HIDE_TASK_ARGUMENTS="true",
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
        ANSIBLE_HOME=str(work / "home"),
        ANSIBLE_NOCOLOR="1",
        # ansible's default ControlPersist master, where BenchSite stops its masters by PID
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(bench_site.workdir),
        ANSIBLE_SSH_CONTROL_PATH="%(directory)s/cm-ansible-%%C",
    )
    argv = [str(Path(venv) / "bin/ansible-playbook"), "-i", str(work / "inventory.yml"),
            "-e", f"@{extra}", str(work / "playbook.yml")]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=1800, check=False)
    total = time.monotonic() - t0
    phases = {}
    for report in (work / "junit").glob("*.xml"):
        for label, seconds in phases_from_junit(report.read_text()).items():
            phases[label] = phases.get(label, 0.0) + seconds
    return {"total": total, "phases": phases, "rc": proc.returncode, "text": proc.stdout + proc.stderr}

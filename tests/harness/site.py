"""
A throw-away site for the demo and the integration tests: a GPG key for the
controller, a pillar tree with the master key encrypted for Salt's gpg
renderer, a salt-ssh master config and roster, and a minion config for
salt-call --local inside the test host. Stdlib and the gpg binary only.
"""

import copy
import json
import os
import secrets
import signal
import subprocess
from pathlib import Path

from .common import alive, kill, proc_start_time
from .network import free_port  # noqa: F401 - the site's ports
from .ssh import roster  # noqa: F401 - salt-ssh's roster of the site

REPO = Path(__file__).resolve().parents[2]
GPG_UID = "litellm-salt test controller <salt@litellm-salt.test>"
#: where a test host sees the formula tree, the site's pillar and GPG home (read-only binds),
#: and the minion config for salt-call --local; the roster's name of the host
FORMULA_IN_HOST = "/srv/litellm-salt"
PILLAR_IN_HOST = "/srv/litellm-pillar"
GPG_IN_HOST = "/srv/litellm-gpg"
MINION_CONF_IN_HOST = "/etc/litellm-test/salt"
TARGET = "gateway"


def new_master_key():
    return "sk-" + secrets.token_hex(24)


#: every GPG home made here: gpg starts an agent in each, which stop_gpg_agents() stops
GPG_HOMES: list[Path] = []
#: in each GPG home: the process that made it, so that a later run can stop the agent of a killed one
GPG_OWNER = ".litellm-salt-owner.json"


def stop_gpg_agents():
    """Stop the gpg-agent of every GPG home made by make_gpg_home (they outlive gpg)."""
    while GPG_HOMES:
        home = GPG_HOMES.pop()
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)


def _gpg_agents(proc=Path("/proc")):
    """(pid, start, homedir) of every running gpg-agent started with --homedir."""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv[0].endswith(b"gpg-agent") or b"--homedir" not in argv[:-1]:
            continue
        pid = int(entry.name)
        yield pid, proc_start_time(pid), Path(os.fsdecode(argv[argv.index(b"--homedir") + 1]))


def reap_stale_gpg_agents():
    """Stop, by PID, the gpg-agent of every GPG home made by make_gpg_home whose maker is gone (a run
    killed before its pytest_sessionfinish). Agents of homes without the record are not ours: left."""
    stopped = []
    for pid, start, home in _gpg_agents():
        try:
            owner = json.loads((home / GPG_OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not alive(owner.get("pid"), owner.get("start")) and kill(pid, start, signal.SIGTERM):
            stopped.append(pid)
    return stopped


def make_gpg_home(path):
    """A GPG home with one key without passphrase (the controller's)."""
    path = Path(path)
    GPG_HOMES.append(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    (path / GPG_OWNER).write_text(json.dumps({"pid": os.getpid(), "start": proc_start_time(os.getpid())}))
    listed = subprocess.run(
        ["gpg", "--homedir", str(path), "--batch", "--list-secret-keys", GPG_UID],
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        subprocess.run(
            [
                "gpg", "--homedir", str(path), "--batch", "--passphrase", "",
                "--quick-gen-key", GPG_UID, "default", "default", "never",
            ],
            capture_output=True,
            check=True,
        )
    return path


def encrypt(gpg_home, plaintext):
    """ASCII-armoured ciphertext of ``plaintext`` (given on stdin, never argv)."""
    return subprocess.run(
        [
            "gpg", "--homedir", str(gpg_home), "--batch", "--yes", "--armor",
            "--trust-model", "always", "--encrypt", "--recipient", GPG_UID,
        ],
        input=plaintext.encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()


def secrets_sls(gpg_home, master_key):
    """The text of litellm_secrets.sls, as scripts/encrypt-secret.sh writes it."""
    cipher = encrypt(gpg_home, master_key)
    body = "\n".join("    " + line if line else "" for line in cipher.splitlines())
    return f"#!yaml|gpg\nlitellm:\n  master_key: |\n{body}\n"


def append_tls_key(pillar_dir, gpg_home, key):
    """Add litellm:tls:key (GPG-encrypted PEM) to litellm_secrets.sls, beside the master key."""
    cipher = encrypt(gpg_home, key)
    body = "\n".join("      " + line if line else "" for line in cipher.splitlines())
    with open(Path(pillar_dir) / "litellm_secrets.sls", "a") as handle:
        handle.write(f"  tls:\n    key: |\n{body}\n")


def write_pillar(pillar_dir, settings, gpg_home, master_key):
    """top.sls + litellm.sls (site data, as JSON which is YAML) + encrypted secrets."""
    pillar_dir = Path(pillar_dir)
    pillar_dir.mkdir(parents=True, exist_ok=True)
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - litellm\n    - litellm_secrets\n")
    (pillar_dir / "litellm.sls").write_text(json.dumps({"litellm": settings}, indent=2) + "\n")
    secret_file = pillar_dir / "litellm_secrets.sls"
    secret_file.write_text(secrets_sls(gpg_home, master_key))
    os.chmod(secret_file, 0o600)
    return pillar_dir


def site_settings(backends, bind_port, models=None, ca_bundle="/etc/litellm-test/ca-bundle.crt", **extra):
    """Pillar `litellm:` of the local test site (stand-in backends on loopback)."""
    settings = {
        "bind_host": "127.0.0.1",
        "bind_port": bind_port,
        "backends": list(backends),
        "models": models
        or [
            {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
            {"name": "chat-large", "provider": "ollama", "model": "qwen2.5:7b"},
        ],
        "ca_bundle": ca_bundle,
        "health_check_interval": 5,
        "service": {"ready_timeout": 180},
    }
    settings.update(extra)
    return settings


def settings_with(base, **changes):
    """A copy of ``base`` (site settings) with ``a__b=value`` set at litellm:a:b."""
    settings = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = settings
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return settings


def master_config(root_dir, pillar_dir, gpg_home):
    """Options for the controller (salt-ssh): formula tree, pillar, GPG."""
    return {
        "root_dir": str(root_dir),
        "file_roots": {"base": [str(REPO / "salt")]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "gpg_keydir": str(gpg_home),
        "gpg_decrypt_must_succeed": True,
        "ssh_log_file": str(Path(root_dir) / "ssh.log"),
        "log_level_logfile": "warning",
        # as etc/salt/master: the formula's salt-ssh wrappers (validate, render, preflight run on the
        # controller with the state tree and pillar), named again for the target's options, which
        # salt-ssh 3008 reloads the wrappers with; grains computed at most every 5 minutes
        "wrapper_dirs": [str(REPO / "_wrapper")],
        "ssh_minion_opts": {"grains_cache": True, "enable_fqdns_grains": False,
                            "wrapper_dirs": [str(REPO / "_wrapper")]},
    }


def minion_config(formula_dir, pillar_dir, gpg_home):
    """Options for salt-call --local inside the test host (paths in there)."""
    return {
        "file_client": "local",
        "file_roots": {"base": [f"{formula_dir}/salt"]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "module_dirs": [f"{formula_dir}/_modules"],
        "states_dirs": [f"{formula_dir}/_states"],
        "utils_dirs": [f"{formula_dir}/_utils"],
        "gpg_keydir": str(gpg_home),
        "gpg_decrypt_must_succeed": True,
        "log_level_logfile": "warning",
        # reverse DNS of every address of the host on each run: network access
        "enable_fqdns_grains": False,
        # as etc/salt/minion: grains computed at most every 5 minutes
        "grains_cache": True,
    }

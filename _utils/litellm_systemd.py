"""
Host readers of systemd: is it PID 1, a service's main PID and when it
started, the state of the system, and what the formula's unit file says.
Commands go through the ``run`` callable the caller gives (``cmd.run_all``).
"""

import shlex
import shutil
import subprocess


def booted(pid1_name):
    """systemd is PID 1 (``pid1_name``: /proc/1/comm) and systemctl is here."""
    return pid1_name == "systemd" and bool(shutil.which("systemctl"))


def main_pid(run, service):
    """The main PID of ``<service>.service``, or None."""
    answer = run(["systemctl", "show", "-p", "MainPID", "--value", f"{service}.service"], timeout=5)
    try:
        pid = int(str(answer.get("stdout", "")).strip())
    except ValueError:
        return None
    return pid or None


def unit_states(run, units):
    """``{unit: {"active": ActiveState, "enabled": UnitFileState}}`` of ``units``, from one
    ``systemctl show`` (a unit systemd does not know: inactive, not enabled)."""
    answer = run(["systemctl", "show", "-p", "ActiveState", "-p", "UnitFileState", *units], timeout=15)
    return parse_unit_states(str(answer.get("stdout") or ""), units)


def parse_unit_states(text, units):
    """``unit_states`` of ``systemctl show`` output: one block per unit, in the order asked, blank-line separated."""
    found = {unit: {"active": "inactive", "enabled": ""} for unit in units}
    blocks = [block for block in text.strip().split("\n\n") if block.strip()]
    for unit, block in zip(units, blocks):
        shown = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        found[unit] = {"active": shown.get("ActiveState", "inactive"), "enabled": shown.get("UnitFileState", "")}
    return found


#: what the launcher logs when LiteLLM rejects the config at start (litellm_gateway.py)
CONFIG_REJECTED_WORDS = "LiteLLM rejected the config"


def start_failed(run, service, since):
    """Why ``<service>.service`` stopped trying to start after ``since`` (epoch seconds), or None
    while it runs or may still start (systemd restarts it): the launcher's verdict on the config
    when that was it, else systemd's result."""
    answer = run(["systemctl", "show", "-p", "ActiveState", "-p", "Result", f"{service}.service"], timeout=5)
    shown = dict(line.split("=", 1) for line in str(answer.get("stdout") or "").splitlines() if "=" in line)
    if shown.get("ActiveState") != "failed":
        return None
    journal = run(["journalctl", "-u", f"{service}.service", "--since", f"@{int(since)}", "-o", "cat",
                   "--no-pager", "-n", "200"], timeout=15)
    said = [line for line in str(journal.get("stdout") or "").splitlines() if CONFIG_REJECTED_WORDS in line]
    return said[-1].strip() if said else f"{service}.service failed (result: {shown.get('Result', 'unknown')})"


def system_state(run):
    """``systemctl is-system-running``: running, degraded, starting, ..."""
    answer = run(["systemctl", "is-system-running"], timeout=5)
    return (str(answer.get("stdout") or "").strip().splitlines() or ["unknown"])[0]


def main_process_start(service):
    """When the service's main process started (epoch seconds), or None."""
    try:
        out = subprocess.run(
            ["systemctl", "show", "-P", "ExecMainStartTimestamp", "--timestamp=unix", f"{service}.service"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return float(out[1:]) if out.startswith("@") else None


def unit_settings(text):
    """
    What the formula's unit file says about the gateway: ``{"config",
    "env_file", "bind_host", "bind_port", "venv", "group", "url"}`` (the
    ones found; ``url`` only with litellm:tls, the verified https one). Pure.
    """
    result = {}
    for raw in (text or "").splitlines():
        line = raw.strip()
        if line.startswith("EnvironmentFile="):
            result["env_file"] = line.split("=", 1)[1].strip().lstrip("-")
        elif line.startswith("Group="):
            result["group"] = line.split("=", 1)[1].strip()
        elif line.startswith("ExecStart="):
            result.update(_exec_start(line.split("=", 1)[1]))
        elif line.startswith("Environment="):
            result.update(_environment(line.split("=", 1)[1]))
        elif line.startswith("X-LiteLLM-URL="):
            result["url"] = line.split("=", 1)[1].strip()
        elif line.startswith("X-LiteLLM-Listen="):
            host, _, port = line.split("=", 1)[1].strip().rpartition(":")
            result.update(bind_host=host.strip("[]"), bind_port=port)
    if "bind_port" in result:
        try:
            result["bind_port"] = int(result["bind_port"])
        except ValueError:
            del result["bind_port"]
    return result


def _exec_start(value):
    try:
        argv = shlex.split(value.lstrip("-@+!:"))
    except ValueError:
        return {}
    found = {}
    for program in ("/bin/litellm", "/bin/python"):
        if argv and argv[0].endswith(program):
            found["venv"] = argv[0][: -len(program)]
    for flag, key in (("--config", "config"), ("--host", "bind_host"), ("--port", "bind_port")):
        if flag in argv[:-1]:
            found[key] = argv[argv.index(flag) + 1]
    return found


def _environment(value):
    """CONFIG_FILE_PATH of an Environment= line (the unit that runs uvicorn directly)."""
    try:
        pairs = [item.split("=", 1) for item in shlex.split(value) if "=" in item]
    except ValueError:
        return {}
    paths = [path for key, path in pairs if key == "CONFIG_FILE_PATH"]
    return {"config": paths[-1]} if paths else {}

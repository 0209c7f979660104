#!/usr/bin/env python3
"""
The main job on an embedded default site: build a local systemd host
(systemd-nspawn, Debian 13 trixie), start two stand-in Ollama servers on
loopback, deploy the formula with salt-ssh, and print the gateway URL.

    make demo        # up (idempotent: a second run re-applies, changes nothing)
    make demo-down   # stop the host and the backends

Everything lives under .state/demo. The master key is generated once, kept in
.state/demo/master_key (0600) and GPG-encrypted in the demo pillar.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import ollama_stub  # noqa: E402

from tests.harness import site  # noqa: E402
from tests.harness.systemd_host import DEFAULT_SUITE, salt_ssh_rootfs  # noqa: E402

STATE = REPO / ".state" / "demo"
TARGET = "gateway"
VENV_BIN = Path(sys.executable).parent


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _start_backends():
    """Two stand-in Ollama servers, detached, recorded in backends.json."""
    record = STATE / "backends.json"
    if record.exists():
        known = json.loads(record.read_text())
        if all(_pid_alive(b["pid"]) for b in known):
            return [b["url"] for b in known]
        _stop_backends()
    started = []
    for name, port in (("llm01", 11434), ("llm02", 11435)):
        if not _port_free(port):
            port = 0
        with open(STATE / f"{name}.log", "ab") as log:
            proc, url = ollama_stub.start_stub_process(name, ["llama3.2:3b", "qwen2.5:7b"], port=port, stderr=log)
        started.append({"name": name, "pid": proc.pid, "url": url})
    record.write_text(json.dumps(started))
    return [b["url"] for b in started]


def _is_backend(pid):
    """Whether pid is still one of our stubs (a recorded pid may have been reused since)."""
    try:
        return b"ollama_stub" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_backends(grace=5.0):
    """SIGTERM to each recorded stub, then wait for them (make demo-down returns with them gone)."""
    record = STATE / "backends.json"
    if not record.exists():
        return
    pids = [b["pid"] for b in json.loads(record.read_text()) if _is_backend(b["pid"])]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # gone meanwhile
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_is_backend(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in filter(_is_backend, pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    record.unlink()


def _port_free(port):
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_host(rootfs):
    """The systemd host, kept up by a detached harness process."""
    host_json = STATE / "host" / "host.json"
    if host_json.exists():
        info = json.loads(host_json.read_text())
        if _pid_alive(info.get("pid1", 0)):
            return info
    (STATE / "host").mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "tests.harness.systemd_host", "up", "--name", "litellm-demo",
            "--workdir", str(STATE / "host"), "--rootfs", str(rootfs)]
    log = open(STATE / "host.log", "ab")  # noqa: SIM115 -- handed to the detached process
    subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if host_json.exists():
            return json.loads(host_json.read_text())
        time.sleep(0.5)
    raise SystemExit(f"demo: the systemd host did not come up; see {STATE / 'host.log'}")


def _salt_ssh(controller, roster_file, client_key, *args):
    argv = [
        str(VENV_BIN / "salt-ssh"),
        f"--config-dir={controller}",
        f"--roster-file={roster_file}",
        f"--priv={client_key}",
        "--state-output=changes",
        TARGET,
        *args,
    ]
    return subprocess.run(argv, cwd=REPO, check=False)


class Steps:
    """Each step's wall time, printed at the end (issue 17: every step of a first demo measured)."""

    def __init__(self):
        self.started = self.last = time.monotonic()
        self.seconds = []

    def done(self, name):
        now = time.monotonic()
        self.seconds.append((name, now - self.last))
        self.last = now

    def summary(self):
        total = time.monotonic() - self.started
        return ", ".join(f"{name} {s:.1f} s" for name, s in self.seconds) + f"; total {total:.0f} s"


def up():
    STATE.mkdir(parents=True, exist_ok=True)
    steps = Steps()
    print(f"demo: building (or reusing) the Debian {DEFAULT_SUITE} rootfs ...", flush=True)
    # salt-ssh ships its own thin: the host needs no Salt (the tests' rootfs if cached, else one without)
    rootfs = salt_ssh_rootfs(suite=DEFAULT_SUITE)  # here, so its time shows apart
    steps.done("rootfs")
    backends = _start_backends()
    gpg_home = site.make_gpg_home(STATE / "gpg")
    key_file = STATE / "master_key"
    if not key_file.exists():
        key_file.write_text(site.new_master_key())
        key_file.chmod(0o600)
    master_key = key_file.read_text().strip()
    port_file = STATE / "gateway_port"
    if not port_file.exists():
        port_file.write_text(str(4000 if _port_free(4000) else site.free_port()))
    port = int(port_file.read_text())
    settings = site.site_settings(backends, port, bind_host="127.0.0.1")
    pillar_dir = site.write_pillar(STATE / "pillar", settings, gpg_home, master_key)
    steps.done("backends and pillar")
    info = _start_host(rootfs)
    steps.done("host")
    controller = STATE / "controller"
    controller.mkdir(exist_ok=True)
    import salt.utils.yaml

    (controller / "master").write_text(salt.utils.yaml.safe_dump(site.master_config(controller, pillar_dir, gpg_home)))
    roster_file = controller / "roster"
    roster_file.write_text(salt.utils.yaml.safe_dump(site.roster(TARGET, info["ssh_port"], info["client_key"])))
    print(f"demo: deploying with salt-ssh to {TARGET} (root@127.0.0.1:{info['ssh_port']}) ...", flush=True)
    result = _salt_ssh(controller, roster_file, info["client_key"], "state.apply", "litellm")
    steps.done("deploy (salt-ssh)")
    if result.returncode != 0:
        raise SystemExit(f"demo: the deploy failed (exit {result.returncode}); see the states above")
    url = f"http://127.0.0.1:{port}"
    print(
        f"\ndemo: steps: {steps.summary()}\n"
        f"\nGateway ready in {time.monotonic() - steps.started:.0f} s: {url}/v1  (backends: {', '.join(backends)})\n"
        f"Master key: {key_file} (0600; never printed)\n\n"
        f"  curl -s {url}/v1/chat/completions -H \"Authorization: Bearer $(cat {key_file})\" \\\n"
        f"    -H 'Content-Type: application/json' \\\n"
        f"    -d '{{\"model\": \"chat-small\", \"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}'\n\n"
        f"Re-apply: make demo (reports 0 changes).  Stop: make demo-down\n"
    )


def down():
    host_dir = STATE / "host"
    if (host_dir / "host.json").exists():
        subprocess.run([sys.executable, "-m", "tests.harness.systemd_host", "down", "--workdir", str(host_dir)],
                       cwd=REPO, check=False)
    _stop_backends()
    if (STATE / "gpg").is_dir():
        site.GPG_HOMES.append(STATE / "gpg")  # its gpg-agent, if one is left: main() stops it
    print("demo: stopped")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("demo: run as root (systemd-nspawn needs it)")
    try:
        up() if args.action == "up" else down()
    finally:
        # gpg (encrypting the pillar) and salt-ssh's gpg renderer start a gpg-agent in the
        # demo's GPG home that would outlive the demo
        site.stop_gpg_agents()


if __name__ == "__main__":
    main()

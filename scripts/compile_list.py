#!/usr/bin/env python3
"""
Write a lock's compile list (``salt/litellm/files/locks/litellm-VERSION.compile.txt``):
the files the proxy compiles from source at start and at its first requests,
recorded from real runs. ``make lock`` runs it after writing the lock.

    .venv/bin/python scripts/compile_list.py VERSION [--on trixie,bookworm]

Each recording (``scripts/compile_record.py``) installs the lock into a venv
without bytecode and runs the unit's launcher (2 workers, the config the
formula renders, with a client key and metrics on) in front of two
stand-in Ollama servers, with an audit hook that writes down every file the
interpreter compiles from source: in the supervisor, its config check, the
forked workers, the requests a deploy's smoke test and clients make, the
metrics unit's programs and a graceful stop.

It records once on every Debian suite the formula is tested on (``--on``, by
default the harness's trixie and bookworm hosts, which needs root and
systemd-nspawn; ``controller`` is this machine's python3), and writes the
union: the lock pins other versions of some packages for other Pythons
(numpy for >= 3.12, say), and each Python imports its own.

A module first imported later, on a path these runs do not take (a provider
no model uses, say), is compiled in memory by the worker that needs it.
"""

import argparse
import hashlib
import json
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "_utils"))

import litellm_bytecode  # noqa: E402
import litellm_edge  # noqa: E402
import litellm_lock  # noqa: E402

from tests.conftest import load_salt_module, merged  # noqa: E402
from tests.functional.conftest import MODELS, STUB_MODELS, free_port  # noqa: E402
from tests.harness.instance import SystemdHost  # noqa: E402
from tests.harness.rootfs import DEFAULT_CACHE_DIR, build_rootfs  # noqa: E402
from tests.harness.site import FORMULA_IN_HOST  # noqa: E402
from tests.ollama_stub import start_stub_process, stop_stub_process  # noqa: E402

FILES = REPO / "salt" / "litellm" / "files"
UV = REPO / ".venv" / "bin" / "uv"
RECORD = "scripts/compile_record.py"
UV_IN_HOST = "/run/compile-list/uv"
# a test host's trust store: the system's CAs and the harness's own
CA_IN_HOST = "/etc/litellm-test/ca-bundle.crt"


def site_settings(backends):
    client_key = "sk-client-" + secrets.token_hex(16)
    settings = merged({
        "bind_host": "127.0.0.1", "bind_port": free_port(), "backends": backends, "models": MODELS,
        "master_key": "sk-" + secrets.token_hex(24),
        "keys": {"recorder": {"hash": "sha256:" + hashlib.sha256(client_key.encode()).hexdigest(),
                              "models": [MODELS[0]["name"]], "rpm": 1000}},
        "metrics": {"enabled": True, "bind_host": "127.0.0.1", "port": free_port()},
    })
    return settings, client_key


def plan(lock, backends, repo, uv):
    """What one recording needs (paths as the recording sees them: ``repo``, ``uv``)."""
    settings, client_key = site_settings(backends)
    config = load_salt_module("modules", "litellm_config")
    metrics_args = litellm_edge.metrics_argv(settings)[1:]
    metrics_args[metrics_args.index("--multiproc_dir") + 1] = "{multiproc_dir}"
    return {
        "lock": f"{repo}/{lock.relative_to(REPO)}", "uv": uv, "formula_files": f"{repo}/salt/litellm/files",
        "port": settings["bind_port"], "metrics_port": settings["metrics"]["port"],
        "master_key": settings["master_key"], "client_key": client_key, "model": MODELS[0]["name"],
        "info_script": litellm_edge.info_script(settings), "metrics_args": metrics_args,
        "files": {
            "config.yaml": config.config_text(settings),
            "client-keys.json": config.key_table_text(settings),
            "litellm.env": f"LITELLM_MASTER_KEY={settings['master_key']}\nLITELLM_LOCAL_MODEL_COST_MAP=True\n"
                           "LITELLM_LOG=ERROR\nLITELLM_TELEMETRY_DISABLED=true\nLITELLM_MODE=PRODUCTION\n",
        },
    }


def record_on_controller(lock, backends):
    recording = json.dumps(plan(lock, backends, REPO, str(UV)))
    done = subprocess.run(["/usr/bin/python3", str(REPO / RECORD)], input=recording, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"recording on this machine failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def record_on_suite(lock, backends, suite):
    """The recording inside a new test host of ``suite`` (its Debian python3), which reaches the stubs."""
    host = SystemdHost(build_rootfs(DEFAULT_CACHE_DIR, suite), name=f"litellm-compile-list-{suite}",
                       binds_ro={str(REPO): FORMULA_IN_HOST, str(UV.resolve()): UV_IN_HOST})
    host.start()
    try:
        recording = json.dumps(plan(lock, backends, FORMULA_IN_HOST, UV_IN_HOST))
        done = host.run(["python3", f"{FORMULA_IN_HOST}/{RECORD}"], input=recording,
                        env={"SSL_CERT_FILE": CA_IN_HOST, "UV_CACHE_DIR": "/var/tmp/uv-cache"}, timeout=1800,
                        check=False)
    finally:
        host.stop()
    if done.returncode != 0:
        raise SystemExit(f"recording on {suite} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version")
    parser.add_argument("--on", default="trixie,bookworm", help="suites of test hosts, or controller (comma-separated)")
    args = parser.parse_args(argv)
    lock = FILES / "locks" / f"litellm-{args.version}.txt"
    stubs = [start_stub_process(name, STUB_MODELS) for name in ("llm01", "llm02")]
    paths = set()
    try:
        for target in args.on.split(","):
            backends = [url for _, url in stubs]
            got = record_on_controller(lock, backends) if target == "controller" else record_on_suite(
                lock, backends, target)
            print(f"{target} (Python {got['python']}): {len(got['paths'])} files compiled")
            paths.update(got["paths"])
    finally:
        for proc, _ in stubs:
            stop_stub_process(proc)
    out = lock.with_name(lock.stem + litellm_bytecode.LIST_SUFFIX)
    out.write_text(litellm_bytecode.list_text(lock.name, litellm_lock.digest(lock.read_text()), paths))
    print(f"wrote {out} ({len(paths)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

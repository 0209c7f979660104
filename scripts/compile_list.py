#!/usr/bin/env python3
"""
Write a lock's compile list (``salt/litellm/files/locks/litellm-VERSION.compile.txt``):
the files the proxy compiles from source at start and at its first requests,
recorded from a real run. ``make lock`` runs it after writing the lock.

    .venv/bin/python scripts/compile_list.py VERSION [--python /usr/bin/python3]

How: the lock goes into a throwaway venv without bytecode (uv, hashes). The
unit's launcher (``litellm_gateway.py``, 2 workers, the config the formula
renders with a client key and metrics on) then serves two stand-in Ollama
servers, with an audit hook that writes down every file the interpreter
compiles from source (the ``compile`` event of the source loader), in the
supervisor, its config check and the forked workers. It answers what a
deploy's smoke test and clients ask: health, models, chat (plain and
streamed), a client key, wrong keys. LiteLLM's metrics server (the metrics
unit) and its info script run under the same hook. A graceful stop ends it.

A module first imported later, on a path this run does not take (a provider
no model uses, say), is compiled in memory by the worker that needs it.
"""

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "_utils"))

import litellm_bytecode  # noqa: E402
import litellm_edge  # noqa: E402

from tests.conftest import load_salt_module, merged  # noqa: E402
from tests.functional.conftest import MODELS, STUB_MODELS, free_port  # noqa: E402
from tests.ollama_stub import start_stub_process, stop_stub_process  # noqa: E402

FILES = REPO / "salt" / "litellm" / "files"
UV = REPO / ".venv" / "bin" / "uv"
READY_TIMEOUT = 240
CLIENT_KEY = "sk-client-" + secrets.token_hex(16)
# Runs a script (argv[1]) as __main__ with the hook; forked children inherit it.
RECORDER = """import os, runpy, sys
fd = os.open(os.environ["COMPILE_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
def hook(event, args):
    if event == "compile" and len(args) > 1 and isinstance(args[1], str) and args[1].endswith(".py"):
        os.write(fd, (args[1] + "\\n").encode())
sys.addaudithook(hook)
script, rest = sys.argv[1], sys.argv[2:]
if script == "-m":
    sys.argv = rest
    runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
elif script == "-c":
    sys.argv = ["-c", *rest[1:]]
    exec(compile(rest[0], "<string>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = [script, *rest]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
"""


def run(argv, **kwargs):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")


def build_venv(lock, venv, python):
    """The lock in a venv with no bytecode, so that every import compiles (and is recorded)."""
    env = dict(os.environ, UV_NATIVE_TLS="1")
    run([str(UV), "venv", "-q", "-p", python, str(venv)], env=env)
    run([str(UV), "pip", "sync", "-q", "--require-hashes", "--python", str(venv / "bin" / "python"), str(lock)],
        env=env)


def site_settings(backends, port, metrics_port):
    return merged({
        "bind_host": "127.0.0.1", "bind_port": port, "backends": backends, "models": MODELS,
        "master_key": "sk-" + secrets.token_hex(24),
        "keys": {"recorder": {"hash": "sha256:" + hashlib.sha256(CLIENT_KEY.encode()).hexdigest(),
                              "models": [MODELS[0]["name"]], "rpm": 1000}},
        "metrics": {"enabled": True, "bind_host": "127.0.0.1", "port": metrics_port},
    })


def write_site(work, settings):
    """The files the unit's launcher reads, as the formula renders them."""
    config = load_salt_module("modules", "litellm_config")
    shutil.copy(FILES / "litellm_gateway.py", work / "litellm_gateway.py")
    shutil.copy(FILES / "litellm_client_keys.py", work / "litellm_client_keys.py")
    (work / "config.yaml").write_text(config.config_text(settings))
    (work / "client-keys.json").write_text(config.key_table_text(settings))
    (work / "litellm.env").write_text(
        f"LITELLM_MASTER_KEY={settings['master_key']}\nLITELLM_LOCAL_MODEL_COST_MAP=True\n"
        "LITELLM_LOG=ERROR\nLITELLM_TELEMETRY_DISABLED=true\nLITELLM_MODE=PRODUCTION\n")


def call(port, path, key, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(port, proc, log):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if call(port, "/health/readiness", "")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"the launcher did not get ready:\n{log.read_text(errors='replace')[-3000:]}")


def exercise(port, master_key):
    """What a deploy's smoke test and clients ask, several times (each worker answers some)."""
    chat = {"model": MODELS[0]["name"], "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}
    expected = [("/health/liveliness", master_key, None, 200), ("/health/readiness", master_key, None, 200),
                ("/health", master_key, None, 200), ("/v1/models", master_key, None, 200),
                ("/v1/chat/completions", master_key, chat, 200),
                ("/v1/chat/completions", master_key, dict(chat, stream=True), 200),
                ("/v1/models", CLIENT_KEY, None, 200), ("/v1/chat/completions", CLIENT_KEY, chat, 200),
                ("/v1/models", "sk-wrong", None, 401), ("/metrics", master_key, None, None)]
    for _ in range(6):
        for path, key, body, status in expected:
            got = call(port, path, key, body)[0]
            if status is not None and got != status:
                raise SystemExit(f"{path} answered {got}, not {status}")


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=90)


def record_gateway(venv, work, recorder, record):
    """The launcher with 2 workers, exercised, then stopped gracefully; and the metrics unit's programs."""
    stubs = [start_stub_process(name, STUB_MODELS) for name in ("llm01", "llm02")]
    procs = []
    try:
        settings = site_settings([url for _, url in stubs], free_port(), free_port())
        write_site(work, settings)
        multiproc = work / "prometheus"
        multiproc.mkdir()
        env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(work), "PYTHONDONTWRITEBYTECODE": "1",
               "COMPILE_RECORD": str(record), "CONFIG_FILE_PATH": str(work / "config.yaml"),
               "LITELLM_GATEWAY_STATUS": str(work / "workers.json"), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
        python = str(venv / "bin" / "python")
        log = work / "gateway.log"
        port = settings["bind_port"]
        with open(log, "wb") as out:
            procs.append(subprocess.Popen(
                [python, str(recorder), str(work / "litellm_gateway.py"), "--host", "127.0.0.1", "--port", str(port),
                 "--app-dir", str(work), "--workers", "2", "--log-level", "error", "litellm_gateway:app"],
                env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        wait_ready(port, procs[0], log)
        exercise(port, settings["master_key"])
        # the metrics unit's programs, with its environment (litellm-metrics.service.jinja)
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY_DISABLED="true")
        run([python, str(recorder), "-c", litellm_edge.info_script(settings)], env=env)
        argv = litellm_edge.metrics_argv(dict(settings, venv=str(venv)))
        argv[argv.index("--multiproc_dir") + 1] = str(multiproc)
        procs.append(subprocess.Popen([python, str(recorder), *argv[1:]], env=env, cwd=work,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_metrics(settings["metrics"]["port"], procs[1])
    finally:
        for proc in procs:
            stop(proc)
        for proc, _ in stubs:
            stop_stub_process(proc)


def wait_metrics(port, proc):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if call(port, "/metrics", "")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("LiteLLM's metrics server did not answer")


def relative_paths(record, venv):
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    prefix = str(site_packages) + "/"
    return sorted({line[len(prefix):] for line in record.read_text().splitlines() if line.startswith(prefix)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version")
    parser.add_argument("--python", default="/usr/bin/python3")
    args = parser.parse_args(argv)
    lock = FILES / "locks" / f"litellm-{args.version}.txt"
    tmp = Path(tempfile.mkdtemp(prefix="litellm-compile-list-"))
    try:
        venv, work = tmp / "venv", tmp / "work"
        work.mkdir()
        build_venv(lock, venv, args.python)
        recorder = tmp / "record_compiles.py"
        recorder.write_text(RECORDER)
        record = tmp / "compiled.txt"
        record_gateway(venv, work, recorder, record)
        paths = relative_paths(record, venv)
        lock_text = lock.read_text()
        out = lock.with_name(lock.stem + litellm_bytecode.LIST_SUFFIX)
        out.write_text(litellm_bytecode.list_text(lock.name, hashlib.sha256(lock_text.encode()).hexdigest(), paths))
        print(f"wrote {out} ({len(paths)} files)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

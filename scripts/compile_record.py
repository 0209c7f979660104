#!/usr/bin/env python3
"""
One recording of ``scripts/compile_list.py``, on the Python that will run the
release (the controller's, or a test host's Debian python3): stdlib only.

    python3 scripts/compile_record.py < plan.json

The plan (JSON on stdin, so that no key is in argv) gives the lock, uv, the
files the formula rendered (config.yaml, client-keys.json, litellm.env), the
ports, keys and the metrics unit's programs. In a new working directory:
the lock into a venv without bytecode; the unit's launcher (2 workers)
under an audit hook that writes down every file compiled from source; the
requests a deploy's smoke test and clients make; the metrics unit's info
script and server; a graceful stop. Prints the compiled files, relative to
site-packages, as JSON.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_TIMEOUT = 240
# Runs a script, ``-m module`` or ``-c code`` as __main__ with the hook; forked children inherit it.
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


def build_venv(plan, venv):
    """The lock in a venv without bytecode, so that every import compiles (and is recorded)."""
    env = dict(os.environ, UV_NATIVE_TLS="1")
    run([plan["uv"], "venv", "-q", "-p", sys.executable, str(venv)], env=env)
    run([plan["uv"], "pip", "sync", "-q", "--require-hashes", "--python", str(venv / "bin" / "python"),
         plan["lock"]], env=env)


def call(port, path, key, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(port, path, proc, what, timeout=READY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if call(port, path, "")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{what} did not answer {path}")


def exercise(plan):
    """What a deploy's smoke test and clients ask, several times (each worker answers some)."""
    port, master, client = plan["port"], plan["master_key"], plan["client_key"]
    chat = {"model": plan["model"], "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}
    expected = [("/health/liveliness", master, None, 200), ("/health/readiness", master, None, 200),
                ("/health", master, None, 200), ("/v1/models", master, None, 200),
                ("/v1/chat/completions", master, chat, 200),
                ("/v1/chat/completions", master, dict(chat, stream=True), 200),
                ("/v1/models", client, None, 200), ("/v1/chat/completions", client, chat, 200),
                ("/v1/models", "sk-wrong", None, 401), ("/metrics", master, None, None)]
    for _ in range(6):
        for path, key, body, status in expected:
            got = call(port, path, key, body)[0]
            if status is not None and got != status:
                raise SystemExit(f"{path} answered {got}, not {status}")


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=90)


def write_site(plan, work):
    for name, text in plan["files"].items():
        (work / name).write_text(text)
    for name in ("litellm_gateway.py", "litellm_client_keys.py"):
        shutil.copy(Path(plan["formula_files"]) / name, work / name)


def record(plan, venv, work, env):
    """The launcher with 2 workers, exercised, then stopped gracefully; and the metrics unit's programs."""
    python, recorder = str(venv / "bin" / "python"), str(work / "record_compiles.py")
    procs = []
    try:
        with open(work / "gateway.log", "wb") as log:
            procs.append(subprocess.Popen(
                [python, recorder, str(work / "litellm_gateway.py"), "--host", "127.0.0.1", "--port",
                 str(plan["port"]), "--app-dir", str(work), "--workers", "2", "--log-level", "error",
                 "litellm_gateway:app"],
                env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        wait_for(plan["port"], "/health/readiness", procs[0], "the launcher")
        exercise(plan)
        # the metrics unit's programs, with its environment (litellm-metrics.service.jinja)
        metrics_env = dict(env, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY_DISABLED="true")
        run([python, recorder, "-c", plan["info_script"]], env=metrics_env)
        procs.append(subprocess.Popen([python, recorder, *plan["metrics_args"]], env=metrics_env, cwd=work,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        wait_for(plan["metrics_port"], "/metrics", procs[1], "LiteLLM's metrics server", timeout=60)
    except SystemExit:
        sys.stderr.write((work / "gateway.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        for proc in procs:
            stop(proc)


def main():
    plan = json.load(sys.stdin)
    work = Path(tempfile.mkdtemp(prefix="litellm-compile-record-"))
    try:
        venv = work / "venv"
        build_venv(plan, venv)
        write_site(plan, work)
        (work / "record_compiles.py").write_text(RECORDER)
        (work / "prometheus").mkdir()
        compiled = work / "compiled.txt"
        env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(work), "PYTHONDONTWRITEBYTECODE": "1",
               "COMPILE_RECORD": str(compiled), "CONFIG_FILE_PATH": str(work / "config.yaml"),
               "LITELLM_GATEWAY_STATUS": str(work / "workers.json"),
               "PROMETHEUS_MULTIPROC_DIR": str(work / "prometheus")}
        plan["metrics_args"] = [str(work / "prometheus") if arg == "{multiproc_dir}" else arg
                                for arg in plan["metrics_args"]]
        record(plan, venv, work, env)
        prefix = str(next((venv / "lib").glob("python3*/site-packages"))) + "/"
        paths = sorted({line[len(prefix):] for line in compiled.read_text().splitlines() if line.startswith(prefix)})
        print(json.dumps({"python": sys.version.split()[0], "paths": paths}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

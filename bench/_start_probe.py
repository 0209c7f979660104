"""
Run inside a deployed host by ``bench/start.py`` (not a benchmark itself):
the deployed launcher (``/etc/litellm/litellm_gateway.py``) with the unit's
own arguments, on a port of its own instead of the socket, every step timed
from the process's start (``/proc/self/stat``): the launcher's import, the
supervisor's import of LiteLLM's proxy (with the modules compiled from source
instead of loaded from bytecode, counted by an audit hook), the config check,
each worker's fork and lifespan startup, the status file. One JSON line per
step on stderr; the supervisor stops itself once its status file is written.

    python _start_probe.py PORT STATUS_FILE ARGS...   (ARGS: the unit's, after the launcher)
"""

import json
import os
import signal
import sys
import time


def _process_start():
    with open("/proc/self/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    with open("/proc/uptime", encoding="ascii") as handle:
        uptime = float(handle.read().split()[0])
    return time.time() - (uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


START = _process_start()
COMPILED = []


def _audit(event, args):
    if event == "compile" and len(args) > 1 and isinstance(args[1], str) and args[1].endswith(".py"):
        COMPILED.append(args[1])


def mark(step, **more):
    sys.stderr.write(json.dumps({"t": round(time.time() - START, 3), "at": time.time(), "pid": os.getpid(),
                                 "step": step, **more}) + "\n")
    sys.stderr.flush()


def _timed(module, name, label, after=None):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        mark(f"{label} begins")
        count = len(COMPILED)
        result = original(*args, **kwargs)
        mark(f"{label} ends", compiled=len(COMPILED) - count, modules=len(sys.modules),
             first_compiled=COMPILED[count:count + 5], **(after(result) if after else {}))
        return result

    setattr(module, name, wrapper)


def _timed_async(cls, name, label):
    original = getattr(cls, name)

    async def wrapper(*args, **kwargs):
        mark(f"{label} begins")
        count = len(COMPILED)
        result = await original(*args, **kwargs)
        mark(f"{label} ends", compiled=len(COMPILED) - count, modules=len(sys.modules))
        return result

    setattr(cls, name, wrapper)


def _gets(port, count=4):
    """``count`` GETs of /health/readiness on new connections, each timed (the workers' first requests)."""
    import http.client  # pylint: disable=import-outside-toplevel

    for index in range(count):
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        conn.request("GET", "/health/readiness")
        status = conn.getresponse().status
        conn.close()
        mark(f"GET /health/readiness {index + 1}", status=status, took=round(time.monotonic() - t0, 3))


def _worker_hooks(gateway):
    original = gateway._forked_started  # pylint: disable=protected-access

    def forked_started(**kwargs):
        mark("worker forked")
        from uvicorn.lifespan.on import LifespanOn  # pylint: disable=import-outside-toplevel

        _timed_async(LifespanOn, "startup", "worker lifespan startup")
        original(**kwargs)

    gateway._forked_started = forked_started  # pylint: disable=protected-access


def main(argv):
    sys.addaudithook(_audit)
    port, status, args = argv[0], argv[1], argv[2:]
    os.environ["LITELLM_GATEWAY_STATUS"] = status
    mark("python started")
    sys.path.insert(0, "/etc/litellm")
    import litellm_gateway as gateway  # pylint: disable=import-outside-toplevel

    mark("launcher imported", compiled=len(COMPILED))
    _timed(gateway, "preload", "supervisor import of litellm.proxy.proxy_server")
    _timed(gateway, "check_config", "config check (fork)", after=lambda r: {"ok": r[0]})
    _worker_hooks(gateway)
    write_status = gateway._write_status  # pylint: disable=protected-access

    def status_written(processes, ok, detail=""):
        write_status(processes, ok, detail)
        mark("status file written", ok=ok, workers=len(processes))
        _gets(port)
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's own handler: it stops its workers

    gateway._write_status = status_written  # pylint: disable=protected-access
    index = args.index("--fd")
    args[index:index + 2] = ["--host", "127.0.0.1", "--port", port]
    gateway.main(args)
    mark("supervisor stopped")


if __name__ == "__main__":
    main(sys.argv[1:])

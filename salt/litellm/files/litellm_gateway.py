# Managed by Salt (litellm formula). Local edits are overwritten.
"""
How the litellm unit runs the proxy: uvicorn's own command line, with these
differences from ``python -m uvicorn``.

- Always a supervisor, even for one worker: SIGHUP (``systemctl reload``)
  starts a new worker, waits until it serves, then retires the old one, so a
  single worker never leaves the socket without a server.
- The old workers drain in the background: the next new worker starts at once
  instead of after the old one's last stream ended; after every reload the
  supervisor writes which workers serve (``/run/<service>/workers.json``:
  each one passed uvicorn's own readiness check).
- Every worker reads ``litellm.env`` (next to this file) before LiteLLM
  loads its config: a reload brings a rotated master key, not only a new
  config.
- LiteLLM's proxy is imported once, in the supervisor, and each worker is a
  fork of it: a worker then only loads the config and starts (about a
  second), instead of importing LiteLLM again (6-10 s). A worker is spawned
  afresh instead (uvicorn's own way) when the env file changed in a variable
  LiteLLM reads at import (``READ_AT_START`` lists those it reads later), so
  every worker is what a fresh start would give.
- Before its first worker, the supervisor has LiteLLM check the config
  (what ``litellm --validate_config`` does) in a fork of itself: LiteLLM is
  already imported, so it takes a fraction of a second. A config LiteLLM
  rejects stops the start (exit ``CONFIG_REJECTED``, which the unit does not
  restart) with LiteLLM's verdict in the journal and the status file. On a
  first deploy this is the only check (the formula's check script leaves it
  to the start when no live config exists: LiteLLM is not imported twice).
- ``--http litellm_gateway:DrainingH11Protocol``: a stopping worker gives a
  connection that has no request yet (just accepted, or idle between two)
  ``GRACE_S`` to send one, and serves it with ``Connection: close``, instead
  of closing it at once (uvicorn's h11 protocol: a request racing the close
  is reset); a response not yet begun at shutdown says ``Connection: close``
  too, so a keep-alive client does not reuse a connection about to close.
- Each worker routes one readiness request through the app (``warm_routes``)
  when LiteLLM's startup is done and before it serves: FastAPI builds its
  routes' state at a worker's first request, so the workers do that side by
  side instead of in their first clients' requests one after another.

Its own option, taken off before uvicorn's: ``--json-logs`` (uvicorn logs as
JSON, as the litellm CLI does with JSON_LOGS). The app is
``litellm_gateway:app`` (LiteLLM's proxy app, imported lazily).
"""

import gc
import json
import logging
import multiprocessing
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ENV_FILE = os.path.join(HERE, "litellm.env")
STATUS_FILE = os.environ.get("LITELLM_GATEWAY_STATUS", "")
GRACE_S = 2.0
# Variables of the env file that LiteLLM reads when a worker loads its config or
# calls a backend, never at import: a change of one of them still forks.
READ_AT_START = frozenset({"LITELLM_MASTER_KEY", "REDIS_PASSWORD", "OLLAMA_API_BASE"})
_PRELOADED = {}
#: sysexits' EX_CONFIG: the unit's RestartPreventExitStatus, a rejected config is not retried
CONFIG_REJECTED = 78
#: how the refusal starts in the log: the service state finds LiteLLM's verdict in the journal by it
#: (_utils/litellm_systemd.py's CONFIG_REJECTED_WORDS; this file runs on its own, outside Salt)
CONFIG_REJECTED_WORDS = "LiteLLM rejected the config"

log = logging.getLogger("uvicorn.error")


def parse_env(text):
    """KEY=VALUE lines of an EnvironmentFile (comments and blank lines skipped, matching quotes removed)."""
    found = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key] = value
    return found


def read_env(path=ENV_FILE):
    """The env file's variables ({} when it is missing)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_env(handle.read())
    except FileNotFoundError:
        return {}


def load_env(path=ENV_FILE):
    """Put the env file's variables into this process's environment (a worker, before LiteLLM); returns them."""
    env = read_env(path)
    os.environ.update(env)
    return env


def import_env(env):
    """The part of an env file that LiteLLM may read at import."""
    return {key: value for key, value in env.items() if key not in READ_AT_START}


def preload(path=ENV_FILE):
    """Import LiteLLM's proxy in the supervisor, for the workers to fork from it."""
    env = load_env(path)
    # No collection while ~4,000 modules load: the import is ~1.2 s (a fifth) faster, for ~2 MB
    # of cycles left uncollected (measured on trixie; a collection after it would take 0.65 s).
    gc.disable()
    try:
        from litellm.proxy.proxy_server import app  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
    finally:
        gc.freeze()  # the imported objects stay shared with the workers (the collector copies no page)
        gc.enable()
    _PRELOADED["env"] = import_env(env)


def _load_config(path):
    import asyncio  # pylint: disable=import-outside-toplevel

    from litellm.proxy.proxy_server import ProxyConfig  # pylint: disable=import-outside-toplevel

    asyncio.run(ProxyConfig().load_config(router=None, config_file_path=path))


def check_config(path):
    """LiteLLM's own check of the config at ``path``, in a fork: ``(ok, verdict)``. The fork leaves the
    settings LiteLLM sets while it loads a config out of the supervisor the workers fork from."""
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its verdict comes back through the pipe
        os.close(readable)
        code, verdict = 0, b""
        try:
            _load_config(path)
        except BaseException as error:  # noqa: BLE001 pylint: disable=broad-exception-caught
            code, verdict = 1, f"{type(error).__name__}: {error}".encode(errors="replace")[:4000]
        os.write(writable, verdict)
        os._exit(code)  # pylint: disable=protected-access
    os.close(writable)
    with os.fdopen(readable, "rb") as pipe:
        verdict = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and not verdict:
        verdict = f"the check exited with {code}"
    return code == 0, verdict


def fork_is_fresh(path=ENV_FILE):
    """True when a worker forked now is what a fresh start gives: LiteLLM preloaded, with the env of now."""
    return "env" in _PRELOADED and import_env(read_env(path)) == _PRELOADED["env"]


_CLASSES = {}


def _draining_protocol():
    if "protocol" in _CLASSES:
        return _CLASSES["protocol"]
    from uvicorn.protocols.http.h11_impl import H11Protocol  # pylint: disable=import-outside-toplevel

    class DrainingH11Protocol(H11Protocol):
        """uvicorn's h11 protocol; at shutdown a connection between requests gets GRACE_S to send one."""

        draining = False

        def _say_close(self):
            # uvicorn adds "connection: close" to the response when the request has it: a
            # keep-alive client then never sends another request on this connection
            headers = self.cycle.scope["headers"]
            if not self.cycle.response_started and (b"connection", b"close") not in headers:
                headers.append((b"connection", b"close"))

        def shutdown(self):
            if self.cycle is not None and not self.cycle.response_complete:
                self._say_close()
                super().shutdown()  # in a request: the connection closes after the response
                return
            self.draining = True
            self.loop.call_later(GRACE_S, self._close_if_idle)

        def _close_if_idle(self):
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                super().shutdown()

        def data_received(self, data):
            super().data_received(data)
            if self.draining and self.cycle is not None and not self.cycle.response_complete:
                self._say_close()
                self.cycle.keep_alive = False

    _CLASSES["protocol"] = DrainingH11Protocol
    return DrainingH11Protocol


#: the request a worker routes once before it serves (the path readiness asks)
WARM_PATH = "/health/readiness"


def warm_routes(app, path=WARM_PATH):
    """Route a GET of ``path`` through ``app``'s routes as a request would, without running it: FastAPI
    builds each route's state at the first request that reaches it (0.3-0.7 s here), so a worker does
    that before it serves, beside the others, instead of in its first client's request. True on a match."""
    from starlette.routing import Match  # pylint: disable=import-outside-toplevel

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [], "app": app}
    for route in getattr(getattr(app, "router", None), "routes", ()):
        if route.matches(dict(scope))[0] == Match.FULL:
            return True
    return False


def warming(app):
    """``app``, with :func:`warm_routes` run when its lifespan startup completes (LiteLLM's startup done,
    the worker not yet serving: uvicorn listens after the startup); a failed warm-up is logged, not fatal."""

    async def asgi(scope, receive, send):
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)

        async def send_warmed(message):
            if message.get("type") == "lifespan.startup.complete":
                try:
                    warm_routes(app)
                except Exception as error:  # noqa: BLE001 pylint: disable=broad-exception-caught
                    log.warning("routes not warmed before serving: %s: %s", type(error).__name__, error)
            await send(message)

        return await app(scope, receive, send_warmed)

    return asgi


def __getattr__(name):
    # uvicorn imports "litellm_gateway:app" in each worker: env first, then the proxy.
    if name == "app":
        load_env()
        from litellm.proxy.proxy_server import app  # pylint: disable=import-outside-toplevel

        return warming(app)
    if name == "DrainingH11Protocol":
        return _draining_protocol()
    raise AttributeError(name)


def _write_status(processes, ok, detail=""):
    if not STATUS_FILE:
        return
    data = {"serving": [p.pid for p in processes], "ok": ok, "detail": detail, "at": time.time(),
            "forked": [p.pid for p in processes if getattr(p, "forked", False)]}
    tmp = f"{STATUS_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, STATUS_FILE)


def _forked_started(**kwargs):
    # the supervisor's handlers queue signals for its loop: a worker has uvicorn's own once it serves
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    from uvicorn._subprocess import subprocess_started  # pylint: disable=import-outside-toplevel

    subprocess_started(**kwargs)


def _worker_factory():
    if "worker" in _CLASSES:
        return _CLASSES["worker"]
    from uvicorn.supervisors.multiprocess import Process  # pylint: disable=import-outside-toplevel

    fork = multiprocessing.get_context("fork")

    def new_worker(config, sockets):
        """uvicorn's worker, forked from the preloaded supervisor when that is a fresh worker, else spawned."""
        worker = Process(config, sockets)  # a spawn process, not started: nothing runs yet
        worker.forked = fork_is_fresh()
        if worker.forked:
            kwargs = dict(worker.process._kwargs, stdin_fileno=None)  # pylint: disable=protected-access
            worker.process = fork.Process(target=_forked_started, kwargs=kwargs)
        return worker

    _CLASSES["worker"] = new_worker
    return new_worker


def _supervisor_class():
    from uvicorn.config import STARTUP_FAILURE  # pylint: disable=import-outside-toplevel
    from uvicorn.supervisors import multiprocess  # pylint: disable=import-outside-toplevel

    # every worker uvicorn starts (at start, after a crash, on SIGTTIN, on reload) is ours
    multiprocess.Process = Process = _worker_factory()
    Multiprocess = multiprocess.Multiprocess

    class Supervisor(Multiprocess):
        """uvicorn's Multiprocess; a reload does not wait for the old workers to drain."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.draining = []
            self.failed = False

        def init_processes(self):
            super().init_processes()
            deadline = self.config.timeout_worker_healthcheck
            ready = all(p.wait_until_ready(deadline, self.should_exit) for p in self.processes)
            _write_status(self.processes, ready, "" if ready else "a worker was not ready at start")

        def restart_all(self):
            for idx, old in enumerate(list(self.processes)):
                if self.should_exit.is_set():
                    return
                new = Process(self.config, self.sockets)
                new.start()
                log.info("worker [%s] %s for worker [%s]", new.pid, "forked" if new.forked else "spawned", old.pid)
                if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                    new.kill()
                    new.join()
                    detail = f"new worker [{new.pid}] was not ready in time; worker [{old.pid}] kept"
                    log.error("%s, reload aborted", detail)
                    _write_status(self.processes, False, detail)
                    return
                old.terminate()  # drains for --timeout-graceful-shutdown, reaped in the main loop
                self.draining.append(old)
                self.processes[idx] = new
            _write_status(self.processes, True)

        def keep_subprocess_alive(self):
            for old in list(self.draining):
                if not old.process.is_alive():
                    old.process.join()
                    self.draining.remove(old)
            for process in self.processes:
                if not process.process.is_alive() and process.exitcode == STARTUP_FAILURE:
                    self.failed = True
                    _write_status(self.processes, False, f"worker [{process.pid}] failed to start")
            super().keep_subprocess_alive()

        def join_all(self):
            super().join_all()
            for old in self.draining:
                old.process.join()

    return Supervisor


def _run(app, **kwargs):
    """uvicorn.main.run, but always supervised (the branch ``workers > 1`` for every count)."""
    from uvicorn.config import Config  # pylint: disable=import-outside-toplevel

    app_dir = kwargs.pop("app_dir", None)
    if app_dir is not None:
        sys.path.insert(0, app_dir)
    config = Config(app, **kwargs)
    sock = config.bind_socket()
    preload()
    config_file = os.environ.get("CONFIG_FILE_PATH")
    if config_file:
        ok, verdict = check_config(config_file)
        if not ok:
            detail = f"{CONFIG_REJECTED_WORDS} {config_file}: {verdict}"
            log.error("%s; not starting", detail)
            _write_status([], False, detail)
            sys.exit(CONFIG_REJECTED)
    supervisor = _supervisor_class()(config, sockets=[sock])
    supervisor.run()
    if supervisor.failed:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: systemd sees a failed start (Restart=on-failure)


def main(argv):
    import importlib  # pylint: disable=import-outside-toplevel

    # the module, not the click command uvicorn/__init__.py exports under the same name
    cli = importlib.import_module("uvicorn.main")
    run = _run
    if "--json-logs" in argv:
        argv = [arg for arg in argv if arg != "--json-logs"]
        os.environ["JSON_LOGS"] = "True"
        from litellm._logging import _get_uvicorn_json_log_config  # pylint: disable=import-outside-toplevel

        log_config = _get_uvicorn_json_log_config()

        def run(app, **kwargs):
            _run(app, **{**kwargs, "log_config": log_config})

    cli.run = run  # main() calls the module's run(): supervised, whatever the worker count
    cli.main.main(args=argv, prog_name="litellm_gateway")


if __name__ == "__main__":
    main(sys.argv[1:])

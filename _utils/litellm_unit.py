"""
The litellm unit, decided without touching the host: the command line the
service runs (``uvicorn_argv``), the socket systemd holds for it, how long a
stop may take, which path a change takes (reload, restart, relisten), and
whether a reload is finished (every worker replaced and serving). Pure.

The service runs uvicorn under the formula's launcher (``litellm_gateway.py``
in the config directory, uvicorn's own options) on the listening socket of
``<name>.socket`` (``--fd 3``), so connections wait in the kernel's backlog
while the service restarts instead of being refused.
"""

import os
import shlex
import ssl

LAUNCHER = "litellm_gateway.py"
APP = "litellm_gateway:app"
# uvicorn's h11 protocol, but a stopping worker serves a request racing its close
HTTP = "litellm_gateway:DrainingH11Protocol"
STATUS_FILE = "workers.json"  # in the service's RuntimeDirectory
# systemd's margin over the drain before it kills (TimeoutStopSec).
STOP_MARGIN_S = 30

RELOAD = "reload"
RESTART = "restart"
RELISTEN = "relisten"


def _service(settings):
    return settings.get("service") or {}


def base_args(settings):
    """uvicorn's options for what the litellm CLI set up (server header, logs, keep-alive, drain, recycling)."""
    svc = _service(settings)
    args = [
        "--fd", "3",
        "--app-dir", settings["config_dir"],
        "--http", HTTP,
        "--workers", str(svc["workers"]),
        "--no-server-header",
        "--log-level", str(svc.get("log_level", "ERROR")).lower(),
        "--timeout-keep-alive", str(svc["keep_alive_timeout"]),
        "--timeout-graceful-shutdown", str(svc["graceful_timeout"]),
        "--timeout-worker-healthcheck", str(svc["worker_ready_timeout"]),
    ]
    max_requests = svc.get("max_requests") or 0
    if max_requests:
        args += ["--limit-max-requests", str(max_requests), "--limit-max-requests-jitter", str(max_requests // 10)]
    return args


# litellm:tls: TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3's are OpenSSL's own).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def tls_files(settings):
    """{'certificate': path, 'key': path}: the listener's TLS files in the config directory."""
    config_dir = settings.get("config_dir") or "/etc/litellm"
    return {"certificate": os.path.join(config_dir, "tls.crt"), "key": os.path.join(config_dir, "tls.key")}


def tls_args(settings):
    """
    uvicorn's own ``--ssl-*`` options for litellm:tls ([] when off): the
    chain and key files (paths, never the key), the server protocol
    (Python's ``PROTOCOL_TLS_SERVER``, whose minimum is TLS 1.2) and TLS 1.2
    ciphers with forward secrecy.
    """
    tls = settings.get("tls")
    if not isinstance(tls, dict) or tls.get("enabled") is not True:
        return []
    files = tls_files(settings)
    return [
        "--ssl-certfile", files["certificate"],
        "--ssl-keyfile", files["key"],
        "--ssl-version", str(int(ssl.PROTOCOL_TLS_SERVER)),
        "--ssl-ciphers", TLS12_CIPHERS,
    ]


def _capacity_int(settings, key):
    value = (settings.get("capacity") or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def admission_args(settings):
    """
    uvicorn's admission options from the capacity plan (``litellm_capacity.plan``,
    which ``litellm_service.unit_values`` puts in ``settings["capacity"]``):
    ``--limit-concurrency`` (connections a worker holds; LiteLLM's own
    admission answers 503 with Retry-After well before it) and ``--backlog``
    (asyncio listens again on the inherited socket with it: without it,
    uvicorn's 2048 replaces the socket unit's Backlog=). None while unresolved.
    """
    args = []
    for key, flag in (("connections_per_worker", "--limit-concurrency"), ("backlog", "--backlog")):
        value = _capacity_int(settings, key)
        if value is not None:
            args += [flag, str(value)]
    return args


def socket_lines(settings):
    """More ``[Socket]`` lines of the socket unit: ``Backlog=`` of the capacity plan (the queue while restarting)."""
    backlog = _capacity_int(settings, "backlog")
    return [f"Backlog={backlog}"] if backlog is not None else []


def status_file():
    """The supervisor's status file, in the service's RuntimeDirectory."""
    return STATUS_FILE


# Extra option groups, in order: a new group is one more function here.
EXTRA_ARGS = (tls_args, admission_args)


def uvicorn_argv(settings):
    """
    The service's command line for ``settings`` (the formula's merged map,
    without secrets): the venv's python, the launcher, uvicorn's options,
    the app. Never a secret: systemd shows it to everyone.
    """
    svc = _service(settings)
    argv = [f"{settings['venv']}/bin/python", f"{settings['config_dir']}/{LAUNCHER}"]
    if svc.get("log_format") == "json":
        argv.append("--json-logs")
    argv += base_args(settings)
    for extra in EXTRA_ARGS:
        argv += list(extra(settings))
    argv.append(APP)
    return argv


def exec_start(settings):
    """``uvicorn_argv`` as one ExecStart= line (quoted where needed)."""
    return " ".join(shlex.quote(arg) for arg in uvicorn_argv(settings))


def listen_stream(bind_host, bind_port):
    """The socket unit's ListenStream= for the bind address (an IPv6 one in brackets)."""
    host = str(bind_host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{int(bind_port)}"


def template_values(settings, plan, limit_lines):
    """What the unit templates need (no secrets): ``exec_start``, ``listen_stream``,
    ``timeout_stop``, ``socket_extra`` (more ``[Socket]`` lines) and ``limits``
    (the resource-limit lines), given the capacity ``plan`` and its ``limit_lines``."""
    settings = dict(settings, capacity=plan)
    return {
        "limits": list(limit_lines),
        "exec_start": exec_start(settings),
        "listen_stream": listen_stream(settings["bind_host"], settings["bind_port"]),
        "timeout_stop": timeout_stop(settings),
        "socket_extra": list(socket_lines(settings)),
    }


def timeout_stop(settings):
    """TimeoutStopSec=: the drain of in-flight requests plus a margin."""
    return int(_service(settings)["graceful_timeout"]) + STOP_MARGIN_S


def drain_seconds(settings):
    """``timeout_stop``, or None for settings that do not say it (a bad pillar: the validate gate stops that run)."""
    try:
        return timeout_stop(settings)
    except (KeyError, TypeError, ValueError):
        return None


def change_path(changed_ids, restart_on=(), relisten_on=()):
    """
    The cheapest safe path for the states that changed in this run: relisten
    (the socket unit changed: a new listener), restart (the venv or the
    service unit changed: a new supervisor, behind the held socket), else
    reload (config, env, hook, key table: new workers, one at a time).
    """
    changed = set(changed_ids)
    if changed & set(relisten_on):
        return RELISTEN
    if changed & set(restart_on):
        return RESTART
    return RELOAD


def changed_watched(running, watched_ids):
    """IDs among ``watched_ids`` whose state in ``running`` (Salt's __running__) reported changes."""
    wanted = set(watched_ids)
    return sorted(
        {ret.get("__id__") for ret in (running or {}).values() if ret.get("__id__") in wanted and ret.get("changes")}
    )


def reload_done(before, after, status, workers, since):
    """
    Whether a rolling reload finished: the supervisor (MainPID) is the same,
    its status file, written after ``since``, says ``ok`` and lists
    ``workers`` serving workers, none of which served before and all of
    which are alive now. Returns ``(done, failed, detail)``.
    """
    if after["main_pid"] != before["main_pid"]:
        return False, True, f"the supervisor changed ({before['main_pid']} -> {after['main_pid']})"
    if not status or status.get("at", 0) < since:
        return False, False, "waiting for the supervisor to replace the workers"
    serving = list(status.get("serving") or [])
    if not status.get("ok"):
        return False, True, status.get("detail") or "the supervisor aborted the reload"
    old = set(before["workers"]) & set(serving)
    if old:
        return False, True, f"worker(s) {sorted(old)} were not replaced"
    if len(serving) != int(workers):
        return False, True, f"{len(serving)} worker(s) serve, {workers} expected"
    gone = set(serving) - set(after["workers"])
    if gone:
        return False, True, f"worker(s) {sorted(gone)} are not running"
    return True, False, f"{len(serving)} new worker(s) serving: {', '.join(map(str, sorted(serving)))}" \
                        f"{how_started(status, serving)}"


def how_started(status, serving):
    """How the serving workers started, from the supervisor's status file, as a suffix for a detail."""
    forked = set(status.get("forked") or []) & set(serving)
    if serving and forked == set(serving):
        return " (forked from the supervisor, LiteLLM preloaded)"
    if not forked:
        return " (spawned, LiteLLM imported afresh)"
    return f" ({len(forked)} forked, {len(serving) - len(forked)} spawned)"


# children of a supervisor that multiprocessing starts for itself, not workers
MP_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def workers_of(ps_lines, main_pid):
    """Worker PIDs of the supervisor ``main_pid`` from ``ps -o pid=,ppid=,args=`` lines: its children,
    forked (the supervisor's own command line) or spawned (``spawn_main``), not multiprocessing's helpers."""
    found = []
    for line in ps_lines:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] == str(main_pid) and not any(h in parts[2] for h in MP_HELPERS):
            found.append(int(parts[0]))
    return sorted(found)


def workers_in(exec_start):
    """``--workers N`` of an ExecStart (as ``systemctl show -P ExecStart`` prints it), or 1."""
    words = str(exec_start or "").replace(";", " ").split()
    for index, word in enumerate(words[:-1]):
        if word == "--workers" and words[index + 1].isdigit():
            return int(words[index + 1])
    return 1

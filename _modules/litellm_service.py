"""
Ask a running LiteLLM proxy whether it is ready, and wait for it.
"""

import http.client
import json
import logging
import time
import urllib.parse

log = logging.getLogger(__name__)

__virtualname__ = "litellm_service"

READINESS_PATH = "/health/readiness"


def __virtual__():
    return __virtualname__


def _get(url, timeout):
    parts = urllib.parse.urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        return response.status, response.read(2048).decode("utf-8", "replace")
    finally:
        conn.close()


def readiness(url="http://127.0.0.1:4000", timeout=5):
    """
    One GET of ``/health/readiness`` on the gateway at ``url``.

    Returns ``{"ready": bool, "status": int|None, "detail": str}``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.readiness http://127.0.0.1:4000
    """
    try:
        status, body = _get(url.rstrip("/") + READINESS_PATH, timeout)
    except OSError as exc:
        return {"ready": False, "status": None, "detail": f"{type(exc).__name__}: {exc}"}
    return {"ready": status == 200, "status": status, "detail": body[:300]}


def wait_ready(url="http://127.0.0.1:4000", timeout=180, interval=0.5):
    """
    Poll ``/health/readiness`` until it answers 200 or ``timeout`` seconds
    pass. Returns the last answer plus ``waited`` (seconds).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.wait_ready http://127.0.0.1:4000 timeout=60
    """
    start = time.monotonic()
    while True:
        answer = readiness(url, timeout=min(5, timeout))
        waited = time.monotonic() - start
        if answer["ready"] or waited >= timeout:
            answer["waited"] = round(waited, 2)
            return answer
        time.sleep(interval)


# --- the unit and its change paths (decisions in _utils/litellm_unit.py) ----------------


def _unit(name, *args, **kwargs):
    return __utils__[f"litellm_unit.{name}"](*args, **kwargs)


def unit_values(settings):
    """
    What the unit templates need from the merged settings (no secrets):
    ``exec_start`` (uvicorn_argv as one line), ``listen_stream``,
    ``timeout_stop`` and ``socket_extra`` (more ``[Socket]`` lines).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.unit_values '{"venv": "/opt/litellm/venv", ...}'
    """
    # the capacity plan (every auto resolved): uvicorn's admission flags, Backlog= and the limits
    plan = __utils__["litellm_capacity.plan"](settings)
    return _unit("template_values", settings, plan, __utils__["litellm_capacity.unit_lines"](plan))


def drain_seconds(settings):
    """
    TimeoutStopSec= of the unit (the drain of in-flight requests plus a
    margin), or None for settings that do not say it (a bad pillar: the
    validate gate stops that run before this is used).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.drain_seconds '{"service": {"graceful_timeout": 600}}'
    """
    return _unit("drain_seconds", settings)


def _run(argv, timeout=60):
    return __salt__["cmd.run_all"](argv, python_shell=False, ignore_retcode=True, timeout=timeout)


def processes(name="litellm"):
    """
    The service's supervisor (``main_pid``) and its worker PIDs
    (``workers``, draining ones included).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.processes litellm
    """
    main = __utils__["litellm_systemd.main_pid"](_run, name)
    if not main:
        return {"main_pid": None, "workers": []}
    ps = _run(["ps", "-e", "-o", "pid=,ppid=,args="])
    return {"main_pid": main, "workers": _unit("workers_of", ps.get("stdout", "").splitlines(), main)}


def _status(name):
    path = f"/run/{name}/{__utils__['litellm_unit.status_file']()}"
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def wait_workers(name, before, workers, since, timeout=300, interval=0.5):
    """
    Wait until a rolling reload that began at ``since`` (epoch seconds)
    finished: every worker replaced, all ``workers`` new ones serving
    (``_utils/litellm_unit.reload_done``). Returns ``{"done", "detail",
    "waited", "workers"}``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.wait_workers litellm '{"main_pid": 1, "workers": [2]}' 2 0
    """
    start = time.monotonic()
    while True:
        after = processes(name)
        done, failed, detail = _unit("reload_done", before, after, _status(name), workers, since)
        waited = round(time.monotonic() - start, 2)
        if done or failed or waited >= timeout:
            serving = (_status(name) or {}).get("serving", [])
            return {"done": done, "detail": detail if done or failed else f"timed out: {detail}",
                    "waited": waited, "workers": serving}
        time.sleep(interval)


def _start_verdict(name, workers, since, status, waited):
    """``wait_started``'s answer once the start is decided (serving, refused, failed), else None."""
    after = processes(name)
    serving = list(status.get("serving") or [])
    fresh = status.get("at", 0) >= since and after["main_pid"]
    if fresh and status.get("ok") and len(serving) == int(workers) and set(serving) <= set(after["workers"]):
        return {"done": True, "detail": f"{len(serving)} worker(s) serving{_unit('how_started', status, serving)}",
                "waited": waited, "workers": serving}
    if fresh and not status.get("ok"):
        return {"done": False, "detail": status.get("detail"), "waited": waited, "workers": serving}
    ended = None if after["main_pid"] else __utils__["litellm_systemd.start_failed"](_run, name, since)
    if ended:  # e.g. a config LiteLLM rejected: systemd does not restart that
        return {"done": False, "detail": ended, "waited": waited, "workers": []}
    return None


def wait_started(name, workers, since, timeout=300, interval=0.5, poll=0.05):
    """
    Wait until a supervisor started after ``since`` says all ``workers``
    workers serve. The status file is read every ``poll`` seconds (a file
    read); the processes and systemd are asked when it changes, and every
    ``interval`` seconds (has the start failed?). Returns ``{"done",
    "detail", "waited", "workers"}``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.wait_started litellm 2 0
    """
    start = time.monotonic()
    asked, seen = None, None
    while True:
        status = _status(name) or {}
        now = time.monotonic()
        waited = round(now - start, 2)
        if status != seen or asked is None or now - asked >= interval:
            asked, seen = now, status
            answer = _start_verdict(name, workers, since, status, waited)
            if answer:
                return answer
        if waited >= timeout:
            return {"done": False, "detail": "timed out waiting for the workers", "waited": waited,
                    "workers": list(status.get("serving") or [])}
        time.sleep(poll)


def configured_workers(name="litellm"):
    """
    The worker count the unit's ExecStart gives (``--workers N``), or 1.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.configured_workers litellm
    """
    shown = _run(["systemctl", "show", "-P", "ExecStart", f"{name}.service"]).get("stdout", "")
    return _unit("workers_in", shown)


def loaded_at(name="litellm"):
    """
    When the serving workers loaded the config and env (epoch seconds: the
    supervisor's last report that they all serve), else when the main
    process started, else None.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.loaded_at litellm
    """
    status = _status(name)
    if status and status.get("at") and processes(name)["main_pid"]:
        return float(status["at"])
    return __utils__["litellm_systemd.main_process_start"](name)


def apply_change(name="litellm", path="reload", workers=None, url="http://127.0.0.1:4000", timeout=300, drain=630):
    """
    Put a change live along ``path``: ``reload`` (SIGHUP: new workers one at
    a time, the supervisor stays), ``restart`` (a new supervisor behind the
    held socket) or ``relisten`` (the socket unit changed: stop, new
    socket, start). Waits until every worker serves and readiness answers.
    ``timeout`` bounds the wait for the workers and readiness; a restart
    may first take ``drain`` seconds (TimeoutStopSec: in-flight requests
    finishing). Returns ``{"path", "ok", "detail", "main_pid",
    "main_pid_before", "workers", "waited"}``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_service.apply_change litellm reload workers=2
    """
    workers = int(workers) if workers else configured_workers(name)
    before = processes(name)
    since = time.time()
    if path == "reload" and before["main_pid"]:
        answer = _run(["systemctl", "reload", f"{name}.service"])
        waited = wait_workers(name, before, workers, since, timeout) if answer["retcode"] == 0 else \
            {"done": False, "detail": answer.get("stderr", ""), "waited": 0, "workers": []}
    else:
        if path == "reload":
            path = "restart"  # nothing runs to reload
        if path == "relisten":
            _run(["systemctl", "stop", f"{name}.service", f"{name}.socket"], timeout=drain + timeout)
            answer = _run(["systemctl", "start", f"{name}.socket", f"{name}.service"], timeout=timeout)
        else:
            answer = _run(["systemctl", "restart", f"{name}.service"], timeout=drain + timeout)
        waited = wait_started(name, workers, since, timeout) if answer["retcode"] == 0 else \
            {"done": False, "detail": answer.get("stderr", ""), "waited": 0, "workers": []}
    ready = wait_ready(url, timeout=timeout) if waited["done"] else {"ready": False}
    after = processes(name)
    return {"path": path, "ok": bool(waited["done"] and ready["ready"]), "detail": waited["detail"],
            "main_pid": after["main_pid"], "main_pid_before": before["main_pid"],
            "workers": waited["workers"], "waited": waited["waited"]}

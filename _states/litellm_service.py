"""
``litellm_service.ready``: the run succeeds only once the gateway is ready.
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_service"


def __virtual__():
    if "litellm_service.wait_ready" not in __salt__:
        return (False, "the litellm_service execution module is not loaded")
    return __virtualname__


def ready(name, host="127.0.0.1", port=4000, timeout=180, url=None):
    """
    Wait until the service ``name`` answers 200 on ``/health/readiness`` at
    ``host``:``port`` (a wildcard bind address is asked on loopback). Changes
    nothing; fails with the last answer and the unit's state after ``timeout``.

    .. code-block:: yaml

        litellm-service-running-ready:
          litellm_service.ready:
            - name: litellm
            - host: 0.0.0.0
            - port: 4000
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    # url: the https base_url with litellm:tls (verified with the system store, the site CAs in it)
    url = url or __salt__["litellm_config.local_url"](host, port)
    if __opts__["test"]:
        answer = __salt__["litellm_service.readiness"](url)
        if answer["ready"]:
            ret["comment"] = f"{name} is ready at {url}"
        else:
            ret["result"] = None
            ret["comment"] = f"{name} would be checked for readiness at {url} (now: {answer['detail']})"
        return ret
    answer = __salt__["litellm_service.wait_ready"](url, timeout=timeout)
    if answer["ready"]:
        ret["comment"] = f"{name} is ready at {url} (waited {answer['waited']} s)"
        return ret
    ret["result"] = False
    active = __salt__["service.status"](name)
    ret["comment"] = (
        f"{name} did not become ready at {url} within {timeout} s "
        f"(last answer: {answer['status'] or answer['detail']}; unit active: {active}). "
        f"See: journalctl -u {name}"
    )
    return ret


def _run(argv, timeout=None):
    return __salt__["cmd.run_all"](argv, python_shell=False, ignore_retcode=True, timeout=timeout)


def _systemctl(*args):
    return _run(["systemctl", *args])


# TimeoutStopSec= of the default unit: graceful_timeout 600 s plus litellm_unit's 30 s margin
DEFAULT_DRAIN_S = 630


def running(name, workers=1, host="127.0.0.1", port=4000, timeout=300, watched=(), restart_on=(),
            relisten_on=(), drain=DEFAULT_DRAIN_S, url=None):
    """
    ``<name>.socket`` and ``<name>.service`` enabled and running (the socket
    first: it holds the listener), and a change of this run put live along
    the cheapest safe path: when one of ``watched`` (state IDs this state
    requires) changed, a relisten if one of ``relisten_on`` (the socket unit)
    changed, a restart behind the held socket if one of ``restart_on`` (the
    venv, the service unit, the launcher) changed, else a rolling reload
    (config, env, hook). The comment and ``changes:path`` say which ran.

    (Not a ``watch``: salt-ssh compiles requisites on the controller, which
    has no custom ``mod_watch``; this state reads Salt's ``__running__``.)

    .. code-block:: yaml

        litellm-service-running-service-running:
          litellm_service.running:
            - name: litellm
            - workers: 2
            - watched: [litellm-config-file-config-managed, ...]
            - restart_on: [litellm-service-running-unit-file-managed]
            - relisten_on: [litellm-service-running-socket-file-managed]
            - require: [...]   # every watched state
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    drain = DEFAULT_DRAIN_S if drain is None else drain  # None: settings that do not say it
    socket, service = f"{name}.socket", f"{name}.service"
    # one systemctl for the four answers (enabled? active? of both units)
    shown = __utils__["litellm_systemd.unit_states"](_run, [socket, service])
    todo = [unit for unit in (socket, service) if shown[unit]["enabled"] != "enabled"]
    socket_active = shown[socket]["active"] == "active"
    service_active = shown[service]["active"] == "active"
    unit = __utils__["litellm_unit.changed_watched"]
    changed = unit(__running__, watched)  # noqa: F821 - injected by Salt's state system
    path = __utils__["litellm_unit.change_path"](changed, restart_on, relisten_on)
    if not (socket_active and service_active):
        # Never started here, or stopped: a service that binds the port itself
        # (a unit of before the socket) is stopped first, so the socket can listen.
        path = "restart" if socket_active else "relisten"
    elif not changed:
        path = None
    if __opts__["test"]:
        if todo or path:
            ret["result"] = None
            ret["comment"] = f"{name} would be enabled, started or changed along the {path or 'start'} path"
        else:
            ret["comment"] = f"{socket} and {service} are running"
        return ret
    if todo:  # both in one call: systemctl enable reloads systemd once, not once per unit
        _systemctl("enable", *todo)
        ret["changes"]["enabled"] = todo
    if path is None:
        ret["comment"] = f"{socket} and {service} are running"
        return ret
    ret = _go(ret, name, path, workers, host, port, (timeout, drain), started=not (socket_active and service_active),
              url=url)
    if changed:
        ret["comment"] += f" (changed: {', '.join(changed)})"
    return ret


def _go(ret, name, path, workers, host, port, timeouts, started=False, url=None):
    url = url or __salt__["litellm_config.local_url"](host, port)
    out = __salt__["litellm_service.apply_change"](name, path, workers=workers, url=url, timeout=timeouts[0],
                                                   drain=timeouts[1])
    what = {
        "reload": "RELOADED (rolling workers, supervisor kept: no connection refused)",
        "restart": "RESTARTED behind the held socket (connections waited in its backlog)",
        "relisten": "RESTARTED with a new listening socket (connections refused while it was down)",
    }[out["path"]]
    ret["changes"]["path"] = "start" if started else out["path"]
    ret["changes"]["main_pid"] = {"old": out["main_pid_before"], "new": out["main_pid"]}
    ret["changes"]["workers"] = out["workers"]
    if out["ok"]:
        verb = "STARTED" if started else what
        ret["comment"] = f"{name}: {verb}; {out['detail']} after {out['waited']} s, ready"
    else:
        ret["result"] = False
        ret["comment"] = f"{name}: {out['path']} failed: {out['detail']}. See: journalctl -u {name}"
        if started and not int(out.get("main_pid_before") or 0):
            ret["comment"] += _stop_socket(name)
            ret["changes"]["stopped"] = [f"{name}.socket"]
    return ret


def _stop_socket(name):
    """After a start that failed with nothing serving before: the socket stopped too, so a client is
    refused at once instead of waiting in its backlog, where each connection would try the start again.
    The next apply starts it (a stopped socket takes the relisten path); the service Requires= it."""
    done = _systemctl("stop", f"{name}.socket")
    if done.get("retcode") == 0:
        return f" ({name}.socket stopped: nothing serves, so clients are refused; the next apply starts it)"
    return f" (stopping {name}.socket failed too: {(done.get('stderr') or '').strip()[-300:]})"

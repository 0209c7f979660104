"""
Preflight check ``bind_port``: ``bind_host:bind_port`` is free, or held by
the litellm service itself; anything else holding it fails naming its PID
and command (LiteLLM would silently move to a random port).
"""

import errno

MOVES = "LiteLLM would silently move to a random port"


def _bind_address(utils, bind_host):
    if bind_host in ("", None):
        return "0.0.0.0"
    if utils.litellm_preflight_dns.is_literal(bind_host):
        return bind_host
    return utils.litellm_net.resolve(bind_host)[0]


def _port_users(proc, port):
    """Sockets on ``port`` with an inode (TIME_WAIT ones have none), LISTEN first."""
    found = [s for s in proc.tcp_sockets() if s["port"] == port and s["inode"]]
    return sorted(found, key=lambda s: s["state"] != "LISTEN")


def _bind_error(where, bind_host, error):
    """(status, detail) when binding failed for another reason than the port being in use."""
    if error.errno == errno.EADDRNOTAVAIL:
        return "fail", f"{where}: {bind_host!r} is not an address of this host"
    if error.errno == errno.EACCES:
        return "warn", f"{where}: a port below 1024 cannot be tried without privileges ({error.strerror})"
    return "fail", f"{where}: cannot bind ({error.strerror or error})"


def service_main_pid(ctx, service):
    """The main PID of the service, asked from systemctl only when systemd is PID 1."""
    systemd = ctx.utils.litellm_systemd
    return systemd.main_pid(ctx.run, service) if systemd.booted(ctx.utils.litellm_proc.pid1_name()) else None


def _own_pids(ctx, pids, service):
    """The PIDs of ``pids`` that are the service's (its main PID or in its cgroup)."""
    if not service:
        return []
    proc = ctx.utils.litellm_proc
    main_pid = service_main_pid(ctx, service)
    own = [pid for pid in pids if pid == main_pid or proc.in_service_cgroup(proc.process_cgroup(pid), service)]
    if 1 in pids and _socket_active(ctx, service):
        own.append(1)  # systemd holds the listener for <service>.socket (the formula's socket unit)
    return own


def _socket_active(ctx, service):
    """``<service>.socket`` is active (systemd is PID 1)."""
    if not ctx.utils.litellm_systemd.booted(ctx.utils.litellm_proc.pid1_name()):
        return False
    answer = ctx.run(["systemctl", "is-active", f"{service}.socket"], timeout=5)
    return str(answer.get("stdout", "")).strip() == "active"


def _holders(ctx, settings, where, port):
    """(status, detail) for a port in use: who holds it."""
    proc = ctx.utils.litellm_proc
    users = _port_users(proc, port)
    if not users:
        return "pass", f"{where}: only closing connections (TIME_WAIT) use the port; LiteLLM can bind"
    holders = proc.socket_holders([s["inode"] for s in users])
    pids = []
    for sock in users:
        pids.extend(pid for pid in holders.get(sock["inode"], []) if pid not in pids)
    if not pids:
        uids = sorted({s["uid"] for s in users})
        return "fail", (
            f"{where} is in use ({users[0]['state']}, uid {', '.join(map(str, uids))}) by a process "
            f"this user cannot see (run as root); {MOVES}"
        )
    service = ctx.utils.litellm_settings.service_name(settings)
    own = _own_pids(ctx, pids, service)
    if own:
        return "pass", f"{where} is held by the {service} service itself (PID {', '.join(map(str, own))})"
    owners = ", ".join(f"PID {pid} ({proc.process_command(pid)})" for pid in pids)
    return "fail", f"{where} is held by {owners}; {MOVES}"


def check_bind_port(ctx, settings):
    bind_host, port = settings.get("bind_host", "0.0.0.0"), settings.get("bind_port")
    if not ctx.utils.litellm_settings.is_int(port) or not 1 <= port <= 65535 or not isinstance(bind_host, str):
        return "skip", "bind_host/bind_port invalid (see the pillar check)"
    try:
        address = _bind_address(ctx.utils, bind_host)
    except OSError as exc:
        return "fail", f"bind_host {bind_host!r} does not resolve ({exc})"
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    error = ctx.utils.litellm_net.try_bind(address, port)
    if error is None:
        return "pass", f"{where} is free"
    if error.errno != errno.EADDRINUSE:
        return _bind_error(where, bind_host, error)
    return _holders(ctx, settings, where, port)

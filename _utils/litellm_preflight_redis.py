"""
Preflight check ``redis``: with ``litellm:redis:host``, Redis answers at
host:port, accepts ``litellm:redis:password`` (AUTH, sent over the socket
only, never in a process argument) and PING.
"""

import socket
import time

CONNECT_TIMEOUT = 3.0  # seconds


def resp_command(*args):
    """One Redis command in RESP (an array of bulk strings)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else bytes(arg)
        parts.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(parts)


def resp_replies(data):
    """The simple replies (+OK, -ERR ..., :1) of a RESP byte string, as text lines."""
    return [line.decode("utf-8", "replace") for line in data.split(b"\r\n") if line[:1] in (b"+", b"-", b":")]


def redis_verdict(replies, endpoint):
    """(status, detail) from the replies to AUTH then PING."""
    if len(replies) < 2:
        return "fail", f"{endpoint}: no answer to AUTH and PING (not a Redis server?): {replies!r}"
    auth, ping = replies[0], replies[1]
    if auth.startswith("-") and "without any password configured" in auth:
        return "fail", (
            f"{endpoint}: Redis has no password (requirepass) but litellm:redis:password is set; "
            "LiteLLM could not connect. Secure it (litellm.redis) or fix the pillar"
        )
    if auth.startswith("-"):
        return "fail", f"{endpoint}: AUTH refused ({auth.split(' ', 1)[0][1:]}): litellm:redis:password is wrong"
    if ping != "+PONG":
        return "fail", f"{endpoint}: PING after AUTH answered {ping!r}"
    return "pass", f"{endpoint}: AUTH ok, PING answered PONG"


def redis_exchange(host, port, password, timeout=CONNECT_TIMEOUT):
    """AUTH and PING over one socket (the password only goes to Redis); the replies."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(resp_command("AUTH", password) + resp_command("PING"))
        data = b""
        deadline = time.monotonic() + timeout
        while len(resp_replies(data)) < 2 and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return resp_replies(data)


def check_redis(ctx, settings):
    redis = settings.get("redis")
    if not isinstance(redis, dict) or not redis.get("host"):
        return "skip", "no shared state (litellm:redis:host is empty)"
    host, port, password = redis.get("host"), redis.get("port"), redis.get("password")
    valid_port = ctx.utils.litellm_settings.is_int(port)
    if not isinstance(host, str) or not valid_port or not isinstance(password, str) or not password:
        return "skip", "litellm:redis invalid (see the pillar check)"
    endpoint = f"redis {host}:{port}"
    try:
        replies = redis_exchange(host, port, password)
    except OSError as exc:
        return "fail", f"{endpoint}: {exc.strerror or exc} (gateways share their router state there)"
    return redis_verdict(replies, endpoint)

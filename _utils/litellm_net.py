"""
Host readers of the network: name lookups, TCP connects and binds, each
bounded in time, and bounded parallel calls. Sockets are closed at once.
"""

import socket
import threading
import time

CONNECT_TIMEOUT = 3.0  # seconds, every TCP connect


def resolve(host):
    """Addresses of ``host`` (A and AAAA), in getaddrinfo's order, unique."""
    seen = []
    for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
        address = info[4][0].split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


def reverse(address):
    """Names of a reverse (PTR) lookup of ``address``."""
    name, aliases, _ = socket.gethostbyaddr(address)
    return [name] + list(aliases)


def tcp_connect(host, port, timeout=CONNECT_TIMEOUT):
    with socket.create_connection((host, port), timeout=timeout):
        return True


def try_bind(host, port):
    """None when ``host:port`` can be bound (SO_REUSEADDR off, closed at once), else the OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        sock.bind((host, port))
        return None
    except OSError as exc:
        return exc
    finally:
        sock.close()


def parallel(func, items, timeout):
    """
    ``func(item)`` for every item in daemon threads (a hung lookup cannot keep
    the process alive); ``[("ok", value) | ("error", exc) | ("timeout", None)]``.
    """
    answers = [None] * len(items)

    def work(index, item):
        try:
            answers[index] = ("ok", func(item))
        except Exception as exc:  # pylint: disable=broad-except
            answers[index] = ("error", exc)

    threads = [threading.Thread(target=work, args=(i, item), daemon=True) for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [answer if answer is not None else ("timeout", None) for answer in answers]

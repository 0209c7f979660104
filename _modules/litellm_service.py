"""
Ask a running LiteLLM proxy whether it is ready, and wait for it.
"""

import http.client
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

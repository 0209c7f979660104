"""
A burst of simultaneous streaming chat requests against a gateway (stdlib
asyncio, one connection per request, ``Connection: close``), and the outcome
of each, for the overload test and benchmark (issue 19):

- ``served``: 200 and the stream ran to ``data: [DONE]``;
- ``refused``: 429 or 503 (``retry_after``: it had a ``Retry-After`` header;
  ``openai_shaped``: a JSON body with ``error.message``);
- ``other``: any other status (``status`` says which);
- ``reset``: the connection was refused, reset or closed before a whole answer;
- ``timeout``: no whole answer within the time-out.

Every request opens its connection at once (the burst); the caller raises
its own RLIMIT_NOFILE (``raise_nofile``) to hold them.
"""

import asyncio
import json
import resource
import time
from collections import Counter

OUTCOMES = ("served", "refused", "other", "reset", "timeout")


def raise_nofile(wanted):
    """Soft RLIMIT_NOFILE up to ``wanted`` (at most the hard limit); the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def request_bytes(host, port, key, model, text="hi"):
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": text}]}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def one(host, port, payload, timeout, start_gate):
    """One request: a dict with outcome, status, retry_after, openai_shaped, ttfb (s, first body byte)."""
    result = {"outcome": "reset", "status": None, "retry_after": False, "openai_shaped": False, "ttfb": None}
    await start_gate.wait()
    t0 = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                return result
            result["status"] = int(status_line.split()[1])
            headers = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            first = await reader.read(1)
            result["ttfb"] = time.monotonic() - t0
            body = first + await reader.read()
            _classify(result, headers, body)
    except TimeoutError:
        result["outcome"] = "timeout"
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
        result["outcome"] = "reset"
    finally:
        if writer is not None:
            writer.close()
    return result


def _classify(result, headers, body):
    status = result["status"]
    if status == 200:
        # chunked SSE; the whole stream ends with the [DONE] event and the last chunk
        result["outcome"] = "served" if b"data: [DONE]" in body and body.rstrip().endswith(b"0") else "reset"
        return
    if status in (429, 503):
        result["outcome"] = "refused"
        result["retry_after"] = "retry-after" in headers
        text = body.split(b"\r\n", 1)[1] if headers.get("transfer-encoding") == "chunked" else body
        try:
            result["openai_shaped"] = isinstance(json.loads(text.split(b"\r\n")[0])["error"]["message"], str)
        except (ValueError, KeyError, TypeError, IndexError):
            result["openai_shaped"] = False
        return
    result["outcome"] = "other"


async def _burst(host, port, key, model, count, timeout):
    gate = asyncio.Event()
    payload = request_bytes(host, port, key, model)
    tasks = [asyncio.create_task(one(host, port, payload, timeout, gate)) for _ in range(count)]
    await asyncio.sleep(0)
    t0 = time.monotonic()
    gate.set()
    results = await asyncio.gather(*tasks)
    return results, time.monotonic() - t0


def burst(host, port, key, model, count, timeout=120.0):
    """``count`` simultaneous streaming requests; (results, wall seconds)."""
    return asyncio.run(_burst(host, port, key, model, count, timeout))


def summary(results):
    """Counts per outcome, refused without Retry-After or not OpenAI-shaped, other statuses, TTFB p99 of served."""
    counts = Counter(r["outcome"] for r in results)
    refused = [r for r in results if r["outcome"] == "refused"]
    ttfb = sorted(r["ttfb"] for r in results if r["outcome"] == "served")
    return {
        **{name: counts.get(name, 0) for name in OUTCOMES},
        "refused_429": sum(1 for r in refused if r["status"] == 429),
        "refused_503": sum(1 for r in refused if r["status"] == 503),
        "refused_bare": sum(1 for r in refused if not (r["retry_after"] and r["openai_shaped"])),
        "other_statuses": dict(Counter(r["status"] for r in results if r["outcome"] == "other")),
        "ttfb_p99": ttfb[max(0, -(-len(ttfb) * 99 // 100) - 1)] if ttfb else None,
    }

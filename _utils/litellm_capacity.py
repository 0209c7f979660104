"""
What the gateway admits and the limits its unit gets (``litellm:capacity``),
computed from the workers and the memory the settings count on: ``plan``
turns every ``auto`` of the section into a number. Pure functions; the
defaults of every key are in parameters/defaults.yaml.

Admission is LiteLLM's own (1.108.7, ``proxy/middleware/admission_control_middleware.py``,
outermost but one of its ASGI stack): per worker ``in_flight_per_worker``
requests run, ``queued_per_worker`` more wait up to ``queue_timeout``
seconds for a slot, the rest get 503 ``overloaded_error`` (OpenAI-shaped JSON)
with ``Retry-After: 1``, which the openai SDK retries. Behind it, uvicorn's
``--limit-concurrency`` (a plain-text 503 without Retry-After) only stops a
worker from holding more connections than its file descriptors allow, and
``--backlog`` sizes the listen queue. Backend connections per worker are
bounded by LiteLLM's aiohttp pool (``AIOHTTP_CONNECTOR_LIMIT`` and
``AIOHTTP_CONNECTOR_LIMIT_PER_HOST``, defaults 1,000 and 500) at the
admitted requests, and reused (keep-alive).
"""

AUTO = "auto"
KEYS = (
    "in_flight_per_worker",
    "queued_per_worker",
    "queue_timeout",
    "connections_per_worker",
    "backlog",
    "nofile",
    "tasks_max",
    "memory_mib",
    "memory_share",
    "memory_high_mib",
    "memory_max_mib",
    "cpu_in_flight_per_worker",
    "mib_per_request",
    "worker_mib",
    "nofile_headroom",
    "tasks_per_process",
)
CONNECTIONS_PER_HELD = 16  # auto connections_per_worker: 16 x (in flight + queued), so a burst is answered by LiteLLM
MAX_BACKLOG = 65535  # the kernel's ceiling for listen(2) (net.core.somaxconn)
MEMORY_MAX_OVER_HIGH = 1.25


def _num(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _given(section, key, computed):
    """``section[key]`` when it is a number (pillar wins), else ``computed`` (auto)."""
    value = section.get(key, AUTO)
    return value if _num(value) else computed


def workers_of(settings):
    """The uvicorn workers (1 while ``auto`` is unresolved: map.jinja resolves it on the target's grains)."""
    service = settings.get("service") if isinstance(settings, dict) else None
    workers = service.get("workers") if isinstance(service, dict) else None
    return workers if isinstance(workers, int) and not isinstance(workers, bool) and workers > 0 else 1


def section_of(settings):
    section = settings.get("capacity") if isinstance(settings, dict) else None
    return section if isinstance(section, dict) else {}


def memory_limits(section, memory_mib):
    """(MemoryHigh MiB, MemoryMax MiB) of the unit; (0, 0) when the memory is unknown (no limit)."""
    share = section.get("memory_share")
    high = int(memory_mib * share) if _num(memory_mib) and memory_mib > 0 and _num(share) else 0
    high = _given(section, "memory_high_mib", high)
    ceiling = int(high * MEMORY_MAX_OVER_HIGH)
    if _num(memory_mib) and memory_mib > 0:
        ceiling = min(ceiling, int(memory_mib))
    return high, _given(section, "memory_max_mib", ceiling)


def in_flight_by_memory(section, workers, memory_high_mib):
    """Requests a worker can hold in MemoryHigh beside the workers' own memory; None when unbounded."""
    per_request = section.get("mib_per_request")
    worker_mib = section.get("worker_mib")
    if not memory_high_mib or not _num(per_request) or per_request <= 0 or not _num(worker_mib):
        return None
    spare = memory_high_mib - workers * worker_mib
    return max(1, int(spare / workers / per_request))


def plan(settings):
    """
    The whole capacity as numbers: every key of ``litellm:capacity`` with its
    ``auto`` resolved, plus ``workers`` and the totals ``admitted`` and
    ``queued`` (all workers). Values pillar sets are kept as they are (the
    validation judges them).
    """
    section = section_of(settings)
    workers = workers_of(settings)
    memory_mib = section.get("memory_mib", AUTO)
    high, ceiling = memory_limits(section, memory_mib)
    cpu_cap = section.get("cpu_in_flight_per_worker")
    by_memory = in_flight_by_memory(section, workers, high)
    auto_in_flight = cpu_cap if by_memory is None or not _num(cpu_cap) else min(cpu_cap, by_memory)
    in_flight = _given(section, "in_flight_per_worker", auto_in_flight)
    queued = _given(section, "queued_per_worker", in_flight)
    held = (in_flight + queued) if _num(in_flight) and _num(queued) else 0
    connections = _given(section, "connections_per_worker", CONNECTIONS_PER_HELD * held)
    headroom = section.get("nofile_headroom")
    auto_nofile = int(connections * 2 + headroom) if _num(connections) and _num(headroom) else 0
    per_process = section.get("tasks_per_process")
    auto_tasks = int(per_process * (workers + 1)) if _num(per_process) else 0
    result = dict(section)
    result.update(
        {
            "workers": workers,
            "memory_mib": memory_mib,
            "memory_high_mib": high,
            "memory_max_mib": ceiling,
            "in_flight_per_worker": in_flight,
            "queued_per_worker": queued,
            "connections_per_worker": connections,
            "backlog": _given(section, "backlog", min(MAX_BACKLOG, connections) if _num(connections) else 0),
            "nofile": _given(section, "nofile", auto_nofile),
            "tasks_max": _given(section, "tasks_max", auto_tasks),
        }
    )
    if _num(in_flight) and _num(queued):
        result.update({"admitted": in_flight * workers, "queued": queued * workers})
    return result


def general_settings(capacity):
    """LiteLLM's ``general_settings`` keys of its per-worker admission control."""
    return {
        "max_in_flight_requests_per_worker": int(capacity["in_flight_per_worker"]),
        "max_queued_requests_per_worker": int(capacity["queued_per_worker"]),
        "admission_queue_timeout_seconds": capacity["queue_timeout"],
    }


def pool_environment(capacity):
    """The environment that bounds a worker's backend connections (LiteLLM's shared aiohttp pool)."""
    limit = int(capacity["in_flight_per_worker"])
    return {"AIOHTTP_CONNECTOR_LIMIT": str(limit), "AIOHTTP_CONNECTOR_LIMIT_PER_HOST": str(limit)}


def uvicorn_flags(capacity):
    """uvicorn's own limits: connections a worker holds (bare 503 beyond) and the listen backlog."""
    return ["--limit-concurrency", str(int(capacity["connections_per_worker"])),
            "--backlog", str(int(capacity["backlog"]))]


def unit_lines(capacity):
    """The [Service] resource-limit lines of litellm.service (MemoryHigh/Max only when the memory is known)."""
    env = " ".join(f"{key}={value}" for key, value in pool_environment(capacity).items())
    lines = [f"Environment={env}", f"LimitNOFILE={int(capacity['nofile'])}", f"TasksMax={int(capacity['tasks_max'])}"]
    if capacity.get("memory_high_mib"):
        lines.append(f"MemoryHigh={int(capacity['memory_high_mib'])}M")
    if capacity.get("memory_max_mib"):
        lines.append(f"MemoryMax={int(capacity['memory_max_mib'])}M")
    return lines


def sysctl_needs(capacity):
    """What the host's kernel must allow: {sysctl: (minimum, pillar key that needs it)}."""
    workers = capacity["workers"]
    return {
        "fs.file-max": (int(capacity["nofile"]) * (workers + 1), "capacity:nofile"),
        "fs.nr_open": (int(capacity["nofile"]), "capacity:nofile"),
        "net.core.somaxconn": (int(capacity["backlog"]), "capacity:backlog"),
    }

"""
Validation of ``litellm:capacity``: each key's type and range, then the
plan (``litellm_capacity.plan``) against what the host can hold: the
admitted requests and the workers within MemoryHigh, MemoryMax within the
memory, enough file descriptors for the connections a worker holds, no more
than the kernel allows. The live host's sysctls are preflight's
(``litellm_preflight_capacity``). Messages name the pillar key.
"""

AUTO_KEYS = {
    # key: (low, high) when a number; "auto" is allowed as well
    "in_flight_per_worker": (1, 100_000),
    "queued_per_worker": (0, 100_000),
    "connections_per_worker": (1, 500_000),
    "backlog": (1, 65535),
    "nofile": (1024, 1_048_576),  # fs.nr_open's default: systemd cannot set LimitNOFILE above it
    "tasks_max": (16, 4_194_304),
    "memory_mib": (256, 64 * 2**20),
    "memory_high_mib": (128, 64 * 2**20),
    "memory_max_mib": (128, 64 * 2**20),
}
NUMBER_KEYS = {
    "queue_timeout": (0.1, 60),
    "memory_share": (0.1, 0.9),
    "cpu_in_flight_per_worker": (1, 100_000),
    "mib_per_request": (0.01, 1024),
    "worker_mib": (50, 65536),
    "nofile_headroom": (64, 1_000_000),
    "tasks_per_process": (16, 65536),
}
MIN_TASKS_PER_PROCESS = 16


def _check_keys(utils, errors, section):
    v = utils.litellm_validate
    v.unknown_keys(errors, "litellm:capacity", section, set(AUTO_KEYS) | set(NUMBER_KEYS))
    for key, (low, high) in AUTO_KEYS.items():
        value = section.get(key, "auto")
        if value != "auto" and (not v.is_int(value) or not low <= value <= high):
            errors.append(f"litellm:capacity:{key}: must be auto or an integer from {low} to {high}, "
                          f"got {v.describe(value)}")
    for key, (low, high) in NUMBER_KEYS.items():
        v.check_number(errors, f"capacity:{key}", section.get(key), low, high)


def _check_memory(errors, plan):
    high, ceiling, memory = plan["memory_high_mib"], plan["memory_max_mib"], plan["memory_mib"]
    workers = plan["workers"]
    if isinstance(memory, int) and ceiling and ceiling > memory:
        errors.append(f"litellm:capacity:memory_max_mib: {ceiling} MiB is more than the host's memory "
                      f"({memory} MiB, capacity:memory_mib)")
    if high and ceiling and ceiling < high:
        errors.append(f"litellm:capacity:memory_max_mib: {ceiling} MiB is below memory_high_mib ({high} MiB)")
    if not high:
        return
    workers_mib = workers * plan["worker_mib"]
    if workers_mib >= high:
        errors.append(f"litellm:capacity:memory_high_mib: {high} MiB cannot hold {workers} worker(s) of "
                      f"{plan['worker_mib']} MiB (capacity:worker_mib); lower service:workers or raise it")
        return
    needed = workers_mib + plan["admitted"] * plan["mib_per_request"]
    if needed > high:
        fits = int((high - workers_mib) / workers / plan["mib_per_request"])
        errors.append(f"litellm:capacity:in_flight_per_worker: {plan['in_flight_per_worker']} x {workers} "
                      f"worker(s) x {plan['mib_per_request']} MiB beside the workers is {needed:.0f} MiB, more "
                      f"than MemoryHigh ({high} MiB); at most {fits} per worker fits")


def _check_descriptors(errors, plan):
    held = plan["in_flight_per_worker"] + plan["queued_per_worker"]
    if plan["connections_per_worker"] < held:
        errors.append(f"litellm:capacity:connections_per_worker: {plan['connections_per_worker']} is fewer than "
                      f"in_flight_per_worker + queued_per_worker ({held}): uvicorn would refuse admitted requests")
    needed = plan["connections_per_worker"] * 2 + 64
    if plan["nofile"] < needed:
        errors.append(f"litellm:capacity:nofile: {plan['nofile']} cannot hold connections_per_worker "
                      f"({plan['connections_per_worker']}) x 2 (client and backend) + 64; at least {needed}")
    if plan["nofile"] > AUTO_KEYS["nofile"][1]:
        errors.append(f"litellm:capacity:nofile: {plan['nofile']} is above fs.nr_open's default "
                      f"({AUTO_KEYS['nofile'][1]}); lower capacity:connections_per_worker")
    if plan["tasks_max"] < MIN_TASKS_PER_PROCESS * (plan["workers"] + 1):
        errors.append(f"litellm:capacity:tasks_max: {plan['tasks_max']} is fewer than "
                      f"{MIN_TASKS_PER_PROCESS} per process ({plan['workers']} worker(s) and the supervisor)")


def check_capacity(utils, errors, settings):
    """Append the problems of ``litellm:capacity`` (and of its plan) to ``errors``."""
    section = settings.get("capacity", {})
    if not isinstance(section, dict):
        errors.append(f"litellm:capacity: must be a mapping, got {utils.litellm_validate.describe(section)}")
        return
    before = len(errors)
    _check_keys(utils, errors, section)
    if len(errors) > before:
        return  # the plan of bad values would only repeat them
    plan = utils.litellm_capacity.plan(settings)
    _check_memory(errors, plan)
    _check_descriptors(errors, plan)

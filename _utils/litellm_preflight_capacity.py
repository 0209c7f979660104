"""
Preflight check ``capacity``: the host's kernel allows what
``litellm:capacity`` plans (``litellm_capacity.plan``): ``fs.nr_open`` and
``fs.file-max`` hold the unit's LimitNOFILE (per process, and for the
supervisor and every worker), PID 1 may hand that limit out (its own hard
limit, or CAP_SYS_RESOURCE), and ``net.core.somaxconn`` does not cut the
listen backlog (the kernel silently caps it: a burst's connections beyond
it are dropped and retried by the clients' SYNs, then time out). Read-only;
a fail names the sysctl and the pillar key.
"""

import os

SYSCTL_DIR = "/proc/sys"
CAP_SYS_RESOURCE = 24


def read_sysctl(name, root=SYSCTL_DIR):
    """An integer sysctl (``fs.file-max``), None when it cannot be read."""
    try:
        with open(os.path.join(root, *name.split(".")), encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid1_nofile(proc="/proc"):
    """(PID 1's hard RLIMIT_NOFILE or None, whether PID 1 holds CAP_SYS_RESOURCE)."""
    hard, capable = None, False
    try:
        with open(f"{proc}/1/limits", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Max open files"):
                    value = line.split()[4]
                    hard = None if value == "unlimited" else int(value)
        with open(f"{proc}/1/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    capable = bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return hard, capable


def judge(needs, values, pid1):
    """(status, detail) of the host's sysctls ``values`` against ``needs`` ({sysctl: (minimum, key)})."""
    parts, status = [], "pass"
    for name, (minimum, key) in needs.items():
        value = values.get(name)
        if value is None:
            parts.append(f"{name} unknown")
            status = "warn" if status == "pass" else status
        elif value < minimum:
            parts.append(f"{name} = {value} < {minimum} (litellm:{key}); raise it: sysctl -w {name}={minimum}")
            status = "fail"
        else:
            parts.append(f"{name} = {value} >= {minimum}")
    hard, capable = pid1
    nofile = needs["fs.nr_open"][0]
    if hard is not None and hard < nofile and not capable:
        parts.append(f"PID 1's hard open-files limit {hard} < {nofile} and no CAP_SYS_RESOURCE "
                     f"(litellm:capacity:nofile): systemd cannot set LimitNOFILE={nofile}")
        status = "fail"
    return status, "; ".join(parts)


def check_capacity(ctx, settings):
    capacity = ctx.utils.litellm_capacity
    plan = capacity.plan(settings)
    try:
        needs = capacity.sysctl_needs(plan)
    except (TypeError, ValueError, KeyError):
        return "skip", "litellm:capacity is invalid (see the pillar check)"
    values = {name: read_sysctl(name) for name in needs}
    status, detail = judge(needs, values, pid1_nofile())
    admitted = f"admits {plan.get('admitted')} requests and queues {plan.get('queued')} ({plan['workers']} worker(s))"
    return status, f"{admitted}; {detail}"

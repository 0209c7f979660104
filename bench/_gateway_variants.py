"""
The variants bench/gateway.py measures, on the host side: LiteLLM's stock
start, the formula's deployed unit, and the sweep's candidates (copies of the
deployed unit with other uvicorn flags); and the memory of a unit's processes.
"""

import json
import re

from _lib import container_pids
from tests.harness.site import free_port

VENV = "/opt/litellm/venv"
BENCH_DIR = "/etc/litellm-bench"
RECYCLE = 10000


def flags(workers, recycle=0):
    """uvicorn options of a candidate (the unit runs uvicorn under the formula's launcher)."""
    parts = [f"--workers {workers}"]
    if recycle:
        parts.append(f"--limit-max-requests {recycle} --limit-max-requests-jitter {recycle // 10}")
    return " ".join(parts)


def workers_in(exec_line):
    return int(re.search(r"--workers (\d+)", exec_line).group(1))


SWEEP = [
    ("uvicorn x1", flags(1)),
    ("uvicorn x3", flags(3)),
    ("uvicorn x2, recycle 10k", flags(2, RECYCLE)),
]


def unit_rss(site, unit):
    """[(pid, RSS MiB, PSS MiB)] of the unit's processes, read from this machine's /proc."""
    rows = []
    for pid in container_pids(site.host):
        try:
            with open(f"/proc/{pid}/cgroup") as handle:
                if not re.search(rf"/{re.escape(unit)}\.service$", handle.read(), re.M):
                    continue
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                text = handle.read()
            rss = int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1)) / 1024
            pss = int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1)) / 1024
        except (OSError, AttributeError):
            continue
        rows.append((pid, rss, pss))
    return sorted(rows)


def describe_rss(rows):
    """'RSS total MiB (p1/p2/...), PSS total'."""
    if not rows:
        return "-"
    return (f"{sum(r for _, r, _ in rows):.0f} ({'/'.join(f'{r:.0f}' for _, r, _ in rows)}), "
            f"PSS {sum(p for _, _, p in rows):.0f}")


class Variant:
    def __init__(self, name, unit, url, start, stop):
        self.name, self.unit, self.url, self._start, self._stop = name, unit, url, start, stop
        self.port = int(url.rsplit(":", 1)[1])

    def start(self):
        self._start()

    def stop(self):
        self._stop()


def make_variants(site, sweep):
    host = site.host
    deployed = host.run(["cat", "/etc/systemd/system/litellm.service"]).stdout
    exec_line = next(line for line in deployed.splitlines() if line.startswith("ExecStart="))
    host.run(["mkdir", "-p", BENCH_DIR])
    config = json.loads(json.dumps(_yaml(host.run(["cat", "/etc/litellm/config.yaml"]).stdout)))
    stock_config = {
        "model_list": config["model_list"],
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    host.run(["tee", f"{BENCH_DIR}/stock.yaml"], input=json.dumps(stock_config, indent=2))
    env = (f"LITELLM_MASTER_KEY={site.master_key}\nLITELLM_LOCAL_MODEL_COST_MAP=True\n"
           f"OLLAMA_API_BASE={site.stubs[0].url}\n")
    host.run(["sh", "-c", f"umask 077; cat > {BENCH_DIR}/stock.env"], input=env)
    variants = []
    ports = iter(site_free_ports(site, 1 + len(sweep or [])))
    stock_port = next(ports)

    def stock_start():
        host.run(["systemd-run", "--unit=litellm-stock", "--property=WorkingDirectory=/root",
                  f"--property=EnvironmentFile={BENCH_DIR}/stock.env", "--setenv=HOME=/root",
                  f"{VENV}/bin/litellm", "--config", f"{BENCH_DIR}/stock.yaml", "--host", "127.0.0.1",
                  "--port", str(stock_port)])

    def stock_stop():
        host.run(["systemctl", "stop", "litellm-stock"], check=False)
        host.run(["systemctl", "reset-failed", "litellm-stock"], check=False)

    variants.append(Variant("stock: litellm --config (1 uvicorn worker, default logging)", "litellm-stock",
                            f"http://127.0.0.1:{stock_port}", stock_start, stock_stop))
    variants.append(Variant(f"formula defaults ({workers_in(exec_line)} uvicorn workers, on litellm.socket)",
                            "litellm", site.url,
                            lambda: host.run(["systemctl", "start", "litellm.socket", "litellm"]),
                            lambda: host.run(["systemctl", "stop", "litellm.socket", "litellm"])))
    for index, (label, extra) in enumerate(sweep or []):
        unit, port = f"litellm-sweep{index}", next(ports)
        # a candidate listens itself (no socket unit): the launcher takes uvicorn's --host/--port
        line = re.sub(r"--workers \d+", extra, exec_line.replace("--fd 3", f"--host 127.0.0.1 --port {port}"))
        text = "\n".join(row for row in deployed.replace(exec_line, line).splitlines()
                         if not row.startswith(("Requires=litellm.socket", "After=litellm.socket")))
        host.run(["tee", f"/etc/systemd/system/{unit}.service"], input=text + "\n")

        def start(unit=unit):
            host.run(["systemctl", "daemon-reload"])
            host.run(["systemctl", "start", unit])

        variants.append(Variant(f"candidate: {label}", unit, f"http://127.0.0.1:{port}", start,
                                lambda unit=unit: host.run(["systemctl", "stop", unit], check=False)))
    return variants


def site_free_ports(site, count):
    """count free loopback ports other than the gateway's (the host shares this machine's network)."""
    ports = set()
    while len(ports) < count:
        port = free_port()
        if port != site.port:
            ports.add(port)
    return sorted(ports)


def _yaml(text):
    import salt.utils.yaml

    return salt.utils.yaml.safe_load(text)

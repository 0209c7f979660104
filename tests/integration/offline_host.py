"""
The host side of tests/integration/test_offline.py (not a test module: it
boots nothing): helpers that run inside the host with its /usr/bin/python3
(HTTP, readiness; secrets on stdin), commands in the host's network
namespace, and ``Offline``: the host cut down to its loopback with the
backends on it, and the two witnesses of what the service tries to reach (a
Python audit hook in the service, nftables in the host's namespace).
"""

import ipaddress
import json
import subprocess
import textwrap
import time

from .conftest import FORMULA_IN_HOST

MODELS = ["llama3.2:3b", "qwen2.5:7b"]
STUBS = ("llm01", "llm02")
AUDIT_DIR = "/etc/litellm-audit"
AUDIT_DROPIN = "/etc/systemd/system/litellm.service.d/50-audit.conf"
AUDIT_MARK = "AUDIT-NET "
#: every non-local destination is routed into the loopback, to this address,
#: where nothing listens: a connection attempt is refused at once (no timeout)
SINK = "192.0.2.1"  # TEST-NET-1
NFT_TABLE = "litellm_offline_audit"

# --- in-host helpers (run with the host's /usr/bin/python3; secrets on stdin) ---------

HTTP_HELPER = r"""
import json, sys, time, urllib.error, urllib.request
req = json.load(sys.stdin)
headers = {"Content-Type": "application/json"}
if req.get("key"):
    headers["Authorization"] = "Bearer " + req["key"]
data = json.dumps(req["body"]).encode() if req.get("body") is not None else None
r = urllib.request.Request(req["url"], data=data, headers=headers, method=req.get("method", "GET"))
try:
    with urllib.request.urlopen(r, timeout=req.get("timeout", 60)) as resp:
        out = {"status": resp.status, "headers": dict(resp.headers), "body": resp.read().decode("utf-8", "replace")}
except urllib.error.HTTPError as exc:
    out = {"status": exc.code, "headers": dict(exc.headers), "body": exc.read().decode("utf-8", "replace")}
print(json.dumps(out))
"""

WAIT_HELPER = r"""
import sys, time, urllib.request
url, limit = sys.argv[1], float(sys.argv[2])
start = time.monotonic()
last = None
while time.monotonic() - start < limit:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            if resp.status == 200:
                print(f"{time.monotonic() - start:.3f}")
                sys.exit(0)
    except Exception as exc:  # not up yet
        last = exc
    time.sleep(0.2)
print(f"not ready within {limit}s: {last!r}")
sys.exit(1)
"""

SITECUSTOMIZE = r'''
# Written by tests/integration/test_offline.py (removed after the test):
# one journal line per network event of every Python process of the unit.
import json as _json
import os as _os
import sys as _sys
import urllib.parse as _urlparse

_AUDIT_EVENTS = frozenset({
    "socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg",
    "socket.gethostbyname", "socket.gethostbyaddr", "urllib.Request", "http.client.connect",
})


def _audit_net(event, args):
    if event not in _AUDIT_EVENTS:
        return
    try:
        host, port = None, None
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            address = args[1] if len(args) > 1 else None
            if isinstance(address, tuple):
                host, port = address[0], address[1]
            elif address is not None:
                host = "unix:" + (address.decode("utf-8", "replace") if isinstance(address, bytes) else str(address))
        elif event == "socket.getaddrinfo":
            host, port = args[0], args[1]
        elif event == "urllib.Request":
            parts = _urlparse.urlsplit(args[0])
            host, port = parts.hostname, parts.port or parts.scheme
        elif event == "http.client.connect":
            host, port = args[1], args[2]
        else:
            host = args[0]
        if isinstance(host, bytes):
            host = host.decode("utf-8", "replace")
        if isinstance(port, bytes):
            port = port.decode("utf-8", "replace")
        line = _json.dumps({
            "event": event,
            "host": None if host is None else str(host),
            "port": port if port is None or isinstance(port, int) else str(port),
            "pid": _os.getpid(),
        })
        _os.write(2, ("AUDIT-NET " + line + "\n").encode())
    except Exception as exc:  # never break the service; but say so
        _os.write(2, f"AUDIT-NET-ERROR {event} {exc!r}\n".encode())


_sys.addaudithook(_audit_net)
'''


def host_http(host, url, method="GET", key=None, body=None, timeout=60):
    proc = host.run(
        ["/usr/bin/python3", "-c", HTTP_HELPER],
        input=json.dumps({"url": url, "method": method, "key": key, "body": body, "timeout": timeout}),
        timeout=timeout + 30,
    )
    return json.loads(proc.stdout)


def chat(host, port, key, model, text):
    return host_http(
        host,
        f"http://127.0.0.1:{port}/v1/chat/completions",
        "POST",
        key,
        {"model": model, "messages": [{"role": "user", "content": text}], "stream": False},
    )


def wait_ready(host, port, limit=180):
    proc = host.run(
        ["/usr/bin/python3", "-c", WAIT_HELPER, f"http://127.0.0.1:{port}/health/readiness", str(limit)],
        check=False,
        timeout=limit + 30,
    )
    assert proc.returncode == 0, f"gateway not ready: {proc.stdout}{proc.stderr}"
    return float(proc.stdout.strip())


def absent(host, path):
    return host.run(["test", "!", "-e", path], check=False).returncode == 0


def netns(host, *argv, input=None, check=True):
    """A command of this machine (ip, nft) in the host's network namespace."""
    proc = subprocess.run(
        ["nsenter", "-t", str(host.pid1), "-n", "--", *argv],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc


# --- the cut ---------------------------------------------------------------------------


class Offline:
    """The host cut down to its loopback, the backends on that loopback, the service audited."""

    def __init__(self, host, stubs, site_):
        self.host = host
        self.gateway = host.gateway
        self.ports = [int(url.rsplit(":", 1)[1]) for url in stubs]
        self.site = site_
        self.units = []
        self.cut = False

    def go_offline(self):
        host, gw = self.host, self.gateway
        host.cut_network()
        self.cut = True
        links = netns(host, "ip", "-o", "link", "show", "up").stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
        # the backends' address and the sink, on the loopback; everything else is routed into it
        netns(host, "ip", "addr", "add", f"{gw}/32", "dev", "lo")
        netns(host, "ip", "addr", "add", f"{SINK}/32", "dev", "lo")
        netns(host, "ip", "route", "replace", "default", "dev", "lo", "src", SINK)
        # The host's own eth0 address counts as local: once the link is down the
        # kernel answers leftovers of connections made before the cut (RSTs to
        # the service's pooled connections, sent by no process) towards it.
        local = f"{{ 127.0.0.0/8, {gw}, {host.address}, {SINK} }}"
        netns(
            host,
            "nft",
            "-f",
            "-",
            input=textwrap.dedent(
                f"""\
                table ip {NFT_TABLE} {{
                  set attempts {{ type uid . ipv4_addr . inet_proto . inet_service; flags dynamic; size 65535; }}
                  counter refused {{ }}
                  chain record {{
                    type filter hook output priority -300; policy accept;
                    ip daddr {local} accept
                    meta l4proto {{ tcp, udp }} add @attempts {{ meta skuid . ip daddr . meta l4proto . th dport }}
                    counter name refused
                  }}
                  chain sink {{
                    type nat hook output priority -100; policy accept;
                    ip daddr {local} accept
                    meta l4proto {{ tcp, udp }} dnat to {SINK}:9
                  }}
                }}
                """
            ),
        )

    def start_backends(self):
        host = self.host
        for name, port in zip(STUBS, self.ports):
            unit = f"litellm-offline-stub-{name}"
            host.run(
                [
                    "systemd-run", f"--unit={unit}", "--collect",
                    "/usr/bin/python3", f"{FORMULA_IN_HOST}/tests/ollama_stub.py",
                    "--host", self.gateway, "--port", str(port), "--name", name, "--models", ",".join(MODELS),
                ]
            )
            self.units.append(unit)
        deadline = time.monotonic() + 30
        for port in self.ports:
            while True:
                try:
                    if host_http(host, f"http://{self.gateway}:{port}/api/tags", timeout=5)["status"] == 200:
                        break
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                assert time.monotonic() < deadline, f"stand-in on {self.gateway}:{port} inside the host never came up"
                time.sleep(0.2)

    def backend_stats(self):
        return [
            json.loads(host_http(self.host, f"http://{self.gateway}:{port}/_stub/stats", timeout=10)["body"])
            for port in self.ports
        ]

    def install_audit(self):
        host = self.host
        host.run(["install", "-d", "-m", "0755", AUDIT_DIR, AUDIT_DROPIN.rsplit("/", 1)[0]])
        host.run(["tee", f"{AUDIT_DIR}/sitecustomize.py"], input=SITECUSTOMIZE)
        host.run(["chmod", "0644", f"{AUDIT_DIR}/sitecustomize.py"])
        host.run(["tee", AUDIT_DROPIN], input=f"[Service]\nEnvironment=PYTHONPATH={AUDIT_DIR}\n")
        host.run(["systemctl", "daemon-reload"])

    def audit_lines(self, cursor):
        argv = ["journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_UNIT=litellm.service"]
        if cursor:
            argv += ["--after-cursor", cursor]
        out = self.host.run(argv, check=False).stdout
        return [line for line in out.splitlines() if line.startswith(("AUDIT-NET", "AUDIT-NET-ERROR"))]

    def audit_events(self, cursor):
        """The audit hook's events since ``cursor`` (decoded), and its own error lines."""
        time.sleep(1)  # the journal takes the last lines asynchronously
        self.host.run(["journalctl", "--sync"], check=False)
        lines = self.audit_lines(cursor)
        errors = [line for line in lines if line.startswith("AUDIT-NET-ERROR")]
        events = [json.loads(line[len(AUDIT_MARK):]) for line in lines if line.startswith(AUDIT_MARK)]
        return events, errors

    def print_witnesses(self, events, uid, by_service, others):
        """What the two witnesses saw: the audited events by kind, the kernel's records by user."""
        summary = {}
        for e in events:
            port = "<backend port>" if e["host"] == self.gateway and e["port"] in self.ports else e["port"]
            label = f"{e['event']} {e['host']}" + ("" if port is None else f" port {port}")
            summary[label] = summary.get(label, 0) + 1
        connects = [e for e in events if e["event"] == "socket.connect"]
        print(f"audit: {len(events)} events, {len(connects)} socket.connect; by kind:")
        for label, count in sorted(summary.items()):
            print(f"  {count:5d}  {label}")
        print(f"kernel: packets to non-local destinations by the service (uid {uid}): {by_service}")
        print(f"kernel: by other users of the host (root: salt-call, ...; not the service): {others}")
        return summary

    def attempts(self):
        out = netns(self.host, "nft", "-j", "list", "set", "ip", NFT_TABLE, "attempts").stdout
        for item in json.loads(out)["nftables"]:
            if "set" in item:
                return [tuple(e["concat"]) for e in item["set"].get("elem", [])]
        return []

    def cleanup(self):
        host = self.host
        errors = []
        for unit in self.units:
            proc = host.run(["systemctl", "stop", unit], check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr)
        host.run(["rm", "-f", AUDIT_DROPIN, f"{AUDIT_DIR}/sitecustomize.py"], check=False)
        host.run(["rmdir", AUDIT_DIR, AUDIT_DROPIN.rsplit("/", 1)[0]], check=False)
        host.run(["systemctl", "daemon-reload"], check=False)
        if self.cut:
            netns(host, "nft", "delete", "table", "ip", NFT_TABLE, check=False)
            netns(host, "ip", "route", "del", "default", "dev", "lo", check=False)
            netns(host, "ip", "addr", "del", f"{SINK}/32", "dev", "lo", check=False)
            netns(host, "ip", "addr", "del", f"{self.gateway}/32", "dev", "lo", check=False)
            host.restore_network()
        # the service without the hook, on the machine's backends again
        host.run(["systemctl", "restart", "litellm"], check=False)
        return errors


def is_local(host_value, gateway):
    """An audited destination that stays on the host: loopback, a unix socket, the backends' address."""
    if host_value in (None, "", "localhost", gateway) or str(host_value).startswith("unix:"):
        return True
    try:
        return ipaddress.ip_address(str(host_value).split("%", 1)[0]).is_loopback
    except ValueError:
        return False

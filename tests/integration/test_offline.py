"""
Issue 6 end to end, on a systemd host with its own network and no way out:

- a package mirror over TLS with a certificate from a CA this test makes: the
  deploy (salt-ssh) is refused at the preflight without the CA in pillar
  ``litellm:ca_certificates``, naming the index and the key, and changes
  nothing; with it the CA lands in the system trust store, LiteLLM and uv come
  from the mirror, and a re-apply touches the mirror not at all;
- offline: with the host cut down to its loopback, the running service (and
  ``salt-call --local state.apply``) work with backends on that loopback, and
  the service never tries to reach anything else. Two witnesses: a Python
  audit hook in the service (every connect, address lookup, sendto, urllib
  and http.client request, to the journal) and the kernel (nftables in the
  host's network namespace records every packet to a non-local destination,
  with the uid that sent it, and refuses it at once).

The host (``network="veth"``, ``nat=False``) reaches only the machine's end of
its veth pair (``host.gateway``), where the stand-in Ollama servers and the
mirror listen; it has no route to anything else, even before the cut.
"""

import json
import textwrap
import time
import warnings

import pytest
import salt.utils.yaml

from tests.conftest import REPO
from tests.harness import mirror, site
from tests.harness.systemd_host import rootfs_meta

from .conftest import (
    FORMULA_IN_HOST,
    TARGET,
    Applier,
    Site,
    gateway_host,
    journal_cursor,
    ollama_stub,
    service_show,
)

pytestmark = pytest.mark.integration

LOCK = REPO / "salt/litellm/files/locks/litellm-1.108.7.txt"
MODELS = ["llama3.2:3b", "qwen2.5:7b"]
STUBS = ("llm01", "llm02")
CA_NAME = "site-root"
CA_FILE = f"/usr/local/share/ca-certificates/litellm-salt-{CA_NAME}.crt"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
AUDIT_DIR = "/etc/litellm-audit"
AUDIT_DROPIN = "/etc/systemd/system/litellm.service.d/50-audit.conf"
AUDIT_MARK = "AUDIT-NET "
#: every non-local destination is routed into the loopback, to this address,
#: where nothing listens: a connection attempt is refused at once (no timeout)
SINK = "192.0.2.1"  # TEST-NET-1
NFT_TABLE = "litellm_offline_audit"
#: generous on a busy 2-core machine (~5-15 s measured); a download that waits
#: for a timeout (price map, tokenizer) would show as much more
START_LIMIT_S = 60

NUMBERS = {}

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
    import subprocess

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


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("offline")


@pytest.fixture(scope="module")
def gpg(work):
    return site.make_gpg_home(work / "gpg")


@pytest.fixture(scope="module")
def pillar_dir(work):
    path = work / "pillar"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def host(rootfs, pillar_dir, gpg):
    """A systemd host whose only way out is the machine's end of its veth pair."""
    # No workdir: the default work root holds the lock that numbers veth networks
    # for every test run on this machine.
    with gateway_host(rootfs, "litellm-offline", pillar_dir, gpg, network="veth", nat=False) as systemd_host:
        yield systemd_host


@pytest.fixture(scope="module")
def stubs(host):
    """Two stand-in Ollama servers on this machine, on the host's gateway address."""
    started = []
    try:
        for name in STUBS:
            started.append(ollama_stub.start_stub_process(name, MODELS, host=host.gateway))
        yield [url for _, url in started]
    finally:
        for proc, _ in started:
            ollama_stub.stop_stub_process(proc)


@pytest.fixture(scope="module")
def ca(work, host):
    authority = mirror.make_ca(work / "ca", name="litellm-salt offline test CA")
    cert, key = authority.issue(work / "server", [host.gateway])
    return authority, cert, key


@pytest.fixture(scope="module")
def house(host):
    """The lock's files for the host's python3 (the rootfs's X.Y: 3.13 on trixie, 3.11 on bookworm)."""
    return mirror.wheelhouse(LOCK, python_version=rootfs_meta(host.rootfs)["python"])


@pytest.fixture(scope="module")
def index(house, ca, host):
    _, cert, key = ca
    with mirror.PackageIndex(house, (host.gateway, 0), cert, key) as served:
        yield served


@pytest.fixture(scope="module")
def offline_site(pillar_dir, gpg, stubs, index):
    settings = site.site_settings(
        stubs,
        site.free_port(),
        ca_bundle="",
        package_index={"url": index.url, "extra_urls": []},
        preflight={"evidence_dir": ""},
    )
    return Site(pillar_dir, gpg, site.new_master_key(), settings)


@pytest.fixture(scope="module")
def apply(salt_factories, offline_site, gpg, host, work):
    root = work / "controller"
    root.mkdir()
    master = salt_factories.salt_master_daemon(
        "offline", overrides=site.master_config(root, offline_site.pillar_dir, gpg)
    )
    roster = site.roster(TARGET, 22, host.client_key)
    roster[TARGET]["host"] = host.address
    roster_file = work / "roster"
    roster_file.write_text(salt.utils.yaml.safe_dump(roster))
    cli = master.salt_ssh_cli(
        roster_file=str(roster_file), client_key=str(host.client_key), ssh_user="root", timeout=900
    )
    return Applier(cli, host, [])


def _manifest_file(house, name):
    files = json.loads((house / mirror.MANIFEST).read_text())["files"]
    return next(f["filename"] for f in files if f["name"] == name)


@pytest.fixture(scope="module")
def refused(apply, offline_site, index):
    """The deploy without the CA: refused at the preflight."""
    assert "ca_certificates" not in offline_site.settings
    index.requests.clear()
    index.errors.clear()
    return apply.salt_ssh("state.apply", "litellm")


@pytest.fixture(scope="module")
def deployed(apply, offline_site, ca, index):
    """The deploy with the CA in pillar, from the mirror."""
    authority, _, _ = ca
    settings = dict(offline_site.settings, ca_certificates={CA_NAME: authority.cert_path.read_text()})
    offline_site.write(settings)
    index.requests.clear()
    index.errors.clear()
    run = apply.salt_ssh("state.apply", "litellm")
    NUMBERS["deploy_s"] = run.elapsed
    NUMBERS["index_requests_deploy"] = len(index.requests)
    NUMBERS["index_files_deploy"] = len(index.file_requests())
    run.assert_ok()
    return run


# --- a. without the CA ------------------------------------------------------------------


def test_without_the_ca_the_deploy_is_refused_and_nothing_changes(refused, host, index):
    assert refused.returncode != 0, refused.text[-3000:]
    failed = refused.failed()
    assert "litellm-preflight-go" in failed, refused.text[-3000:]
    comment = failed["litellm-preflight-go"]
    host_port = index.url.split("//", 1)[1].split("/", 1)[0]
    print(f"\npreflight without the CA:\n{comment}")
    assert "Preflight NO-GO" in comment
    assert host_port in comment, comment
    assert "litellm:ca_certificates" in comment, comment
    assert "not trusted by the system trust store" in comment, comment
    # failhard: nothing after the gate ran, nothing changed
    assert refused.changed() == [], refused.changed()
    for path in ("/opt/litellm", "/etc/litellm", "/etc/systemd/system/litellm.service", CA_FILE):
        assert absent(host, path), f"{path} exists after a refused deploy"
    assert host.run(["getent", "passwd", "litellm"], check=False).returncode == 2
    # the preflight's TLS probes never got past the handshake: no request, no file
    assert index.file_requests() == []
    assert index.requests == []
    assert index.errors, "the index saw no refused handshake"
    print(f"the index saw {len(index.errors)} refused handshake(s), e.g. {index.errors[0]}")


# --- b. with the CA ---------------------------------------------------------------------


def test_with_the_ca_the_deploy_succeeds_from_the_mirror(deployed, host, index, house, ca, offline_site):
    authority, _, _ = ca
    states = deployed.states
    assert states["litellm-preflight-go"]["result"] is True
    assert "PASS" in states["litellm-smoke-passed"]["comment"]
    assert f"litellm-package-install-ca-{CA_NAME}-managed" in deployed.changed()
    assert "litellm-package-install-ca-store-updated" in deployed.changed()

    # the CA is in the system trust store of the host
    installed = host.run(["cat", CA_FILE]).stdout
    assert installed.strip() == authority.cert_path.read_text().strip()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    bundle = host.run(["cat", SYSTEM_BUNDLE]).stdout.encode()
    with warnings.catch_warnings():  # a Debian root has a negative serial number
        warnings.simplefilter("ignore")
        fingerprints = {cert.fingerprint(hashes.SHA256()) for cert in x509.load_pem_x509_certificates(bundle)}
    assert authority.cert.fingerprint(hashes.SHA256()) in fingerprints

    # LiteLLM and uv came from the mirror
    fetched = index.file_requests()
    assert _manifest_file(house, "litellm") in fetched, fetched
    assert _manifest_file(house, "uv") in fetched, fetched
    assert not index.errors, index.errors
    print(
        f"\ncold deploy from the mirror (salt-ssh): {NUMBERS['deploy_s']:.1f} s; "
        f"index served {NUMBERS['index_requests_deploy']} requests, {NUMBERS['index_files_deploy']} files"
    )

    # the gateway serves a chat from a stand-in on the machine
    answer = chat(host, offline_site.settings["bind_port"], offline_site.master_key, "chat-small", "hello mirror")
    assert answer["status"] == 200, answer["body"][:500]
    reply = json.loads(answer["body"])["choices"][0]["message"]["content"]
    assert reply.startswith("Hello from llm0"), reply


def test_a_reapply_changes_nothing_and_never_asks_the_index(deployed, apply, host, index):
    before = list(index.requests)
    pid = service_show(host, "MainPID")["MainPID"]
    run = apply.salt_ssh("state.apply", "litellm")
    run.assert_ok()
    NUMBERS["reapply_s"] = run.elapsed
    print(f"\nno-op re-apply (salt-ssh): {run.elapsed:.1f} s, changes {run.changed()}")
    assert run.changed() == []
    assert index.requests == before, index.requests[len(before):]
    assert service_show(host, "MainPID")["MainPID"] == pid
    comment = run.states["litellm-preflight-go"]["comment"]
    assert "package_index skip" in comment, comment


# --- c. offline -------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def offline(deployed, host, stubs, offline_site):
    state = Offline(host, stubs, offline_site)
    try:
        yield state
    finally:
        state.cleanup()


def _is_local(host_value, gateway):
    import ipaddress

    if host_value in (None, "", "localhost", gateway) or str(host_value).startswith("unix:"):
        return True
    try:
        return ipaddress.ip_address(str(host_value).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def test_offline_the_service_reaches_nothing_but_its_backends(offline, host, apply, offline_site):
    port = offline_site.settings["bind_port"]
    key = offline_site.master_key
    offline.go_offline()
    offline.start_backends()
    offline.install_audit()
    litellm_uid = int(host.run(["id", "-u", "litellm"]).stdout.strip())

    cursor = journal_cursor(host)
    started = time.monotonic()
    host.run(["systemctl", "restart", "litellm"])
    ready = wait_ready(host, port)
    start_s = time.monotonic() - started
    NUMBERS["offline_start_s"] = start_s
    shown = service_show(host, "MainPID", "InvocationID", "Environment")
    assert f"PYTHONPATH={AUDIT_DIR}" in shown["Environment"], shown

    # the gateway works on the loopback only, with the backends in here
    answer = chat(host, port, key, "chat-large", "hello offline")
    assert answer["status"] == 200, answer["body"][:500]
    assert json.loads(answer["body"])["choices"][0]["message"]["content"].startswith("Hello from llm0")

    # the formula, run inside with no network: passes (smoke included), changes nothing
    run = apply.salt_call("state.apply", "litellm")
    run.assert_ok()
    NUMBERS["offline_salt_call_s"] = run.elapsed
    assert run.changed() == [], run.changed()
    smoke = run.states["litellm-smoke-passed"]["comment"]
    assert "PASS" in smoke, smoke
    assert service_show(host, "MainPID", "InvocationID") == {
        "MainPID": shown["MainPID"],
        "InvocationID": shown["InvocationID"],
    }
    chats = [stats["requests"].get("/api/chat", 0) for stats in offline.backend_stats()]
    assert all(count > 0 for count in chats), f"not both backends in the host served chats: {chats}"

    # the witnesses
    time.sleep(1)  # the journal takes the last lines asynchronously
    host.run(["journalctl", "--sync"], check=False)
    lines = offline.audit_lines(cursor)
    events = []
    errors = [line for line in lines if line.startswith("AUDIT-NET-ERROR")]
    for line in lines:
        if line.startswith(AUDIT_MARK):
            events.append(json.loads(line[len(AUDIT_MARK):]))
    outside = [e for e in events if not _is_local(e["host"], offline.gateway)]
    attempts = offline.attempts()
    by_service = [a for a in attempts if a[0] == litellm_uid]
    others = [a for a in attempts if a[0] != litellm_uid]

    summary = {}
    for e in events:
        port = "<backend port>" if e["host"] == offline.gateway and e["port"] in offline.ports else e["port"]
        label = f"{e['event']} {e['host']}" + ("" if port is None else f" port {port}")
        summary[label] = summary.get(label, 0) + 1
    connects = [e for e in events if e["event"] == "socket.connect"]
    NUMBERS["audited_events"] = len(events)
    NUMBERS["audited_connects"] = len(connects)
    print(
        f"\noffline: restart to /health/readiness {start_s:.1f} s (readiness poll {ready:.1f} s); "
        f"salt-call --local state.apply {run.elapsed:.1f} s, 0 changes; backends' chats {chats}"
    )
    print(f"audit: {len(events)} events, {len(connects)} socket.connect; by kind:")
    for label, count in sorted(summary.items()):
        print(f"  {count:5d}  {label}")
    print(f"kernel: packets to non-local destinations by the service (uid {litellm_uid}): {by_service}")
    print(f"kernel: by other users of the host (root: salt-call, ...; not the service): {others}")

    assert not errors, errors[:10]
    assert outside == [], f"the service tried to reach the outside: {outside[:50]}"
    assert by_service == [], f"the service sent packets to non-local destinations: {by_service}"
    # the hook works: the service's own requests to the backends are among the events
    assert any(e["event"] == "socket.connect" and e["host"] == offline.gateway for e in events), summary
    assert start_s < START_LIMIT_S, f"the service took {start_s:.1f} s to get ready offline"


@pytest.fixture(scope="module", autouse=True)
def report_numbers():
    """Prints what this module measured, for the closing notes (not a benchmark)."""
    yield
    shown = (f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in NUMBERS.items())
    print("\nmeasured: " + ", ".join(shown))

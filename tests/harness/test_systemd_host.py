"""Integration tests for the systemd host harness (tests/harness/systemd_host.py and its modules).

They build (or reuse) the cached rootfs and boot real systemd-nspawn
containers.  Missing prerequisites (root, debootstrap, systemd-nspawn) make
them FAIL with a message saying what to install: a harness that silently
skips would let every formula test built on it skip too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import systemd_host as sh
from tests.harness.common import alive
from tests.harness.mounts import mounts_under
from tests.harness.ssh import ssh_argv

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
#: what the harness appends to every machine (and so host) name
SUFFIX = os.environ.get("LITELLM_HARNESS_SUFFIX", "")


@pytest.fixture(scope="module", autouse=True)
def prerequisites():
    problems = sh.check_prerequisites(need_build=True)
    if problems:
        pytest.fail(
            "systemd host harness cannot run here: "
            + "; ".join(problems)
            + " (these tests need root, debootstrap and systemd-container)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def rootfs(prerequisites) -> Path:
    t0 = time.monotonic()
    path = sh.build_rootfs()
    print(f"rootfs {path} ready in {time.monotonic() - t0:.1f}s")
    return path


@pytest.fixture(scope="module")
def host(rootfs, tmp_path_factory):
    h = sh.SystemdHost(rootfs, "harness-t1", workdir=tmp_path_factory.mktemp("host-t1"))
    h.start()
    print(f"host up: {h.timings}")
    yield h
    h.stop()


def test_rootfs_is_cached_and_complete(rootfs):
    meta = sh.rootfs_meta(rootfs)
    assert meta["salt"] == sh.salt_version()
    # the default: Debian 13, Python 3.13
    assert (meta["suite"], meta["python"]) == ("trixie", "3.13"), meta
    assert "VERSION_CODENAME=trixie" in (rootfs / "etc/os-release").read_text()
    assert (rootfs / "opt/salt/bin/salt-call").exists()
    assert os.readlink(rootfs / "usr/local/bin/salt-call") == "/opt/salt/bin/salt-call"
    assert not list((rootfs / "var/lib/apt/lists").glob("*_Packages")), "apt lists not cleaned"
    assert not list((rootfs / "etc/ssh").glob("ssh_host_*")), "host keys must be per instance"
    # a second call is a cache hit: same path, immediately
    t0 = time.monotonic()
    assert sh.build_rootfs() == rootfs
    assert time.monotonic() - t0 < 2


def test_suites_are_cached_side_by_side(rootfs):
    """The cache key and the directory name carry the suite: bookworm and trixie builds never collide."""
    assert sh.rootfs_key("bookworm") != sh.rootfs_key("trixie")
    assert rootfs.name == f"rootfs-trixie-{sh.rootfs_key('trixie')}"
    assert rootfs.parent == sh.DEFAULT_CACHE_DIR


def test_pid1_is_systemd(host):
    assert host.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert host.pid1 > 1
    assert Path(f"/proc/{host.pid1}/comm").read_text().strip() == "systemd"


def test_system_is_running(host):
    res = host.run(["systemctl", "is-system-running"], check=False)
    assert res.stdout.strip() in ("running", "degraded"), res


def test_hostname(host):
    assert host.run("hostname").stdout.strip() == host.name == "harness-t1" + SUFFIX


def test_own_hostname_resolves(host):
    """debootstrap writes no /etc/hosts line for the host's name; the harness does (else preflight: NO-GO)."""
    assert host.run(["getent", "hosts", host.name]).stdout.split() == ["127.0.1.1", host.name]
    fqdn = host.run(["python3", "-c", "import socket; print(socket.getfqdn())"]).stdout.strip()
    assert fqdn == host.name


def test_ssh_as_root_with_key(host):
    res = host.ssh("id -u")
    assert res.stdout.strip() == "0"
    # the same through the raw argv (what salt-ssh roster / demo scripts use)
    out = subprocess.run(
        host.ssh_argv(["cat", "/proc/1/comm"]), capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "systemd"


def test_sshd_refuses_passwords_and_listens_on_loopback_only(host):
    res = host.run(["sshd", "-T"])
    cfg = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    assert cfg["passwordauthentication"] == "no"
    assert cfg["permitrootlogin"] == "without-password"  # = prohibit-password
    assert cfg["listenaddress"] == f"127.0.0.1:{host.ssh_port}"


def test_run_reports_failures_clearly(host):
    with pytest.raises(sh.CommandError) as ei:
        host.run("echo out; echo err >&2; exit 3")
    assert ei.value.returncode == 3
    assert "out" in str(ei.value) and "err" in str(ei.value)
    assert host.run("exit 4", check=False).returncode == 4
    assert host.run(["cat"], input="piped").stdout == "piped"


def test_ca_bundle_mounted_read_only(host):
    path = sh.CONTAINER_CA_BUNDLE
    inside = host.run(["cat", path]).stdout
    assert inside == Path(sh.HOST_CA_BUNDLE).read_text()
    res = host.run(["sh", "-c", f"echo x >> {path}"], check=False)
    assert res.returncode != 0
    assert "Read-only file system" in res.stderr
    assert Path(sh.HOST_CA_BUNDLE).read_text() == inside


def test_ca_bundle_reaches_pypi(host):
    # what the formula's pip needs: TLS to PyPI through the intercepting CA
    res = host.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "60",
            "--cacert",
            sh.CONTAINER_CA_BUNDLE,
            "https://pypi.org/simple/pip/",
        ],
        timeout=90,
    )
    assert res.stdout.strip() == "200"


def test_salt_call_version(host):
    out = host.run(["/opt/salt/bin/salt-call", "--version"]).stdout
    assert sh.salt_version() in out, out
    assert sh.salt_version() in host.run(["salt-call", "--version"]).stdout


def test_python_venv_works(host):
    host.run(["python3", "-m", "venv", "/tmp/venv-check"], timeout=120)
    res = host.run(["/tmp/venv-check/bin/python", "-c", "import sys; print(sys.prefix)"])
    assert res.stdout.strip() == "/tmp/venv-check"


def test_rootfs_dir_visible_from_host(host):
    host.run("echo hello-from-inside > /root/marker")
    assert (host.rootfs_dir / "root/marker").read_text() == "hello-from-inside\n"
    # and the cached rootfs underneath is untouched
    assert not (host.rootfs / "root/marker").exists()


def test_stop_cleans_up(host):
    nspawn_pid, pid1 = host.nspawn_pid, host.pid1
    inst = host.instance_dir
    assert inst.exists() and alive(nspawn_pid, None)
    t0 = time.monotonic()
    host.stop()
    elapsed = time.monotonic() - t0
    print(f"stop took {elapsed:.2f}s")
    assert not alive(nspawn_pid, None), "systemd-nspawn still running"
    assert not alive(pid1, None), "container PID 1 still running"
    assert mounts_under(inst) == []
    assert not inst.exists()
    host.stop()  # idempotent
    log = host.log_path.read_text(errors="replace")
    assert "Powering off." in log, "container was not shut down cleanly"


def _cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "tests.harness.systemd_host", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        **kw,
    )


def _up(name: str, workdir: Path) -> subprocess.Popen:
    """The CLI's `up` in the background (it keeps the host up until SIGTERM)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.harness.systemd_host", "up", "--name", name, "--workdir", str(workdir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"`up` exited {proc.returncode}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"`up` did not write {path} within {timeout}s")
        time.sleep(0.05)
    return json.loads(path.read_text())


def test_cli_build_up_down(rootfs, tmp_path):
    res = _cli("build", timeout=1800)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(rootfs)

    wd = tmp_path / "cli"
    proc = _up("harness-cli", wd)
    try:
        info = _wait_for(wd / "host.json", proc)
        printed = json.loads(proc.stdout.readline())
        assert printed["pid1"] == info["pid1"]
        for key in ("pid1", "ssh_port", "client_key", "rootfs_dir"):
            assert key in info
        # what a script has: the host.json `up` wrote
        ssh = subprocess.run(
            ssh_argv("127.0.0.1", info["ssh_port"], info["client_key"], "hostname"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ssh.stdout.strip() == "harness-cli" + SUFFIX, ssh.stderr
        down = _cli("down", "--workdir", str(wd), timeout=120)
        assert down.returncode == 0, down.stderr
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            _cli("down", "--workdir", str(wd), timeout=120)
    assert not alive(info["nspawn_pid"], None)
    assert not Path(info["rootfs_dir"]).exists()
    assert not (wd / "host.json").exists()
    assert mounts_under(wd) == []


def test_reap_stale_after_crash(rootfs, tmp_path, monkeypatch):
    """A supervisor killed with SIGKILL leaves an instance behind; reap_stale clears it."""
    # reap_stale warns; keep that away from the root logger, where salt's
    # deferred handler (imported by tests/conftest.py) would print it at exit
    # to pytest's already-closed capture stream ("--- Logging error ---").
    monkeypatch.setattr(sh.log, "propagate", False)
    workroot = tmp_path / "crashroot"
    wd = workroot / "popen-gw0" / "h1"  # as deep as in pytest's temp dirs (tests/conftest.py's sweep)
    proc = _up("harness-crash", wd)
    try:
        info = _wait_for(wd / "host.json", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if info["mode"] == "overlay":
            assert mounts_under(wd / "instance"), "expected the overlay to be left mounted"
        assert sh.reap_stale(workroot, depth=1) == [], "an instance below the depth asked is not looked for"
        reaped = sh.reap_stale(workroot, depth=3)
        assert reaped == [wd / "instance"]
    finally:
        if proc.poll() is None:
            proc.kill()
        sh.reap_stale(workroot, force=True)
    assert not alive(info["nspawn_pid"], None)
    assert not alive(info["pid1"], None)
    assert mounts_under(workroot) == []
    assert not (wd / "instance").exists()


def test_veth_host_has_its_own_address_nat_and_a_cuttable_link(rootfs, tmp_path):
    import http.server
    import threading

    h = sh.SystemdHost(rootfs, "harness-veth", workdir=tmp_path / "veth", network="veth")
    h.start()
    server = None
    try:
        net = h._rec["net"]
        assert h.address.startswith("10.231.") and h.address != h.gateway
        addrs = h.run(["ip", "-o", "-4", "addr", "show", "eth0"]).stdout
        assert f"{h.address}/30" in addrs
        # sshd listens on the host's own address, not on the machine's loopback
        assert h.ssh(["hostname"]).stdout.strip() == h.name == "harness-veth" + SUFFIX
        assert f"{h.address}:22" in h.run(["ss", "-Htln"]).stdout
        # the host reaches a server on the machine's side of the veth pair
        server = http.server.ThreadingHTTPServer((h.gateway, 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://{h.gateway}:{server.server_address[1]}/"
        assert h.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", url]).stdout == "200"
        # NAT: outgoing traffic leaves with the machine's address
        nft = subprocess.run(["nft", "list", "table", "ip", net["nft_table"]], capture_output=True, text=True)
        assert "masquerade" in nft.stdout, nft
        # cut: only loopback is left; restore brings the route back
        h.cut_network()
        cut = h.run(["curl", "-sS", "-o", "/dev/null", "-m", "3", url], check=False)
        assert cut.returncode != 0
        assert h.run(["ip", "-4", "route"]).stdout.strip() == ""
        h.restore_network()
        assert h.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", url]).stdout == "200"
    finally:
        if server is not None:
            server.shutdown()
        h.stop()
    assert not os.path.exists(f"/run/netns/{net['netns']}")
    assert not os.path.exists(f"/sys/class/net/{net['veth']}")
    left = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert net["nft_table"] not in left


def test_two_veth_hosts_get_distinct_addresses_and_reach_each_other(rootfs, tmp_path):
    a = sh.SystemdHost(rootfs, "harness-va", workdir=tmp_path / "va", network="veth")
    b = sh.SystemdHost(rootfs, "harness-vb", workdir=tmp_path / "vb", network="veth")
    with a, b:
        assert a.address != b.address
        # b's sshd answers a (routed through the machine)
        probe = a.run(["python3", "-c",
                       f"import socket; s=socket.create_connection(('{b.address}', 22), 3); print(s.recv(4).decode())"])
        assert probe.stdout.strip() == "SSH-", probe

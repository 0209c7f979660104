"""
Integration layer: a real systemd host (systemd-nspawn), two stand-in Ollama
servers on loopback, and the formula applied with salt-ssh (from the host,
through the container's sshd) and salt-call --local (inside the container).
"""

import contextlib
import copy
import json
import shutil
import sys
import time

import pytest
import salt.utils.yaml

from tests.conftest import REPO, load_salt_module
from tests.harness import site
from tests.harness.systemd_host import SystemdHost, build_rootfs, check_prerequisites

sys.path.insert(0, str(REPO / "tests"))
import ollama_stub  # noqa: E402

from tests.harness.site import FORMULA_IN_HOST, GPG_IN_HOST, MINION_CONF_IN_HOST, PILLAR_IN_HOST  # noqa: E402,F401
from tests.harness.site import TARGET  # noqa: E402,F401
# the formula's record of what it made on a target (litellm_owner: STORE/owned.json)
OWNER_RECORD_IN_HOST = "/var/lib/litellm-salt/owned.json"


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def require_real_host():
    """Fail loudly (never skip) when the machine cannot run a systemd host."""
    problems = check_prerequisites(need_build=True)
    if not shutil.which("gpg"):
        problems.append("gpg not found (apt-get install gnupg)")
    if problems:
        pytest.fail("integration tests need a real systemd host: " + "; ".join(problems), pytrace=False)


class Backends:
    """Two stand-in Ollama servers run as processes (reachable from the container)."""

    def __init__(self, models):
        self.models = list(models)
        self.procs = []
        self.urls = []

    def start(self):
        for name in ("llm01", "llm02"):
            proc, url = ollama_stub.start_stub_process(name, self.models)
            self.procs.append(proc)
            self.urls.append(url)
        return self

    def kill(self, index):
        """Stop one backend: its port is closed (connection refused)."""
        ollama_stub.stop_stub_process(self.procs[index])

    def revive(self, index):
        port = int(self.urls[index].rsplit(":", 1)[1])
        proc, _ = ollama_stub.start_stub_process(f"llm0{index + 1}", self.models, port=port)
        self.procs[index] = proc

    def stop(self):
        for proc in self.procs:
            ollama_stub.stop_stub_process(proc)

    def _call(self, url, method, path, body=None):
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def stats(self):
        return [self._call(url, "GET", "/_stub/stats") for url in self.urls]

    def reset(self):
        for url in self.urls:
            self._call(url, "POST", "/_stub/reset", {})


@pytest.fixture(scope="session")
def backends():
    stubs = Backends(["llama3.2:3b", "qwen2.5:7b"]).start()
    yield stubs
    stubs.stop()


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("site")


@pytest.fixture(scope="session")
def gpg_home(site_dir):
    return site.make_gpg_home(site_dir / "gpg")


@pytest.fixture(scope="session")
def master_key():
    return site.new_master_key()


class Site:
    """The pillar of the test site; tests change it and apply again."""

    def __init__(self, pillar_dir, gpg_home, master_key, settings):
        self.pillar_dir = pillar_dir
        self.gpg_home = gpg_home
        self.master_key = master_key
        self.settings = settings
        self.write()

    def write(self, settings=None):
        if settings is not None:
            self.settings = settings
        site.write_pillar(self.pillar_dir, self.settings, self.gpg_home, self.master_key)

    def write_raw(self, text):
        (self.pillar_dir / "litellm.sls").write_text(text)


@pytest.fixture(scope="session")
def gateway_port():
    return site.free_port()


@pytest.fixture(scope="session")
def test_site(site_dir, gpg_home, master_key, backends, gateway_port):
    return Site(site_dir / "pillar", gpg_home, master_key, site.site_settings(backends.urls, gateway_port))


@pytest.fixture(scope="session")
def rootfs(require_real_host):
    return build_rootfs()


@contextlib.contextmanager
def gateway_host(rootfs, name, pillar_dir, gpg_home, workdir=None, **options):
    """A booted systemd host of ``rootfs`` with the formula, the site's pillar and
    GPG home bound in read-only, and salt-call --local's minion config; stopped
    on the way out. ``options`` go to SystemdHost (network, nat, ...)."""
    binds = {
        str(REPO): FORMULA_IN_HOST,
        str(pillar_dir): PILLAR_IN_HOST,
        str(gpg_home): GPG_IN_HOST,
    }
    systemd_host = SystemdHost(rootfs, name=name, binds_ro=binds, workdir=workdir, **options)
    systemd_host.start()
    try:
        minion = site.minion_config(FORMULA_IN_HOST, PILLAR_IN_HOST, GPG_IN_HOST)
        systemd_host.run(["mkdir", "-p", MINION_CONF_IN_HOST])
        systemd_host.run(["tee", f"{MINION_CONF_IN_HOST}/minion"], input=salt.utils.yaml.safe_dump(minion))
        yield systemd_host
    finally:
        systemd_host.stop()


@pytest.fixture(scope="session")
def host(rootfs, test_site, gpg_home, site_dir):
    """The session's gateway host. Every module that uses it leaves it bare
    (nothing of the formula on it): under xdist any module may come next."""
    with gateway_host(rootfs, "litellm-gw", test_site.pillar_dir, gpg_home, site_dir / "host") as systemd_host:
        yield systemd_host


@pytest.fixture(scope="module", autouse=True)
def session_host_left_bare(request):
    """
    A module that uses the session's host leaves it bare even when its own
    fixture failed before its clean (a failed deploy): its pillar and master
    key are put back and, when the formula's record is still on the host,
    ``litellm.clean`` runs. Under xdist any module may come next on this host.
    """
    items = [item for item in request.session.items if item.path == request.path]
    # a module with a host of its own (bookworm, offline) removes that whole host at its end
    own_host = "host" in vars(request.module)
    if own_host or not any("host" in getattr(item, "fixturenames", ()) for item in items):
        yield
        return
    test_site, host = request.getfixturevalue("test_site"), request.getfixturevalue("host")
    apply = request.getfixturevalue("apply")
    settings, master_key = copy.deepcopy(test_site.settings), test_site.master_key
    yield
    test_site.master_key = master_key
    test_site.write(settings)
    if host.run(["test", "-e", OWNER_RECORD_IN_HOST], check=False).returncode == 0:
        apply.salt_ssh("state.apply", "litellm.clean").assert_ok()


@pytest.fixture(scope="session")
def outputs():
    """Every text Salt printed during the session: scanned for the secret."""
    return []


class Applier:
    """Runs state.apply through salt-ssh or salt-call --local and keeps the output."""

    def __init__(self, ssh_cli, host, outputs):
        self.ssh_cli = ssh_cli
        self.host = host
        self.outputs = outputs

    def salt_ssh(self, *args):
        start = time.monotonic()
        ret = self.ssh_cli.run(*args, minion_tgt=TARGET)
        elapsed = time.monotonic() - start
        self.outputs.extend([ret.stdout, ret.stderr])
        data = ret.data
        if isinstance(data, dict) and TARGET in data and len(data) == 1:
            data = data[TARGET]
        return StateRun(ret.returncode, data, ret.stdout + ret.stderr, elapsed)

    def salt_call(self, *args, timeout=900):
        start = time.monotonic()
        proc = self.host.run(
            ["salt-call", "-c", MINION_CONF_IN_HOST, "--local", "--out=json", *args],
            check=False,
            timeout=timeout,
        )
        elapsed = time.monotonic() - start
        self.outputs.extend([proc.stdout, proc.stderr])
        try:
            data = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError, TypeError):
            data = None
        return StateRun(proc.returncode, data, proc.stdout + proc.stderr, elapsed)


class StateRun:
    def __init__(self, returncode, data, text, elapsed):
        self.returncode = returncode
        self.data = data
        self.text = text
        self.elapsed = elapsed

    @property
    def states(self):
        assert isinstance(self.data, dict), f"no state data; output:\n{self.text[-3000:]}"
        return {key.split("_|-")[1]: value for key, value in self.data.items()}

    def changed(self):
        return sorted(state_id for state_id, state in self.states.items() if state.get("changes"))

    def failed(self):
        return {
            state_id: state.get("comment")
            for state_id, state in self.states.items()
            if state.get("result") is False
        }

    def assert_ok(self):
        assert self.returncode == 0 and not self.failed(), (
            f"apply failed (exit {self.returncode}): {self.failed() if isinstance(self.data, dict) else ''}\n"
            f"{self.text[-4000:]}"
        )
        return self


def make_controller(salt_factories, name, root, pillar_dir, gpg_home):
    """A salt-ssh controller (master config, never started) of its own under root:
    its own salt-ssh cache, so two hosts with the same target id never share grains."""
    root.mkdir(exist_ok=True)
    return salt_factories.salt_master_daemon(name, overrides=site.master_config(root, pillar_dir, gpg_home))


def make_applier(controller, host, outputs, roster_file):
    """An Applier that reaches ``host`` as TARGET through roster_file, with the controller."""
    roster_file.write_text(salt.utils.yaml.safe_dump(site.roster(TARGET, host.ssh_port, host.client_key)))
    cli = controller.salt_ssh_cli(
        roster_file=str(roster_file), client_key=str(host.client_key), ssh_user="root", timeout=900
    )
    return Applier(cli, host, outputs)


@pytest.fixture(scope="session")
def salt_master_factory(salt_factories, test_site, gpg_home, site_dir):
    return make_controller(salt_factories, "controller", site_dir / "controller", test_site.pillar_dir, gpg_home)


@pytest.fixture(scope="session")
def apply(salt_master_factory, host, outputs, site_dir):
    return make_applier(salt_master_factory, host, outputs, site_dir / "roster")


settings_with = site.settings_with


def service_show(host, *props):
    out = host.run(["systemctl", "show", "litellm", *[f"--property={p}" for p in props]]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def gateway_workers(host):
    """PIDs of the supervisor's workers (its children: forked from it, or spawned), draining ones included."""
    main = service_show(host, "MainPID")["MainPID"]
    out = host.run(["ps", "-e", "-o", "pid=,ppid=,args="]).stdout.splitlines()
    return load_salt_module("utils", "litellm_unit").workers_of(out, main)  # the readers' rule, unit-tested


def journal_count(host, pattern, since_cursor=None):
    """How many journal lines of the unit contain ``pattern``."""
    argv = ["journalctl", "--no-pager", "-o", "cat", "-u", "litellm"]
    if since_cursor:
        argv += ["--after-cursor", since_cursor]
    out = host.run(argv, check=False).stdout
    return sum(1 for line in out.splitlines() if pattern in line)


def journal_cursor(host):
    out = host.run(["journalctl", "--no-pager", "-n", "1", "--show-cursor", "-o", "cat"], check=False).stdout
    for line in out.splitlines():
        if line.startswith("-- cursor: "):
            return line[len("-- cursor: ") :]
    return None


def gateway_request(port, method, path, key=None, body=None, timeout=60):
    """One HTTP request to the gateway from this machine: (status, headers, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()

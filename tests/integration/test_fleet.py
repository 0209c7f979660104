"""
Scale-out on real systemd hosts, each in its own network namespace (veth):
a Redis host that `litellm.redis` installs and secures (salt-ssh), two
gateways deployed by ONE salt-ssh command from one roster (`'gw*'`, per-host
pillar for the bind address), a per-model rate limit the two count together
through Redis, and the formula applied from a salt-master to a
salt-minion running inside one of the gateways.

The contrast (the same limit counted per gateway without Redis) runs on real
LiteLLM processes in tests/functional/test_shared_state_live.py.
"""

import datetime
import http.client
import json
import os
import secrets
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import salt.utils.yaml

from tests.conftest import REPO
from tests.harness import site
from tests.harness.systemd_host import SystemdHost

sys.path.insert(0, str(REPO / "tests"))
import ollama_stub  # noqa: E402

pytestmark = pytest.mark.integration

REDIS_ID = "redis1"
GATEWAYS = ("gw1", "gw2")
MINION_ID = "gw2"
PORT = 4000
RPM = 3  # per backend of the limited alias
LIMITED = "chat-limited"
TIMINGS = {}


def fleet_pillar(redis_host, backends):
    return {
        "bind_port": PORT,
        "backends": backends,
        "models": [
            {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
            {"name": LIMITED, "provider": "ollama", "model": "qwen2.5:7b", "rpm": RPM},
        ],
        "routing_strategy": "usage-based-routing-v2",
        "ca_bundle": "/etc/litellm-test/ca-bundle.crt",
        "health_check_interval": 5,
        "redis": {"host": redis_host, "port": 6379, "server": REDIS_ID},
    }


def secrets_sls(gpg_home, master_key, redis_password):
    """litellm_secrets.sls with both secrets GPG-encrypted (as scripts/encrypt-secret.sh writes one)."""

    def block(plaintext, indent):
        return "\n".join(indent + line if line else "" for line in site.encrypt(gpg_home, plaintext).splitlines())

    return (
        "#!yaml|gpg\nlitellm:\n"
        f"  master_key: |\n{block(master_key, '    ')}\n"
        f"  redis:\n    password: |\n{block(redis_password, '      ')}\n"
    )


class Fleet:
    def __init__(self, workdir):
        self.workdir = workdir
        self.hosts = {}
        self.stubs = []
        self.backends = []
        self.redis_password = secrets.token_hex(16)

    def stop(self):
        # in parallel: each stop waits for its container's poweroff
        with ThreadPoolExecutor(max(len(self.hosts), 1)) as pool:
            list(pool.map(lambda host: host.stop(), self.hosts.values()))
        for proc in self.stubs:
            ollama_stub.stop_stub_process(proc)


@pytest.fixture(scope="module")
def fleet(rootfs, tmp_path_factory, gpg_home, master_key):
    workdir = tmp_path_factory.mktemp("fleet")
    fleet = Fleet(workdir)
    try:
        for name in (REDIS_ID, *GATEWAYS):
            fleet.hosts[name] = SystemdHost(rootfs, f"litellm-{name}", network="veth",
                                            workdir=workdir / name).start()
        # the backends listen on every address of this machine: each host
        # reaches them through its own veth
        machine = fleet.hosts[GATEWAYS[0]].gateway
        for name in ("llm01", "llm02"):
            proc, url = ollama_stub.start_stub_process(name, ["llama3.2:3b", "qwen2.5:7b"], host="0.0.0.0")
            fleet.stubs.append(proc)
            fleet.backends.append(f"http://{machine}:{url.rsplit(':', 1)[1]}")
        pillar = workdir / "pillar"
        pillar.mkdir()
        redis_address = fleet.hosts[REDIS_ID].address
        top = {"base": {"*": ["litellm", "litellm_secrets"], **{gw: [gw] for gw in GATEWAYS}}}
        (pillar / "top.sls").write_text(salt.utils.yaml.safe_dump(top))
        (pillar / "litellm.sls").write_text(json.dumps({"litellm": fleet_pillar(redis_address, fleet.backends)}))
        fleet.pillar = pillar
        secret = pillar / "litellm_secrets.sls"
        secret.write_text(secrets_sls(gpg_home, master_key, fleet.redis_password))
        os.chmod(secret, 0o600)
        for name in GATEWAYS:
            # per-host pillar: each gateway listens on its own address only
            (pillar / f"{name}.sls").write_text(json.dumps({"litellm": {"bind_host": fleet.hosts[name].address}}))
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture(scope="module")
def controller(salt_factories, fleet, gpg_home):
    root = fleet.workdir / "controller"
    root.mkdir()
    overrides = site.master_config(root, fleet.pillar, gpg_home)
    # minions in the veth hosts reach the master through their gateway address
    overrides.update({"interface": "0.0.0.0", "auto_accept": True})
    return salt_factories.salt_master_daemon("fleet-controller", overrides=overrides)


@pytest.fixture(scope="module")
def salt_ssh(controller, fleet, outputs):
    roster = {}
    for name, host in fleet.hosts.items():
        entry = site.roster(name, 22, host.client_key)[name]
        entry["host"] = host.address
        roster[name] = entry
    roster_file = fleet.workdir / "roster"
    roster_file.write_text(salt.utils.yaml.safe_dump(roster))
    any_host = next(iter(fleet.hosts.values()))
    cli = controller.salt_ssh_cli(roster_file=str(roster_file), client_key=str(any_host.client_key),
                                  ssh_user="root", timeout=900)

    def run(target, *args):
        start = time.monotonic()
        ret = cli.run(*args, minion_tgt=target)
        elapsed = time.monotonic() - start
        outputs.extend([ret.stdout, ret.stderr])
        return ret, elapsed

    return run


def unwrap(data, target):
    """salt and salt-ssh answer {target: data} for one target (or data alone)."""
    if isinstance(data, dict) and list(data) == [target]:
        return data[target]
    return data


def states_of(data):
    assert isinstance(data, dict), data
    return {key.split("_|-")[1]: value for key, value in data.items()}


def assert_states_ok(data, text):
    states = states_of(data)
    failed = {sid: s.get("comment") for sid, s in states.items() if s.get("result") is False}
    assert not failed, f"{failed}\n{text[-3000:]}"
    return states


def redis_exchange(host, port, *commands, raw=False):
    """Replies (simple lines, or the raw bytes) to the RESP commands, sent over one socket."""
    payload = b""
    for command in commands:
        payload += b"*%d\r\n" % len(command) + b"".join(
            b"$%d\r\n%s\r\n" % (len(part.encode()), part.encode()) for part in command
        )
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(payload)
        time.sleep(0.3)
        data = sock.recv(1 << 20)
    if raw:
        return data
    return [line.decode() for line in data.split(b"\r\n") if line[:1] in (b"+", b"-", b":", b"*")]


def chat(address, key, model, text="ping"):
    conn = http.client.HTTPConnection(address, PORT, timeout=60)
    try:
        conn.request("POST", "/v1/chat/completions",
                     body=json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}),
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- Redis, installed and secured by litellm.redis ---------------------------------


@pytest.fixture(scope="module")
def redis_host(fleet, salt_ssh):
    ret, elapsed = salt_ssh(REDIS_ID, "state.apply", "litellm.redis")
    TIMINGS["redis_salt_ssh"] = elapsed
    assert ret.returncode == 0, ret.stdout[-3000:] + ret.stderr[-2000:]
    data = unwrap(ret.data, REDIS_ID)
    states = assert_states_ok(data, ret.stdout + ret.stderr)
    return fleet.hosts[REDIS_ID], states


def test_redis_is_installed_secured_and_verified(redis_host, fleet):
    host, states = redis_host
    assert "litellm-redis-pkg-installed" in states and states["litellm-redis-ready"]["result"] is True
    assert "redis pass" in states["litellm-redis-ready"]["comment"]
    # reachable on the host's own address, from another machine
    assert redis_exchange(host.address, 6379, ["PING"])[0].startswith("-NOAUTH")
    assert redis_exchange(host.address, 6379, ["AUTH", "wrong-password-0123456789"])[0].startswith("-WRONGPASS")
    replies = redis_exchange(host.address, 6379, ["AUTH", fleet.redis_password], ["PING"], ["FLUSHALL"])
    assert replies[:2] == ["+OK", "+PONG"] and replies[2].startswith("-ERR unknown command"), replies
    stat = host.run(["stat", "-c", "%U:%G %a", "/etc/redis/redis.conf"]).stdout.strip()
    assert stat == "redis:redis 640"


# -- two gateways, one command --------------------------------------------------------


@pytest.fixture(scope="module")
def gateways(redis_host, fleet, salt_ssh):
    ret, elapsed = salt_ssh("gw*", "state.apply", "litellm")
    TIMINGS["two_gateways_one_salt_ssh"] = elapsed
    assert ret.returncode == 0, ret.stdout[-4000:] + ret.stderr[-2000:]
    assert sorted(ret.data) == list(GATEWAYS), list(ret.data)
    return {name: assert_states_ok(ret.data[name], ret.stdout) for name in GATEWAYS}


def test_one_salt_ssh_command_deploys_both_gateways(gateways, fleet):
    for name, states in gateways.items():
        assert "PASS" in states["litellm-smoke-passed"]["comment"], name
        # the preflight checked the shared Redis (AUTH + PING) before any change
        assert "redis pass" in states["litellm-preflight-go"]["comment"], name
        host = fleet.hosts[name]
        assert host.run(["systemctl", "is-active", "litellm"]).stdout.strip() == "active"
        config = salt.utils.yaml.safe_load(host.run(["cat", "/etc/litellm/config.yaml"]).stdout)
        router = config["router_settings"]
        assert (router["redis_host"], router["redis_port"]) == (fleet.hosts[REDIS_ID].address, 6379)
        assert router["redis_password"] == "os.environ/REDIS_PASSWORD" and "redis_url" not in router
        # the proxy-level Redis too: client keys' rpm/tpm/max_parallel count there, across the gateways
        # (proven with two real LiteLLMs in tests/functional/test_shared_state_live.py)
        assert config["general_settings"]["coordination_redis"] == {
            "host": fleet.hosts[REDIS_ID].address, "port": 6379, "password": "os.environ/REDIS_PASSWORD"}
        # per-host pillar: each listens on its own address
        listening = host.run(["ss", "-Hltn", f"sport = :{PORT}"]).stdout
        assert f"{host.address}:{PORT}" in listening, listening
    print(f"\nfleet timings: {TIMINGS}")


def test_both_gateways_serve(gateways, fleet, master_key):
    for name in GATEWAYS:
        status, body = chat(fleet.hosts[name].address, master_key, "chat-small", f"hello {name}")
        assert status == 200, body[:500]
        assert json.loads(body)["choices"][0]["message"]["content"].startswith("Hello from llm0")


def test_a_per_model_rate_limit_is_counted_across_both_gateways(gateways, fleet, master_key):
    first, second = (fleet.hosts[name].address for name in GATEWAYS)
    second_now = datetime.datetime.now(datetime.timezone.utc).second
    if second_now > 45:  # rpm is counted per UTC minute: stay inside one
        time.sleep(60.5 - second_now)
    served = 0
    for index in range(4 * RPM):
        status, body = chat(first, master_key, LIMITED, f"first {index}")
        if status != 200:
            assert status == 429 and b"No deployments available" in body, body[:500]
            break
        served += 1
    else:
        pytest.fail(f"gw1 never refused {LIMITED} after {4 * RPM} requests (rpm {RPM} per backend)")
    time.sleep(0.5)  # LiteLLM syncs its counters to Redis every 0.1 s
    on_second = [chat(second, master_key, LIMITED, f"second {index}")[0] for index in range(served)]
    print(f"\ngw1 served {served} of {LIMITED}, then 429; gw2 then answered {on_second}")
    assert served >= 1
    assert on_second == [429] * served
    # an alias without a limit is not affected on either gateway
    assert chat(second, master_key, "chat-small")[0] == 200
    # the counters are in the shared Redis
    keys = redis_exchange(fleet.hosts[REDIS_ID].address, 6379, ["AUTH", fleet.redis_password],
                          ["KEYS", "*:rpm:*"], raw=True)
    assert keys.startswith(b"+OK") and LIMITED.encode() in keys, keys[:500]


def test_the_redis_password_is_nowhere_it_should_not_be(gateways, redis_host, fleet, outputs):
    password = fleet.redis_password
    assert outputs and not [text for text in outputs if password in (text or "")]
    for name in GATEWAYS:
        host = fleet.hosts[name]
        assert password not in host.run(["cat", "/etc/litellm/config.yaml"]).stdout
        env = host.run(["stat", "-c", "%U:%G %a", "/etc/litellm/litellm.env"]).stdout.strip()
        assert env == "root:litellm 640"
        assert f"REDIS_PASSWORD={password}" in host.run(["cat", "/etc/litellm/litellm.env"]).stdout
        # no process argument anywhere on the hosts
        cmdlines = host.run(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"]).stdout
        assert password not in cmdlines
        # no world-readable file under /etc, /opt/litellm, /var/lib
        found = host.run(["sh", "-c", f"grep -rlsF -- '{password}' /etc /opt/litellm /var/lib /run || true"]).stdout
        for path in found.split():
            mode = int(host.run(["stat", "-c", "%a", path]).stdout.strip(), 8)
            assert not mode & 0o004, f"{path} is world-readable and holds the Redis password"
    redis = fleet.hosts[REDIS_ID]
    cmdlines = redis.run(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"]).stdout
    assert password not in cmdlines


# -- master / minion ---------------------------------------------------------------


@pytest.fixture(scope="module")
def minion_host(gateways, fleet, controller):
    """gw2, deployed by salt-ssh above, becomes a minion of the master (the way
    a fleet moves from salt-ssh to a master). A cold deploy through the master
    was measured at 73 s on a fresh host; here the apply must find nothing to
    change, which proves the master renders what salt-ssh rendered."""
    host = fleet.hosts[MINION_ID]
    config = {
        "id": MINION_ID,
        "master": host.gateway,
        "master_port": controller.config["ret_port"],
        "publish_port": controller.config["publish_port"],
        "log_level_logfile": "warning",
    }
    host.run(["mkdir", "-p", "/etc/salt/minion.d"])
    host.run(["tee", "/etc/salt/minion.d/master.conf"], input=salt.utils.yaml.safe_dump(config))
    return host


def test_a_salt_master_applies_the_formula_to_a_minion(controller, minion_host, fleet, master_key):
    with controller.started(start_timeout=120):
        started = time.monotonic()
        before = minion_host.run(["systemctl", "show", "litellm", "--property=MainPID"]).stdout.strip()
        minion_host.run(["systemd-run", "--unit=salt-minion", "/opt/salt/bin/salt-minion", "-c", "/etc/salt"])
        cli = controller.salt_cli(timeout=900)
        deadline = time.monotonic() + 90
        while True:  # the minion's key is auto-accepted once it connects
            ping = cli.run("test.ping", minion_tgt=MINION_ID, _timeout=30)
            if ping.returncode == 0 and unwrap(ping.data, MINION_ID) is True:
                break
            assert time.monotonic() < deadline, f"{ping.stdout}\n{ping.stderr}"
            time.sleep(2)
        sync = cli.run("saltutil.sync_all", minion_tgt=MINION_ID)
        assert sync.returncode == 0 and "litellm_config" in str(unwrap(sync.data, MINION_ID)), sync.stdout[-2000:]
        ret = cli.run("state.apply", "litellm", minion_tgt=MINION_ID)
        TIMINGS["master_minion_apply"] = time.monotonic() - started
        assert ret.returncode == 0, ret.stdout[-4000:] + ret.stderr[-2000:]
        states = assert_states_ok(unwrap(ret.data, MINION_ID), ret.stdout)
        # validate, preflight (Redis included) and smoke ran through the master
        assert "redis pass" in states["litellm-preflight-go"]["comment"]
        assert "PASS" in states["litellm-smoke-passed"]["comment"]
        changed = sorted(sid for sid, state in states.items() if state.get("changes"))
        assert changed == [], changed
        after = minion_host.run(["systemctl", "show", "litellm", "--property=MainPID"]).stdout.strip()
        assert after == before
        # the pillar and its GPG secrets were rendered and decrypted by the master
        assert not minion_host.run(["sh", "-c", "ls /etc/salt/gpgkeys 2>/dev/null || true"]).stdout.strip()
        status, body = chat(minion_host.address, master_key, "chat-small", "hello from the master's minion")
        assert status == 200, body[:500]
    print(f"\nfleet timings: {TIMINGS}")

"""
Two REAL LiteLLM proxies (from the shipped lock) on loopback with the config
the formula renders, in front of the same two stand-in Ollama servers: with
litellm:redis they count a per-model rpm limit together (the budget one used
up is refused by the other), and a client key's rpm too (the proxy-level
coordination Redis, not the router's); without it each counts alone. The
contrast is the proof that the shared behaviour comes from Redis. The smoke
key's check passes on them, with the table in force on the worker.

redis-server from Debian's package runs on loopback, with a password, as a
child process of the test.
"""

import datetime
import hashlib
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import REPO, SALT_UTILS, load_salt_module, merged
from tests.functional.conftest import LiteLLM, ensure_venv, free_port

litellm_config = load_salt_module("modules", "litellm_config")
HOOK = REPO / "salt" / "litellm" / "files" / "litellm_client_keys.py"
RESP_COMMAND = SALT_UTILS.litellm_preflight_redis.resp_command

RPM = 3  # per backend (deployment) of the limited alias
CLIENT_RPM = 3  # of the client key (litellm:keys), whatever the alias
CLIENT_KEY = "sk-" + secrets.token_hex(24)
SMOKE_KEY = SALT_UTILS.litellm_smoke_keys.KEY_PREFIX + secrets.token_hex(32)
SMOKE_LIMITS = {"rpm": 6, "tpm": 1000, "max_parallel": 1}
LIMITED = "chat-limited"
MODELS = [
    {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
    {"name": LIMITED, "provider": "ollama", "model": "qwen2.5:0.5b", "rpm": RPM},
]


def redis_command(port, password, *args):
    """Replies to AUTH + one command, over RESP (the password never in argv)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(RESP_COMMAND("AUTH", password) + RESP_COMMAND(*args))
        time.sleep(0.2)
        return sock.recv(1 << 20)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    binary = shutil.which("redis-server")
    if not binary:
        pytest.fail("redis-server missing (scripts/bootstrap.sh installs Debian's redis-server)", pytrace=False)
    workdir = tmp_path_factory.mktemp("redis")
    password = secrets.token_hex(16)
    port = free_port()
    conf = workdir / "redis.conf"
    conf.write_text(
        f"bind 127.0.0.1\nport {port}\nsave \"\"\nappendonly no\ndir {workdir}\nrequirepass {password}\n"
    )
    os.chmod(conf, 0o600)
    proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while b"+PONG" not in _try(lambda: redis_command(port, password, "PING")):
        assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.1)
    yield {"port": port, "password": password}
    proc.terminate()
    proc.wait(timeout=10)


def _try(func):
    try:
        return func()
    except OSError:
        return b""


class Gateway(LiteLLM):
    """One LiteLLM proxy with the formula's config and env, and the client-key
    hook, its table (with the smoke key's entry) and the smoke key laid out as
    the formula does."""

    def __init__(self, venv, workdir, settings, env_extra):
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "litellm_client_keys.py").write_text(HOOK.read_text())
        (workdir / "smoke-key").write_text(SMOKE_KEY + "\n")
        os.chmod(workdir / "smoke-key", 0o600)
        self.runtime = workdir / "run"
        self.runtime.mkdir(exist_ok=True)
        # RUNTIME_DIRECTORY as systemd gives it: the hook's status files
        super().__init__(venv, workdir, settings, dict(env_extra, RUNTIME_DIRECTORY=str(self.runtime)))
        self.write_table()

    def write_table(self, extra=None):
        smoke = SALT_UTILS.litellm_smoke_keys.table_entry(SMOKE_KEY, MODELS[0]["name"], SMOKE_LIMITS)
        keys = dict(self.settings["keys"], _smoke=smoke, **(extra or {}))
        tmp = self.workdir / ".client-keys.json.new"
        tmp.write_text(litellm_config.key_table_text(dict(self.settings, keys=keys)))
        os.replace(tmp, self.workdir / "client-keys.json")

    def request(self, method, path, body=None, key=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key or self.key}"}
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def chat(self, model, text, key=None):
        return self.request("POST", "/v1/chat/completions",
                            {"model": model, "messages": [{"role": "user", "content": text}]}, key)


def make_pair(workdir, stubs, redis=None):
    """Two gateways with the same settings (and the same Redis, when given); not yet ready."""
    venv = ensure_venv()
    key = "sk-" + secrets.token_hex(24)
    gateways = []
    for name in ("gw1", "gw2"):
        layer = {
            "bind_host": "127.0.0.1",
            "bind_port": free_port(),
            "backends": [s.url for s in stubs],
            "models": MODELS,
            "master_key": key,
            "routing_strategy": "usage-based-routing-v2",
            "request_timeout": 15,
            # background checks on, as in a real deployment: they must not eat the budget
            "health_check_interval": 5,
            "keys": {"fleet-client": {"hash": f"sha256:{hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}",
                                      "rpm": CLIENT_RPM}},
        }
        env = {}
        if redis:
            layer["redis"] = {"host": "127.0.0.1", "port": redis["port"], "password": redis["password"]}
            env["REDIS_PASSWORD"] = redis["password"]
        gateways.append(Gateway(venv, workdir / name, merged(layer), env).start())
    return gateways


@pytest.fixture(scope="module")
def pairs(redis_server, stubs, tmp_path_factory):
    """Both pairs started at once (the CPU-bound start overlaps): with Redis and without."""
    workdir = tmp_path_factory.mktemp("gateways")
    started = {}
    try:
        started["redis"] = make_pair(workdir / "redis", stubs, redis_server)
        started["none"] = make_pair(workdir / "none", stubs)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(Gateway.wait_ready, [gw for pair in started.values() for gw in pair]))
        yield started
    finally:
        for pair in started.values():
            for gw in pair:
                gw.stop()


def wait_for_a_fresh_minute_window(needed=15):
    """LiteLLM counts rpm per UTC minute: start where the window will not turn meanwhile."""
    second = datetime.datetime.now(datetime.timezone.utc).second
    if second > 60 - needed:
        time.sleep(60.5 - second)


def spend_the_budget(first, second):
    """Chat with the limited alias on ``first`` until 429, then ask ``second``: the codes."""
    wait_for_a_fresh_minute_window()
    served_by_first = 0
    for index in range(4 * RPM):
        status, body = first.chat(LIMITED, f"first {index}")
        if status != 200:
            assert status == 429, body[:500]
            assert b"No deployments available" in body, body[:500]
            break
        served_by_first += 1
    else:
        pytest.fail(f"the first gateway never refused after {4 * RPM} requests (rpm {RPM} per backend)")
    time.sleep(0.5)  # LiteLLM syncs its in-memory counters to Redis every 0.1 s
    second_codes = [second.chat(LIMITED, f"second {index}")[0] for index in range(served_by_first)]
    # the other alias has no limit: unaffected
    assert first.chat("chat-small", "unlimited")[0] == 200
    return served_by_first, second_codes


@pytest.mark.parametrize("shared", ["redis", "none"])
def test_a_per_model_rate_limit_is_counted_across_gateways_only_with_redis(shared, pairs, redis_server):
    served, second_codes = spend_the_budget(*pairs[shared])
    print(f"\n{shared}: first gateway served {served} then 429; second gateway: {second_codes}")
    assert served >= 1
    if shared == "redis":
        # the budget the first gateway used up is refused by the second
        assert second_codes == [429] * served
        keys = redis_command(redis_server["port"], redis_server["password"], "KEYS", "*:rpm:*")
        assert LIMITED.encode() in keys, keys[:500]
    else:
        # each gateway counts alone: the second serves a budget of its own
        assert second_codes == [200] * served


def spend_the_client_budget(first, second):
    """The client key on ``first`` until 429, then on ``second``: how many ``first`` served, ``second``'s codes."""
    wait_for_a_fresh_minute_window()
    served, codes = 0, []
    for index in range(3 * CLIENT_RPM):
        status, body = first.chat("chat-small", f"client first {index}", CLIENT_KEY)
        if status != 200:
            assert status == 429, body[:500]
            break
        served += 1
    time.sleep(0.5)
    codes = [second.chat("chat-small", f"client second {index}", CLIENT_KEY)[0] for index in range(CLIENT_RPM)]
    return served, codes


@pytest.mark.parametrize("shared", ["redis", "none"])
def test_a_client_keys_rpm_is_counted_across_gateways_only_with_redis(shared, pairs, redis_server):
    first, second = pairs[shared]
    served, second_codes = spend_the_client_budget(first, second)
    print(f"\n{shared}: client rpm {CLIENT_RPM}: gw1 served {served} then 429; gw2: {second_codes}")
    assert served == CLIENT_RPM
    if shared == "redis":
        assert second_codes == [429] * CLIENT_RPM
    else:
        assert second_codes == [200] * CLIENT_RPM
    for gw in (first, second):
        log = gw.log.read_text(errors="replace")
        assert CLIENT_KEY not in log and redis_server["password"] not in log


def _smoke_client_key(gw, aliases=None):
    utils = SALT_UTILS
    aliases = [m["name"] for m in MODELS] if aliases is None else aliases
    found, why = utils.litellm_smoke_keys.context(utils, str(gw.workdir), str(gw.runtime), aliases,
                                                  lambda: [gw.proc.pid])
    assert found, why
    return utils.litellm_smoke_run.client_key(utils, f"http://127.0.0.1:{gw.port}", {"client_key": found,
                                                                                      "timeout": 30})


def test_the_smoke_key_check_passes_and_sees_a_table_change_on_the_worker(pairs):
    gw = pairs["redis"][0]
    check = _smoke_client_key(gw)
    print(f"\n{check['detail']}")
    assert check["status"] == "pass", check
    assert (check["alias_status"], check["other_alias_status"], check["wrong_key_status"]) == (200, 403, 401)
    assert check["listed"] == [MODELS[0]["name"]] and check["workers"] == [gw.proc.pid]
    assert check["clients"] == ["_smoke", "fleet-client"]
    assert SMOKE_KEY not in json.dumps(check) and CLIENT_KEY not in json.dumps(check)
    # a client added to the table: in force on the (idle) worker within 2 s, the check says so
    late = {"late": {"hash": f"sha256:{hashlib.sha256(b'sk-late-0123456789abcdef0123456789').hexdigest()}"}}
    gw.write_table(late)
    started = time.monotonic()
    check = _smoke_client_key(gw)
    assert check["status"] == "pass" and "late" in check["clients"], check
    assert time.monotonic() - started < 2 + 1  # the check waits for it at most 3 s; the hook takes <= 0.5 s
    status = json.loads((gw.runtime / f"client-keys.{gw.proc.pid}.json").read_text())
    assert "late" in status["clients"] and "hash" not in json.dumps(status["clients"])
    gw.write_table()


def test_with_one_alias_the_smoke_key_gets_403_for_an_alias_that_does_not_exist(pairs):
    gw = pairs["none"][0]
    check = _smoke_client_key(gw, aliases=[MODELS[0]["name"]])
    assert check["status"] == "pass", check
    assert check["other_alias_status"] == 403
    assert SALT_UTILS.litellm_smoke_keys.NO_SUCH_ALIAS in check["detail"]

"""
Unit tests of the scale-out pieces (issue 7): litellm:redis validation and
rendering (router_settings, env file, redis.conf), per-model rpm/tpm, the
deployment ids usage-based-routing-v2 can parse, and the preflight Redis
check against a fake RESP server. No host touched.
"""

import copy
import socket
import threading

import jinja2
import pytest

from tests.conftest import REPO, SALT_UTILS, TEST_MASTER_KEY, load_salt_module, merged

litellm_config = load_salt_module("modules", "litellm_config")
PF = load_salt_module("modules", "litellm_preflight")
config_state = load_salt_module("states", "litellm_config")
U = SALT_UTILS
RUN, REDIS, REDACT = U.litellm_preflight_run, U.litellm_preflight_redis, U.litellm_redact

REDIS_PASSWORD = "9c1e5b7a3d2f48e6b0a4c8d1"
FILES = REPO / "salt" / "litellm" / "files"


@pytest.fixture
def configure_loader_modules():
    return {
        litellm_config: {"__salt__": {}, "__opts__": {"test": False}, "__utils__": U},
        PF: {"__salt__": {}, "__opts__": {"test": False}, "__grains__": {"id": "gw1"}, "__utils__": U},
        config_state: {
            "__salt__": {"litellm_config.validate": litellm_config.validate},
            "__opts__": {"test": False},
            "__utils__": U,
        },
    }


def fleet(**redis):
    return merged(
        {
            "backends": ["http://llm01:11434", "http://llm02:11434"],
            "models": [{"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"}],
            "master_key": TEST_MASTER_KEY,
            "routing_strategy": "usage-based-routing-v2",
            "redis": {"host": "10.0.0.5", "password": REDIS_PASSWORD, **redis},
            "preflight": {"evidence_dir": ""},
        }
    )


# --- validation -------------------------------------------------------------------


def test_a_fleet_pillar_is_valid_and_no_redis_is_the_default():
    assert litellm_config.check_settings(fleet()) == []
    single = fleet()
    single["redis"] = {"host": "", "port": 6379, "password": "", "server": "", "bind": [], "maxmemory_mib": 256}
    assert litellm_config.check_settings(single) == []


@pytest.mark.parametrize(
    ("redis", "words"),
    [
        ({"host": "not a host"}, ["litellm:redis:host", "neither an IP address nor a valid host name"]),
        ({"port": 0}, ["litellm:redis:port", "1 to 65535"]),
        ({"port": "6379"}, ["litellm:redis:port", "'6379'"]),
        ({"password": ""}, ["litellm:redis:password", "missing", "secret"]),
        ({"password": "short1234"}, ["litellm:redis:password", "too short (9 characters)"]),
        ({"password": "a b c d e f g h i j k l"}, ["litellm:redis:password", "white space"]),
        ({"password": "changeme-changeme-changeme"}, ["litellm:redis:password", "placeholder"]),
        ({"password": "-----BEGIN PGP MESSAGE-----x"}, ["litellm:redis:password", "still GPG-encrypted"]),
        ({"password": TEST_MASTER_KEY}, ["litellm:redis:password", "must not be the master key"]),
        ({"bind": "10.0.0.5"}, ["litellm:redis:bind", "list of IP addresses"]),
        ({"bind": ["redis1"]}, ["litellm:redis:bind:0", "IP address", "'redis1'"]),
        ({"host": "redis1.example.internal", "server": "redis1"}, ["litellm:redis:bind", "needed"]),
        ({"host": "", "server": "redis1"}, ["litellm:redis:server", "host", "empty"]),
        ({"maxmemory_mib": -1}, ["litellm:redis:maxmemory_mib"]),
        ({"url": "redis://x"}, ["litellm:redis", "unknown key(s) url"]),
    ],
)
def test_bad_redis_pillar_is_refused_naming_the_key(redis, words):
    errors = litellm_config.check_settings(fleet(**redis))
    assert len(errors) == 1, errors
    assert all(word in errors[0] for word in words), errors


@pytest.mark.parametrize(
    "password", [REDIS_PASSWORD + " x", "short1234", "changeme-changeme-changeme", TEST_MASTER_KEY]
)
def test_errors_never_echo_the_redis_password(password):
    errors = litellm_config.check_settings(fleet(password=password))
    assert errors and password not in "\n".join(errors)


@pytest.mark.parametrize("key", ["redis_host", "redis_port", "redis_password", "redis_url"])
def test_redis_in_free_form_router_settings_is_refused(key):
    settings = fleet()
    settings["router_settings"] = {key: "x"}
    errors = litellm_config.check_settings(settings)
    assert [e.split(":")[1:3] for e in errors] == [["router_settings", key]], errors


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ({"rpm": 0}, ["litellm:models:0 (chat-small):rpm", "integer from 1"]),
        ({"tpm": "100"}, ["litellm:models:0 (chat-small):tpm", "'100'"]),
        ({"rpn": 5}, ["litellm:models:0: unknown key(s) rpn", "rpm, tpm"]),
    ],
)
def test_bad_model_limits_are_refused(model, words):
    settings = fleet()
    settings["models"][0].update(model)
    errors = litellm_config.check_settings(settings)
    assert len(errors) == 1 and all(word in errors[0] for word in words), errors


def test_the_validated_state_can_gate_on_the_redis_section_only():
    redis_only = merged({"redis": {"host": "10.0.0.5", "password": REDIS_PASSWORD, "server": "redis1"}})
    full = config_state.validated("litellm", redis_only)
    assert full["result"] is False and "litellm:backends" in full["comment"]
    section = config_state.validated("litellm:redis", redis_only, section="redis")
    assert section["result"] is True and section["changes"] == {}, section
    redis_only["redis"]["port"] = 0
    bad = config_state.validated("litellm:redis", redis_only, section="redis")
    assert bad["result"] is False and "litellm:redis:port" in bad["comment"]
    assert "litellm:backends" not in bad["comment"]


# --- rendering --------------------------------------------------------------------


def test_router_settings_get_host_port_and_a_password_reference():
    config = litellm_config.build_config(fleet(port=6380))
    router = config["router_settings"]
    assert router["redis_host"] == "10.0.0.5"
    assert router["redis_port"] == 6380
    assert router["redis_password"] == "os.environ/REDIS_PASSWORD"
    assert "redis_url" not in router
    assert REDIS_PASSWORD not in litellm_config.config_text(fleet())


def test_without_a_redis_host_the_router_has_no_redis():
    settings = fleet()
    settings["redis"]["host"] = ""
    router = litellm_config.build_config(settings)["router_settings"]
    assert not [key for key in router if key.startswith("redis")]


def test_model_limits_go_to_every_deployment_of_the_alias():
    settings = fleet()
    settings["models"][0]["rpm"] = 3
    deployments = litellm_config.build_config(settings)["model_list"]
    assert [d["litellm_params"].get("rpm") for d in deployments] == [3, 3]
    assert all("tpm" not in d["litellm_params"] for d in deployments)


@pytest.mark.parametrize(
    ("alias", "backend", "expected"),
    [
        ("chat-small", "http://llm01:11434", "chat-small@llm01_11434"),
        ("llama3.2:3b", "http://10.0.0.1:11434/", "llama3.2_3b@10.0.0.1_11434"),
        ("chat", "http://[::1]:11434", "chat@[__1]_11434"),
    ],
)
def test_deployment_ids_have_no_colon(alias, backend, expected):
    # usage-based-routing-v2 splits its usage keys on ':' (LiteLLM 1.108.7):
    # an id with one matches no deployment and every request gets 429.
    assert U.litellm_build.deployment_id(alias, backend) == expected


def _render(name, **context):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(FILES)), extensions=["jinja2.ext.do"])
    return env.get_template(name).render(**context)


def test_the_env_file_holds_the_redis_password_only_with_a_host():
    text = _render("litellm.env.jinja", litellm=fleet())
    lines = text.splitlines()
    assert f"REDIS_PASSWORD={REDIS_PASSWORD}" in lines
    assert f"LITELLM_MASTER_KEY={TEST_MASTER_KEY}" in lines
    redacted = litellm_config.redact_env(text)
    assert REDIS_PASSWORD not in redacted and "REDIS_PASSWORD=<redacted>" in redacted
    single = fleet()
    single["redis"]["host"] = ""
    text = _render("litellm.env.jinja", litellm=single)
    assert "REDIS_PASSWORD" not in text
    assert f"LITELLM_MASTER_KEY={TEST_MASTER_KEY}\n# Offline-safe" in text


def test_redis_conf_binds_requires_the_password_and_disables_admin_commands():
    text = _render("redis.conf.jinja", bind=["127.0.0.1", "10.0.0.5"], port=6380,
                   password=REDIS_PASSWORD, maxmemory_mib=256)
    lines = text.splitlines()
    assert "bind 127.0.0.1 10.0.0.5" in lines
    assert "port 6380" in lines and "protected-mode yes" in lines
    assert f"requirepass {REDIS_PASSWORD}" in lines
    assert "maxmemory 256mb" in lines
    for command in ("FLUSHALL", "CONFIG", "DEBUG"):
        assert f'rename-command {command} ""' in lines
    assert "maxmemory" not in _render("redis.conf.jinja", bind=["127.0.0.1"], port=6379,
                                      password=REDIS_PASSWORD, maxmemory_mib=0)


# --- preflight --------------------------------------------------------------------


class FakeRedis:
    """Answers AUTH and PING like Redis 7 with ``requirepass`` (None: no password set)."""

    def __init__(self, password):
        self.password = password
        self.received = b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            while self.received.count(b"\r\n") < 6:  # AUTH (5 lines) + PING (3 lines), at least
                chunk = conn.recv(4096)
                if not chunk:
                    return
                self.received += chunk
                if b"PING" in self.received:
                    break
            sent = f"${len(self.password or '')}\r\n{self.password}\r\n".encode()
            authed = self.password is not None and sent in self.received
            if self.password is None:
                conn.sendall(b"-ERR AUTH <password> called without any password configured for the default user. "
                             b"Are you sure your configuration is correct?\r\n+PONG\r\n")
            elif authed:
                conn.sendall(b"+OK\r\n+PONG\r\n")
            else:
                conn.sendall(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
                             b"-NOAUTH Authentication required.\r\n")

    def close(self):
        self.sock.close()


def test_resp_encoding():
    assert REDIS.resp_command("AUTH", "pw") == b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
    assert REDIS.resp_replies(b"+OK\r\n-ERR x y\r\n:1\r\n$3\r\nabc\r\n") == ["+OK", "-ERR x y", ":1"]


@pytest.mark.parametrize(
    ("server_password", "status", "words"),
    [
        (REDIS_PASSWORD, "pass", ["AUTH ok", "PONG"]),
        ("another-password-entirely", "fail", ["AUTH refused (WRONGPASS)", "password is wrong"]),
        (None, "fail", ["no password (requirepass)"]),
    ],
)
def test_preflight_redis_check(server_password, status, words):
    fake = FakeRedis(server_password)
    try:
        result = PF._public("redis", fleet(host="127.0.0.1", port=fake.port), "base")
    finally:
        fake.close()
    assert result["status"] == status, result
    assert all(word in result["detail"] for word in words), result
    assert REDIS_PASSWORD not in result["detail"]
    # the password travelled to Redis, in RESP, over the socket
    assert f"$4\r\nAUTH\r\n${len(REDIS_PASSWORD)}\r\n{REDIS_PASSWORD}\r\n".encode() in fake.received


def test_preflight_redis_check_fails_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = PF._public("redis", fleet(host="127.0.0.1", port=port), "base")
    assert result["status"] == "fail" and f"redis 127.0.0.1:{port}" in result["detail"], result


def test_preflight_runs_the_redis_check_only_with_a_host():
    assert "redis" in RUN.selected_checks(U, fleet())
    single = fleet()
    single["redis"]["host"] = ""
    assert "redis" not in RUN.selected_checks(U, single)
    assert PF._public("redis", single, "base")["status"] == "skip"


def test_the_redis_password_is_redacted_from_every_preflight_output():
    settings = fleet()
    assert REDIS_PASSWORD in REDACT.settings_secrets(settings)
    report = REDACT.redact({"detail": f"boom {REDIS_PASSWORD}"}, REDACT.settings_secrets(settings))
    assert REDIS_PASSWORD not in str(report)


def test_redis_is_off_by_default_in_defaults_yaml():
    # defaults.yaml is the one source: the merged map has no Redis host, so no redis check runs
    assert copy.deepcopy(merged({})["redis"])["host"] == ""
    assert "redis" not in RUN.selected_checks(U, merged({}))

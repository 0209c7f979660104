"""The unit's decisions (_utils/litellm_unit.py) and the launcher's env parsing."""

import copy
import importlib.util
import shlex
import sys

import pytest

from tests.conftest import REPO, formula_defaults, load_salt_module

unit = load_salt_module("utils", "litellm_unit")
systemd = load_salt_module("utils", "litellm_systemd")


def _settings(**service):
    settings = copy.deepcopy(formula_defaults())
    settings["service"]["workers"] = 2
    settings["service"].update(service)
    return settings


def _launcher():
    path = REPO / "salt/litellm/files/litellm_gateway.py"
    spec = importlib.util.spec_from_file_location("litellm_gateway_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_argv_runs_uvicorn_under_the_launcher_on_the_held_socket():
    argv = unit.uvicorn_argv(_settings())
    assert argv[:2] == ["/opt/litellm/venv/bin/python", "/etc/litellm/litellm_gateway.py"]
    assert argv[-1] == "litellm_gateway:app"
    pairs = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag.startswith("--") and
             not argv[i + 1].startswith("--")}
    assert pairs["--fd"] == "3" and pairs["--workers"] == "2" and pairs["--app-dir"] == "/etc/litellm"
    assert pairs["--http"] == "litellm_gateway:DrainingH11Protocol"
    assert pairs["--timeout-graceful-shutdown"] == "600"
    assert pairs["--timeout-worker-healthcheck"] == "120"
    assert pairs["--timeout-keep-alive"] == "5"
    assert pairs["--log-level"] == "error"
    assert "--no-server-header" in argv
    assert "--limit-max-requests" not in argv and "--json-logs" not in argv


def test_argv_recycles_workers_and_logs_json_when_asked():
    argv = unit.uvicorn_argv(_settings(max_requests=1000, log_format="json", log_level="INFO"))
    assert argv[2] == "--json-logs"
    assert argv[argv.index("--limit-max-requests") + 1] == "1000"
    assert argv[argv.index("--limit-max-requests-jitter") + 1] == "100"
    assert argv[argv.index("--log-level") + 1] == "info"


def test_extra_option_groups_go_before_the_app(monkeypatch):
    monkeypatch.setattr(unit, "EXTRA_ARGS", (lambda s: ["--ssl-keyfile", "/k"], lambda s: ["--backlog", "9"]))
    argv = unit.uvicorn_argv(_settings())
    assert argv[-5:] == ["--ssl-keyfile", "/k", "--backlog", "9", "litellm_gateway:app"]


def test_exec_start_is_one_quoted_line_that_splits_back():
    settings = _settings()
    settings["config_dir"] = "/etc/lite llm"
    line = unit.exec_start(settings)
    assert "\n" not in line and shlex.split(line) == unit.uvicorn_argv(settings)


@pytest.mark.parametrize(("host", "port", "expected"), [
    ("0.0.0.0", 4000, "0.0.0.0:4000"),
    ("::", 4001, "[::]:4001"),
    ("fd00::1", 80, "[fd00::1]:80"),
])
def test_listen_stream(host, port, expected):
    assert unit.listen_stream(host, port) == expected


def test_stop_timeout_outlasts_the_drain():
    assert unit.timeout_stop(_settings(graceful_timeout=90)) == 120


@pytest.mark.parametrize(("changed", "path"), [
    (["litellm-config-file-config-managed"], "reload"),
    (["litellm-config-file-env-managed", "litellm-config-file-auth-hook-managed"], "reload"),
    (["litellm-package-install-venv-installed"], "restart"),
    (["litellm-config-file-config-managed", "unit"], "restart"),
    (["unit", "socket"], "relisten"),
    ([], "reload"),
])
def test_change_path_takes_the_cheapest_safe_one(changed, path):
    restart_on = ["unit", "litellm-package-install-venv-installed"]
    assert unit.change_path(changed, restart_on, ["socket"]) == path


def test_changed_watched_reads_salts_running_results():
    running = {
        "file_|-a_|-x_|-managed": {"__id__": "a", "changes": {"diff": "..."}},
        "file_|-b_|-y_|-managed": {"__id__": "b", "changes": {}},
        "file_|-c_|-z_|-managed": {"__id__": "c", "changes": {"diff": "..."}},
    }
    assert unit.changed_watched(running, ["a", "b"]) == ["a"]
    assert unit.changed_watched(None, ["a"]) == []


def _status(serving, ok=True, at=100.0, detail=""):
    return {"serving": serving, "ok": ok, "at": at, "detail": detail}


def test_reload_done_needs_every_worker_new_and_serving():
    before = {"main_pid": 10, "workers": [11, 12]}
    draining = {"main_pid": 10, "workers": [11, 12, 21, 22]}
    assert unit.reload_done(before, draining, _status([21, 22]), 2, 50)[:2] == (True, False)
    # status from before the reload: wait
    assert unit.reload_done(before, draining, _status([11, 12], at=40), 2, 50)[:2] == (False, False)
    # the supervisor kept an old worker, or aborted
    assert unit.reload_done(before, draining, _status([21, 12]), 2, 50)[:2] == (False, True)
    assert unit.reload_done(before, draining, _status([11, 12], ok=False, detail="x"), 2, 50) == (False, True, "x")
    # a new worker already gone, or too few
    assert unit.reload_done(before, {"main_pid": 10, "workers": [21]}, _status([21, 22]), 2, 50)[:2] == (False, True)
    assert unit.reload_done(before, draining, _status([21]), 2, 50)[:2] == (False, True)
    # a new supervisor is not a reload
    assert unit.reload_done(before, {"main_pid": 30, "workers": [31, 32]}, _status([31, 32]), 2, 50)[1] is True


def test_workers_of_picks_the_forked_and_spawned_children_of_the_supervisor():
    lines = [
        "10 1 /opt/litellm/venv/bin/python /etc/litellm/litellm_gateway.py --fd 3",
        "11 10 /opt/litellm/venv/bin/python -c from multiprocessing.spawn import spawn_main; spawn_main(fd=5)",
        "12 10 /opt/litellm/venv/bin/python -c from multiprocessing.resource_tracker import main;main(4)",
        "13 99 /usr/bin/python3 -c from multiprocessing.spawn import spawn_main; spawn_main(fd=5)",
        "14 10 /opt/litellm/venv/bin/python /etc/litellm/litellm_gateway.py --fd 3",
        "15 14 /opt/litellm/venv/bin/python /etc/litellm/litellm_gateway.py --fd 3",
    ]
    assert unit.workers_of(lines, 10) == [11, 14]


def test_workers_in_reads_systemctl_show():
    shown = "{ path=/opt/litellm/venv/bin/python ; argv[]=/opt/litellm/venv/bin/python x --workers 3 --fd 3 ; }"
    assert unit.workers_in(shown) == 3
    assert unit.workers_in("") == 1


def test_the_formula_readers_understand_the_new_unit():
    text = (
        "[Unit]\nX-LiteLLM-Listen=0.0.0.0:4001\n[Service]\nGroup=litellm\n"
        "EnvironmentFile=/etc/litellm/litellm.env\n"
        "Environment=CONFIG_FILE_PATH=/etc/litellm/config.yaml NUM_WORKERS=2\n"
        f"ExecStart={unit.exec_start(_settings())}\n"
    )
    assert systemd.unit_settings(text) == {
        "env_file": "/etc/litellm/litellm.env", "config": "/etc/litellm/config.yaml", "bind_host": "0.0.0.0",
        "bind_port": 4001, "venv": "/opt/litellm/venv", "group": "litellm",
    }
    # litellm:tls: the unit names the https base_url the readers verify
    tls = text.replace("[Service]", "X-LiteLLM-URL=https://gw.example.internal:4001\n[Service]")
    assert systemd.unit_settings(tls)["url"] == "https://gw.example.internal:4001"


def test_the_launcher_reads_the_env_file_like_systemd():
    launcher = _launcher()
    text = "# c\n\nLITELLM_MASTER_KEY=sk-abc=def\nA = 'quoted value'\nB=\"x\"\nnot a line\n"
    assert launcher.parse_env(text) == {"LITELLM_MASTER_KEY": "sk-abc=def", "A": "quoted value", "B": "x"}


def test_the_supervisor_imports_litellm_with_the_collector_off_then_freezes_it(tmp_path, monkeypatch):
    import gc
    import types

    launcher = _launcher()
    env = tmp_path / "litellm.env"
    env.write_text("LITELLM_LOG=ERROR\n")
    seen = {}

    class ProxyServerFinder:  # stands in for the real proxy: how the collector stood while it loaded
        def find_spec(self, name, path=None, target=None):
            if name != "litellm.proxy.proxy_server":
                return None
            return importlib.util.spec_from_loader(name, self)

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            seen["collector on during the import"] = gc.isenabled()
            module.app = object()

    for name in ("litellm", "litellm.proxy"):
        package = types.ModuleType(name)
        package.__path__ = []
        monkeypatch.setitem(sys.modules, name, package)
    monkeypatch.delitem(sys.modules, "litellm.proxy.proxy_server", raising=False)
    monkeypatch.setattr(sys, "meta_path", [ProxyServerFinder(), *sys.meta_path])
    monkeypatch.setattr(gc, "freeze", lambda: seen.setdefault("frozen with the collector on", gc.isenabled()))
    monkeypatch.delenv("LITELLM_LOG", raising=False)
    assert gc.isenabled()
    try:
        launcher.preload(env)
        assert seen == {"collector on during the import": False, "frozen with the collector on": False}
        assert gc.isenabled()  # the workers collect as usual
        assert launcher._PRELOADED["env"] == {"LITELLM_LOG": "ERROR"}
    finally:
        gc.enable()
        sys.modules.pop("litellm.proxy.proxy_server", None)


def test_a_worker_forks_only_while_the_env_litellm_imported_with_is_unchanged(tmp_path, monkeypatch):
    launcher = _launcher()
    env = tmp_path / "litellm.env"
    env.write_text("LITELLM_MASTER_KEY=sk-old\nLITELLM_LOG=ERROR\nOLLAMA_API_BASE=http://a:11434\n")
    assert launcher.fork_is_fresh(env) is False  # nothing preloaded: spawn, as uvicorn does
    # the import itself is the real proxy's; here only what the supervisor records of the env
    monkeypatch.setitem(launcher._PRELOADED, "env", launcher.import_env(launcher.read_env(env)))
    assert launcher.fork_is_fresh(env) is True
    # read when a worker loads its config or calls a backend: a rotated key still forks
    env.write_text("LITELLM_MASTER_KEY=sk-new\nLITELLM_LOG=ERROR\nOLLAMA_API_BASE=http://b:11434\n")
    assert launcher.fork_is_fresh(env) is True
    # read at import (the log level): a forked worker would keep the old one, so it is spawned
    env.write_text("LITELLM_MASTER_KEY=sk-new\nLITELLM_LOG=INFO\nOLLAMA_API_BASE=http://b:11434\n")
    assert launcher.fork_is_fresh(env) is False
    env.write_text("LITELLM_MASTER_KEY=sk-new\nLITELLM_LOG=ERROR\nOLLAMA_API_BASE=http://b:11434\nJSON_LOGS=true\n")
    assert launcher.fork_is_fresh(env) is False
    assert launcher.fork_is_fresh(tmp_path / "missing.env") is False


def test_how_started_says_forked_spawned_or_both():
    assert unit.how_started({"forked": [21, 22]}, [21, 22]) == " (forked from the supervisor, LiteLLM preloaded)"
    assert unit.how_started({"forked": []}, [21, 22]) == " (spawned, LiteLLM imported afresh)"
    assert unit.how_started({}, [21]) == " (spawned, LiteLLM imported afresh)"
    assert unit.how_started({"forked": [21, 9]}, [21, 22]) == " (1 forked, 1 spawned)"
    done, failed, detail = unit.reload_done({"main_pid": 10, "workers": [11]}, {"main_pid": 10, "workers": [21]},
                                            {"serving": [21], "ok": True, "at": 60, "forked": [21]}, 1, 50)
    assert (done, failed) == (True, False) and detail.endswith("(forked from the supervisor, LiteLLM preloaded)")


def test_the_launcher_checks_the_config_in_a_fork_and_brings_back_the_verdict(monkeypatch, tmp_path):
    launcher = _launcher()
    loaded_in = []

    def load(path):
        loaded_in.append(path)  # in the child: the parent's list stays empty
        if "bad" in path:
            raise ValueError("Invalid routing_strategy: 'fastest-please'")

    monkeypatch.setattr(launcher, "_load_config", load)
    assert launcher.check_config(str(tmp_path / "good.yaml")) == (True, "")
    assert launcher.check_config(str(tmp_path / "bad.yaml")) == (
        False, "ValueError: Invalid routing_strategy: 'fastest-please'")
    assert loaded_in == [], "the config was loaded in the launcher's own process"
    assert launcher.CONFIG_REJECTED == 78
    # the service state finds the launcher's verdict in the journal by these words
    assert launcher.CONFIG_REJECTED_WORDS == systemd.CONFIG_REJECTED_WORDS


def test_a_start_that_systemd_gave_up_names_the_launchers_verdict():
    def run(shown, journal):
        def fake(argv, timeout=None):
            return {"stdout": shown if argv[0] == "systemctl" else journal}
        return fake

    verdict = "ERROR:    LiteLLM rejected the config /etc/litellm/config.yaml: ValueError: bad; not starting"
    failed = "ActiveState=failed\nResult=exit-code\n"
    assert systemd.start_failed(run(failed, f"starting\n{verdict}\n"), "litellm", 0) == verdict.strip()
    assert systemd.start_failed(run(failed, "Traceback ...\n"), "litellm", 0) == \
        "litellm.service failed (result: exit-code)"
    # still starting, or restarting after a crash: not given up
    for state in ("activating", "active", "inactive"):
        assert systemd.start_failed(run(f"ActiveState={state}\nResult=success\n", verdict), "litellm", 0) is None


def test_the_unit_does_not_retry_a_rejected_config():
    text = (REPO / "salt/litellm/files/litellm.service.jinja").read_text()
    assert f"RestartPreventExitStatus={_launcher().CONFIG_REJECTED}" in text


def test_one_systemctl_show_answers_for_both_units():
    shown = ("ActiveState=active\nUnitFileState=enabled\n\n"
             "ActiveState=inactive\nUnitFileState=disabled\n")
    calls = []

    def run(argv, timeout=None):
        calls.append(argv)
        return {"stdout": shown}

    assert systemd.unit_states(run, ["litellm.socket", "litellm.service"]) == {
        "litellm.socket": {"active": "active", "enabled": "enabled"},
        "litellm.service": {"active": "inactive", "enabled": "disabled"},
    }
    assert len(calls) == 1 and calls[0][:2] == ["systemctl", "show"] and calls[0][-2:] == [
        "litellm.socket", "litellm.service"]
    # no answer (systemctl failed): inactive and not enabled, so the state enables and starts them
    assert systemd.parse_unit_states("", ["a.socket"]) == {"a.socket": {"active": "inactive", "enabled": ""}}


def test_a_worker_routes_readiness_once_when_its_startup_is_done(monkeypatch):
    import asyncio
    import enum
    import types

    match = enum.IntEnum("Match", "NONE PARTIAL FULL", start=0)
    monkeypatch.setitem(sys.modules, "starlette", types.ModuleType("starlette"))
    monkeypatch.setitem(sys.modules, "starlette.routing", types.SimpleNamespace(Match=match))
    asked = []

    class Route:
        def __init__(self, path):
            self.path = path

        def matches(self, scope):
            asked.append(self.path)
            return (match.FULL if scope["path"] == self.path else match.NONE), {}

    sent = []

    async def app(scope, receive, send):
        await send({"type": "lifespan.startup.complete" if scope["type"] == "lifespan" else "http.response.start"})

    app.router = types.SimpleNamespace(routes=[Route("/a"), Route("/health/readiness"), Route("/z")])
    launcher = _launcher()
    warmed = launcher.warming(app)

    async def send(message):
        sent.append((message["type"], list(asked)))

    asyncio.run(warmed({"type": "http"}, None, send))
    assert sent == [("http.response.start", [])] and asked == []  # a request: no warm-up
    asyncio.run(warmed({"type": "lifespan"}, None, send))
    # routed up to the first full match, before uvicorn hears the startup is complete
    assert sent[-1] == ("lifespan.startup.complete", ["/a", "/health/readiness"])

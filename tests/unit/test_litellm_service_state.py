"""The service state's choice of path (litellm_service.running) and the execution module's reload wait."""

from unittest.mock import MagicMock

import pytest

from tests.conftest import SALT_UTILS, load_salt_module

state = load_salt_module("states", "litellm_service")
module = load_salt_module("modules", "litellm_service")

WATCHED = ["socket", "unit", "venv", "config", "env"]
RESTART_ON = ["unit", "venv"]
RELISTEN_ON = ["socket"]


def _systemctl(enabled=True, socket_active=True, service_active=True):
    def run(argv, **kwargs):
        out = ""
        if argv[1] == "show":  # one block per unit, as systemctl show prints them
            units = [arg for arg in argv[2:] if arg.startswith("litellm.")]
            active = {u: socket_active if u.endswith(".socket") else service_active for u in units}
            out = "\n\n".join(f"ActiveState={'active' if active[u] else 'inactive'}\n"
                                f"UnitFileState={'enabled' if enabled else 'disabled'}" for u in units)
        return {"retcode": 0, "stdout": out, "stderr": ""}

    return MagicMock(side_effect=run)


@pytest.fixture
def salt():
    return {
        "cmd.run_all": _systemctl(),
        "litellm_config.local_url": MagicMock(return_value="http://127.0.0.1:4000"),
        "litellm_service.apply_change": MagicMock(
            side_effect=lambda name, path, **kw: {"path": path, "ok": True, "detail": "2 new worker(s) serving",
                                                  "main_pid": 10, "main_pid_before": 10, "workers": [21, 22],
                                                  "waited": 9.5}),
    }


def _run(salt, changed, test=False, **units):
    if units:
        salt["cmd.run_all"] = _systemctl(**units)
    running = {f"file_|-{sid}_|-x_|-managed": {"__id__": sid, "changes": {"diff": "x"}} for sid in changed}
    state.__salt__ = salt
    state.__opts__ = {"test": test}
    state.__utils__ = SALT_UTILS
    state.__running__ = running
    return state.running("litellm", workers=2, watched=WATCHED, restart_on=RESTART_ON, relisten_on=RELISTEN_ON)


@pytest.mark.parametrize(("changed", "path"), [
    (["config"], "reload"),
    (["env"], "reload"),
    (["config", "venv"], "restart"),
    (["unit"], "restart"),
    (["socket", "unit"], "relisten"),
])
def test_each_change_takes_its_path_and_says_so(salt, changed, path):
    ret = _run(salt, changed)
    assert ret["result"] is True and ret["changes"]["path"] == path
    assert salt["litellm_service.apply_change"].call_args.args == ("litellm", path)
    assert {"reload": "RELOADED", "restart": "RESTARTED behind", "relisten": "new listening"}[path] in ret["comment"]


def test_nothing_changed_nothing_happens(salt):
    ret = _run(salt, ["keys"])  # the key table is not watched
    assert ret["changes"] == {} and "are running" in ret["comment"]
    salt["litellm_service.apply_change"].assert_not_called()


def test_a_first_start_listens_first(salt):
    ret = _run(salt, ["config", "unit", "socket"], enabled=False, socket_active=False, service_active=False)
    assert ret["changes"]["path"] == "start" and ret["changes"]["enabled"] == ["litellm.socket", "litellm.service"]
    calls = [c.args[0] for c in salt["cmd.run_all"].call_args_list]
    assert calls[0][:2] == ["systemctl", "show"] and len(calls) == 2, calls  # 4 answers in one show, then 1 enable
    assert calls[1] == ["systemctl", "enable", "litellm.socket", "litellm.service"]
    assert salt["litellm_service.apply_change"].call_args.args == ("litellm", "relisten")
    assert "STARTED" in ret["comment"]


def test_a_stopped_service_behind_a_live_socket_is_restarted(salt):
    _run(salt, [], service_active=False)
    assert salt["litellm_service.apply_change"].call_args.args == ("litellm", "restart")


def test_test_mode_says_the_path_and_changes_nothing(salt):
    ret = _run(salt, ["config"], test=True)
    assert ret["result"] is None and "reload" in ret["comment"]
    salt["litellm_service.apply_change"].assert_not_called()


@pytest.mark.parametrize("serving_before", [False, True])
def test_a_failed_first_start_stops_the_socket_too(salt, serving_before):
    """Nothing served before: clients are refused, not held in the backlog of a service that cannot start."""
    salt["litellm_service.apply_change"] = MagicMock(return_value={
        "path": "relisten", "ok": False, "detail": "LiteLLM rejected the config",
        "main_pid": 0, "main_pid_before": 10 if serving_before else 0, "workers": [], "waited": 1.2})
    ret = _run(salt, ["config", "unit", "socket"], enabled=False, socket_active=False, service_active=False)
    assert ret["result"] is False and "LiteLLM rejected the config" in ret["comment"]
    calls = [c.args[0] for c in salt["cmd.run_all"].call_args_list]
    if serving_before:
        assert ["systemctl", "stop", "litellm.socket"] not in calls and "stopped" not in ret["changes"]
    else:
        assert calls[-1] == ["systemctl", "stop", "litellm.socket"]
        assert ret["changes"]["stopped"] == ["litellm.socket"] and "clients are refused" in ret["comment"]


def test_a_failed_reload_fails_the_state(salt):
    salt["litellm_service.apply_change"] = MagicMock(return_value={
        "path": "reload", "ok": False, "detail": "new worker [31] was not ready in time; worker [21] kept",
        "main_pid": 10, "main_pid_before": 10, "workers": [21, 22], "waited": 120})
    ret = _run(salt, ["config"])
    assert ret["result"] is False and "not ready in time" in ret["comment"]


def test_wait_workers_follows_the_supervisor(monkeypatch):
    before = {"main_pid": 10, "workers": [11]}
    answers = iter([
        ({"main_pid": 10, "workers": [11, 21]}, None),
        ({"main_pid": 10, "workers": [11, 21]}, {"serving": [21], "ok": True, "at": 200.0}),
    ])
    current = {}

    def processes(name):
        current["now"] = next(answers)
        return current["now"][0]

    monkeypatch.setattr(module, "processes", processes)
    monkeypatch.setattr(module, "_status", lambda name: current["now"][1])
    module.__utils__ = SALT_UTILS
    out = module.wait_workers("litellm", before, 1, since=100.0, timeout=30, interval=0)
    assert out["done"] is True and out["workers"] == [21]


def test_wait_started_reads_the_status_file_often_and_asks_systemd_seldom(monkeypatch):
    statuses = iter([None] * 5 + [{"serving": [21, 22], "ok": True, "at": 200.0, "forked": [21, 22]}] * 100)
    asked = []

    def processes(name):
        asked.append(name)
        return {"main_pid": 10, "workers": [21, 22]}

    monkeypatch.setattr(module, "processes", processes)
    monkeypatch.setattr(module, "_status", lambda name: next(statuses))
    module.__utils__ = SALT_UTILS
    out = module.wait_started("litellm", 2, since=100.0, timeout=30, interval=30, poll=0)
    assert out["done"] is True and out["workers"] == [21, 22] and "forked" in out["detail"]
    assert len(asked) == 2, asked  # once at the first look, once when the status file changed


def test_wait_started_names_a_refused_config(monkeypatch):
    monkeypatch.setattr(module, "processes", lambda name: {"main_pid": 10, "workers": []})
    monkeypatch.setattr(module, "_status", lambda name: {"serving": [], "ok": False, "at": 200.0,
                                                         "detail": "LiteLLM rejected the config x: bad"})
    module.__utils__ = SALT_UTILS
    out = module.wait_started("litellm", 2, since=100.0, timeout=30, poll=0)
    assert out["done"] is False and "rejected" in out["detail"]

"""litellm:capacity: the plan (admission, uvicorn limits, unit limits), its validation and the unit's lines."""

import copy

import jinja2
import pytest

from tests.conftest import REPO, load_salt_module, merged

capacity = load_salt_module("utils", "litellm_capacity")
litellm_config = load_salt_module("modules", "litellm_config")
litellm_service = load_salt_module("modules", "litellm_service")


def settings_with(workers=2, memory_mib=23000, **section):
    return merged({"service": {"workers": workers}, "capacity": {"memory_mib": memory_mib, **section}})


def capacity_errors(settings):
    return [e for e in litellm_config.check_settings(settings) if e.startswith("litellm:capacity")]


def test_defaults_on_this_kind_of_host_two_workers_23_gib():
    plan = capacity.plan(settings_with())
    assert plan["in_flight_per_worker"] == 128 and plan["queued_per_worker"] == 128  # the CPU bound
    assert (plan["admitted"], plan["queued"]) == (256, 256)
    assert plan["connections_per_worker"] == 16 * 256 == 4096
    assert plan["backlog"] == 4096
    assert plan["nofile"] == 4096 * 2 + 1024
    assert plan["tasks_max"] == 128 * 3
    assert (plan["memory_high_mib"], plan["memory_max_mib"]) == (11500, 14375)
    assert capacity_errors(settings_with()) == []


def test_memory_bounds_admission_on_a_small_host():
    plan = capacity.plan(settings_with(workers=1, memory_mib=1024))
    # MemoryHigh 512 MiB, one worker of 400: 112 requests of 1 MiB
    assert plan["memory_high_mib"] == 512 and plan["in_flight_per_worker"] == 112
    assert plan["memory_max_mib"] == 640
    assert capacity_errors(settings_with(workers=1, memory_mib=1024)) == []


def test_more_workers_admit_more_in_total():
    assert capacity.plan(settings_with(workers=4))["admitted"] == 4 * 128
    assert capacity.plan(settings_with(workers=4))["tasks_max"] == 5 * 128


def test_pillar_numbers_win_over_auto():
    plan = capacity.plan(settings_with(in_flight_per_worker=50, queued_per_worker=0, connections_per_worker=900,
                                       backlog=512, nofile=4000, tasks_max=200, memory_high_mib=4000,
                                       memory_max_mib=5000))
    assert (plan["in_flight_per_worker"], plan["queued_per_worker"], plan["connections_per_worker"]) == (50, 0, 900)
    assert (plan["backlog"], plan["nofile"], plan["tasks_max"]) == (512, 4000, 200)
    assert (plan["memory_high_mib"], plan["memory_max_mib"]) == (4000, 5000)


def test_unknown_memory_means_the_cpu_bound_and_no_memory_lines():
    plan = capacity.plan(merged({}))  # workers and memory_mib auto, unresolved (no map.jinja)
    assert plan["workers"] == 1 and plan["in_flight_per_worker"] == 128
    lines = capacity.unit_lines(plan)
    assert not any(line.startswith(("MemoryHigh", "MemoryMax")) for line in lines)


def test_what_litellm_uvicorn_and_the_unit_get():
    plan = capacity.plan(settings_with())
    assert capacity.general_settings(plan) == {
        "max_in_flight_requests_per_worker": 128,
        "max_queued_requests_per_worker": 128,
        "admission_queue_timeout_seconds": 1,
    }
    assert capacity.uvicorn_flags(plan) == ["--limit-concurrency", "4096", "--backlog", "4096"]
    assert capacity.unit_lines(plan) == [
        "Environment=AIOHTTP_CONNECTOR_LIMIT=128 AIOHTTP_CONNECTOR_LIMIT_PER_HOST=128",
        "LimitNOFILE=9216",
        "TasksMax=384",
        "MemoryHigh=11500M",
        "MemoryMax=14375M",
    ]
    assert capacity.sysctl_needs(plan) == {
        "fs.file-max": (9216 * 3, "capacity:nofile"),
        "fs.nr_open": (9216, "capacity:nofile"),
        "net.core.somaxconn": (4096, "capacity:backlog"),
    }


def test_pillar_general_settings_win_over_the_admission():
    settings = settings_with()
    settings["general_settings"] = {"max_in_flight_requests_per_worker": 7}
    general = litellm_config.build_config(settings)["general_settings"]
    assert general["max_in_flight_requests_per_worker"] == 7 and general["max_queued_requests_per_worker"] == 128


@pytest.mark.parametrize(
    "section, message",
    [
        ({"in_flight_per_worker": 0}, "litellm:capacity:in_flight_per_worker: must be auto or an integer from 1"),
        ({"in_flight_per_worker": "many"}, "litellm:capacity:in_flight_per_worker: must be auto or an integer"),
        ({"backlog": 70000}, "litellm:capacity:backlog: must be auto or an integer from 1 to 65535"),
        ({"nofile": 2_000_000}, "litellm:capacity:nofile: must be auto or an integer from 1024 to 1048576"),
        ({"queue_timeout": 0}, "litellm:capacity:queue_timeout: must be a number from 0.1 to 60"),
        ({"memory_share": 1.5}, "litellm:capacity:memory_share: must be a number from 0.1 to 0.9"),
        ({"burst": 1}, "litellm:capacity: unknown key(s) burst"),
        # what the host cannot hold
        ({"in_flight_per_worker": 20000}, "litellm:capacity:in_flight_per_worker: 20000 x 2 worker(s)"),
        ({"memory_max_mib": 30000}, "litellm:capacity:memory_max_mib: 30000 MiB is more than the host's memory"),
        ({"memory_high_mib": 6000, "memory_max_mib": 5000}, "litellm:capacity:memory_max_mib: 5000 MiB is below"),
        ({"memory_high_mib": 700}, "litellm:capacity:memory_high_mib: 700 MiB cannot hold 2 worker(s)"),
        ({"nofile": 4000}, "litellm:capacity:nofile: 4000 cannot hold connections_per_worker (4096)"),
        ({"connections_per_worker": 100}, "litellm:capacity:connections_per_worker: 100 is fewer than"),
        ({"tasks_max": 20}, "litellm:capacity:tasks_max: 20 is fewer than 16 per process"),
    ],
)
def test_bad_capacity_is_refused_naming_the_key(section, message):
    errors = capacity_errors(settings_with(**section))
    assert any(e.startswith(message) for e in errors), errors


def test_auto_nofile_above_nr_open_is_refused():
    settings = settings_with(in_flight_per_worker=20000, queued_per_worker=20000, memory_mib=10**7,
                             memory_share=0.9)
    errors = capacity_errors(settings)
    assert any(e.startswith("litellm:capacity:nofile: ") and "fs.nr_open" in e for e in errors), errors


def test_not_a_mapping():
    settings = merged({})
    settings["capacity"] = "big"
    assert capacity_errors(settings) == ["litellm:capacity: must be a mapping, got 'big' (str)"]


def _render_unit(settings, name="litellm.service"):
    source = (REPO / "salt" / "litellm" / "files" / f"{name}.jinja").read_text()
    salt = {"litellm_config.capacity": litellm_config.capacity,
            "litellm_config.capacity_unit_lines": litellm_config.capacity_unit_lines,
            "litellm_service.unit_values": litellm_service.unit_values}
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(source).render(
        litellm=copy.deepcopy(settings), salt=salt)


def test_the_unit_carries_the_limits_in_its_service_section():
    text = _render_unit(settings_with())
    service = text.split("[Service]", 1)[1].split("[Install]", 1)[0]
    for line in ("LimitNOFILE=9216", "TasksMax=384", "MemoryHigh=11500M", "MemoryMax=14375M",
                 "Environment=AIOHTTP_CONNECTOR_LIMIT=128 AIOHTTP_CONNECTOR_LIMIT_PER_HOST=128"):
        assert f"\n{line}\n" in service, text
    assert "\n\n\n" not in text
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(" --limit-concurrency 4096 --backlog 4096 litellm_gateway:app"), exec_start


def test_the_socket_unit_holds_the_same_backlog():
    text = _render_unit(settings_with(), "litellm.socket")
    assert "\nBacklog=4096\n" in text.split("[Socket]", 1)[1], text


def test_uvicorn_gets_no_admission_flags_from_an_unresolved_plan():
    unit = load_salt_module("utils", "litellm_unit")
    assert unit.admission_args(merged({})) == [] and unit.socket_lines(merged({})) == []

# --- preflight: the host's sysctls ---------------------------------------------------

preflight = load_salt_module("utils", "litellm_preflight_capacity")
NEEDS = capacity.sysctl_needs(capacity.plan(settings_with()))


def test_preflight_passes_when_the_kernel_allows_the_plan():
    values = {"fs.file-max": 9_223_372, "fs.nr_open": 1_048_576, "net.core.somaxconn": 4096}
    status, detail = preflight.judge(NEEDS, values, (32768, False))
    assert status == "pass" and "net.core.somaxconn = 4096 >= 4096" in detail


@pytest.mark.parametrize(
    "name, value, key",
    [("net.core.somaxconn", 128, "capacity:backlog"), ("fs.file-max", 10000, "capacity:nofile"),
     ("fs.nr_open", 4096, "capacity:nofile")],
)
def test_preflight_names_the_sysctl_and_the_key(name, value, key):
    values = {"fs.file-max": 9_223_372, "fs.nr_open": 1_048_576, "net.core.somaxconn": 4096, name: value}
    status, detail = preflight.judge(NEEDS, values, (None, True))
    assert status == "fail"
    assert f"{name} = {value} < {NEEDS[name][0]} (litellm:{key}); raise it: sysctl -w {name}={NEEDS[name][0]}" in detail


def test_preflight_pid1_that_cannot_hand_out_the_limit():
    values = {"fs.file-max": 9_223_372, "fs.nr_open": 1_048_576, "net.core.somaxconn": 4096}
    assert preflight.judge(NEEDS, values, (4096, True))[0] == "pass"  # CAP_SYS_RESOURCE raises it
    status, detail = preflight.judge(NEEDS, values, (4096, False))
    assert status == "fail" and "systemd cannot set LimitNOFILE=9216" in detail


def test_preflight_unknown_sysctl_warns():
    assert preflight.judge(NEEDS, {"fs.file-max": 10**7, "fs.nr_open": 10**6}, (None, True))[0] == "warn"


def test_preflight_reads_this_machine(tmp_path):
    (tmp_path / "net" / "core").mkdir(parents=True)
    (tmp_path / "net" / "core" / "somaxconn").write_text("4096\n")
    assert preflight.read_sysctl("net.core.somaxconn", root=str(tmp_path)) == 4096
    assert preflight.read_sysctl("fs.file-max", root=str(tmp_path)) is None
    assert isinstance(preflight.read_sysctl("fs.nr_open"), int)  # the real /proc/sys
    hard, capable = preflight.pid1_nofile()
    assert hard is None or hard >= 1024
    assert isinstance(capable, bool)

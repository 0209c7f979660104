"""The formula's states through the loader, in test mode: nothing on this host changes."""

import json
import os

import pytest

from tests.conftest import TEST_MASTER_KEY

from .conftest import SITE_PILLAR


def test_merged_settings_come_from_map_jinja(modules):
    result = modules.litellm_config.validate()
    assert result == {"valid": True, "errors": []}


def test_workers_auto_is_one_per_core_bounded_by_four_and_by_memory(modules):
    source = "{%- from 'litellm/map.jinja' import litellm with context %}{{ litellm.service.workers | json }}"
    workers = modules.slsutil.renderer(string=source, default_renderer="jinja|json")
    grains = modules.grains.items()
    assert workers == min(grains["num_cpus"], 4, max(1, grains["mem_total"] // 768))
    assert f" --workers {workers} " in modules.litellm_config.render()["unit"]


def test_render_gives_config_env_and_unit_without_the_key(modules):
    rendered = modules.litellm_config.render()
    assert rendered["valid"] is True
    assert "model_name: chat-small" in rendered["config"]
    assert "api_base: http://127.0.0.1:21435" in rendered["config"]
    assert "LITELLM_MASTER_KEY=<redacted>" in rendered["env"]
    assert "ExecStart=/opt/litellm/venv/bin/python /etc/litellm/litellm_gateway.py --fd 3 " in rendered["unit"]
    assert "Environment=CONFIG_FILE_PATH=/etc/litellm/config.yaml " in rendered["unit"]
    assert "ExecReload=/bin/kill -HUP $MAINPID" in rendered["unit"]
    assert "ListenStream=0.0.0.0:4000" in rendered["socket"]
    assert TEST_MASTER_KEY not in json.dumps(rendered)


def test_render_refuses_bad_settings(modules):
    settings = dict(SITE_PILLAR["litellm"], bind_port="x")
    rendered = modules.litellm_config.render(settings=settings)
    assert rendered["valid"] is False
    assert "config" not in rendered
    assert any(e.startswith("litellm:bind_port:") for e in rendered["errors"])


def test_validated_state_passes_good_settings(states, modules):
    settings = modules.slsutil.renderer(
        string="{%- from 'litellm/map.jinja' import litellm with context %}{{ litellm | json }}",
        default_renderer="jinja|json",
    )
    ret = states.litellm_config.validated(name="litellm", settings=settings)
    assert ret.result is True
    assert ret.changes == {}
    assert "1 model(s) x 2 backend(s)" in ret.comment


def test_validated_state_lists_every_bad_key(states):
    ret = states.litellm_config.validated(name="litellm", settings={"bind_port": 0})
    assert ret.result is False
    assert "litellm:bind_port:" in ret.comment
    assert "litellm:backends:" in ret.comment
    assert "litellm:master_key: missing" in ret.comment


def test_validated_state_rejects_a_pillar_that_is_not_a_mapping(states):
    ret = states.litellm_config.validated(name="litellm", settings={}, pillar_is_mapping=False)
    assert ret.result is False
    assert "litellm: must be a mapping" in ret.comment


def test_validated_state_requires_a_lock_for_the_version(states, modules):
    settings = modules.slsutil.renderer(
        string="{%- from 'litellm/map.jinja' import litellm with context %}{{ litellm | json }}",
        default_renderer="jinja|json",
    )
    ret = states.litellm_config.validated(
        name="litellm", settings=settings, lock_source="salt://litellm/files/locks/litellm-0.0.1.txt"
    )
    assert ret.result is False
    assert "no lock file" in ret.comment


def test_validated_state_requires_the_compile_list_of_the_lock(states, modules):
    settings = modules.slsutil.renderer(
        string="{%- from 'litellm/map.jinja' import litellm with context %}{{ litellm | json }}",
        default_renderer="jinja|json",
    )
    shipped = f"salt://litellm/files/locks/litellm-{settings['version']}"
    ret = states.litellm_config.validated(name="litellm", settings=settings, lock_source=f"{shipped}.txt",
                                          compile_list_source=f"{shipped}.compile.txt")
    assert ret.result is True, ret.comment
    ret = states.litellm_config.validated(name="litellm", settings=settings, lock_source=f"{shipped}.txt",
                                          compile_list_source=f"{shipped}.nothing.txt")
    assert ret.result is False
    assert "litellm:version: no compile list for" in ret.comment and "make lock" in ret.comment


@pytest.mark.parametrize("test_mode", [True, False])
def test_venv_installed_is_a_no_op_when_the_digest_matches(states, modules, tmp_path, test_mode):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "litellm").write_text("#!/bin/sh\n")
    lock = tmp_path / "requirements.lock"
    lock.write_text("litellm==1.108.7 \\\n    --hash=sha256:00\n")
    (venv / ".litellm-salt-lock.sha256").write_text(modules.litellm_venv.status(str(venv), str(lock))["wanted"])
    ret = states.litellm_venv.installed(name=str(venv), lock_file=str(lock), test=test_mode)
    assert ret.result is True
    assert ret.changes == {}


def test_venv_installed_in_test_mode_says_what_would_change(states, tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("litellm==1.108.7 \\\n    --hash=sha256:00\n")
    ret = states.litellm_venv.installed(name=str(tmp_path / "venv"), lock_file=str(lock), test=True)
    assert ret.result is None
    assert ret.changes["lock"]["old"] is None
    assert not (tmp_path / "venv").exists()


def test_whole_formula_in_test_mode_changes_nothing(modules):
    before = set(os.listdir("/etc"))
    # this host is no systemd host: only the preflight may (and must) say no
    ret = modules.state.sls("litellm", test=True)
    failed = {r.id: r.comment for r in ret if r.result is False}
    assert set(failed) == {"litellm-preflight-go"}, failed
    assert "init: PID 1 is" in failed["litellm-preflight-go"]
    ids = {r.id for r in ret}
    assert {
        "litellm-validate-pillar-validated",
        "litellm-package-install-venv-installed",
        "litellm-config-file-config-managed",
        "litellm-config-file-env-managed",
        "litellm-service-running-unit-file-managed",
        "litellm-service-running-service-running",
        "litellm-service-running-ready",
        "litellm-smoke-passed",
    } <= ids
    results = {r.id: r.result for r in ret}
    assert results["litellm-config-file-config-managed"] is None
    assert results["litellm-smoke-passed"] is None
    assert TEST_MASTER_KEY not in json.dumps(ret.raw, default=str)
    assert set(os.listdir("/etc")) == before
    assert not os.path.exists("/etc/litellm")


def test_preflight_no_go_stops_the_run_before_any_change(modules):
    # Guard: this must be a NO-GO host (PID 1 is not systemd, no backends), or
    # the apply below would really deploy here.
    report = modules.litellm_preflight.run()
    assert report["result"] == "NO-GO" and "init" in report["failed"], report["failed"]
    before = set(os.listdir("/etc"))
    ret = modules.state.sls("litellm", test=False)
    results = {r.id: r.result for r in ret}
    assert results["litellm-validate-pillar-validated"] is True
    assert results["litellm-preflight-go"] is False
    ran = [r.id for r in ret if "failhard" not in (r.comment or "").lower()]
    assert ran == ["litellm-validate-pillar-validated", "litellm-owner-record-checked", "litellm-preflight-go"], ran
    assert set(os.listdir("/etc")) == before
    assert not os.path.exists("/etc/litellm") and not os.path.exists("/opt/litellm")
    assert modules.litellm_owner.show()["record"] is None  # nothing claimed before the GO



def test_the_modules_reach_their_utils_through_the_loader(modules):
    # a check (litellm_preflight_port) calls litellm_net, litellm_proc and the report through __utils__
    check = modules.litellm_preflight.bind_port(settings={"bind_host": "127.0.0.1", "bind_port": 1})
    assert check["name"] == "bind_port" and check["status"] in ("pass", "warn", "fail"), check
    assert modules.litellm_smoke.listening(url="http://127.0.0.1:1")["status"] == "fail"

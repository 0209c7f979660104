"""
Unit tests of litellm_preflight.run and the litellm_preflight.go state: the
verdict, evidence bundles and their pruning, settings without the state tree.
"""

import json
import os
import stat
from unittest.mock import MagicMock

import pytest

from tests.unit import preflight_common
from tests.unit.preflight_common import (
    BACKENDS,
    PF,
    REPORT,
    RUN,
    TLS,
    U,
    check,
    ctx,
    litellm_config,
    preflight_errors,
    preflight_state,
    settings,
    TEST_MASTER_KEY,
)

# the loader's fixtures, bound in this module's scope (saltfactories asks for configure_loader_modules)
configure_loader_modules = preflight_common.configure_loader_modules
run_all = preflight_common.run_all


# --- run(), evidence, the state -----------------------------------------------------------------


@pytest.fixture
def fake_checks(monkeypatch):
    """Replace every check with a canned answer (one leaks the key, on purpose)."""
    answers = {name: ("pass", f"{name} ok") for name in RUN.CHECKS}
    answers["resources"] = ("warn", "memory 512 MiB available (< 1024 MiB)")
    answers["dns"] = ("pass", f"leaky detail {TEST_MASTER_KEY}")
    checks = {name: (lambda ctx, s, n=name: answers[n]) for name in RUN.CHECKS}
    monkeypatch.setattr(RUN, "CHECKS", checks)
    return answers


def test_run_says_go_with_warnings(fake_checks):
    report = PF.run(settings=settings())
    assert report["result"] == "GO"
    assert report["warnings"] == ["resources"] and report["failed"] == []
    assert [c["name"] for c in report["checks"]] == RUN.selected_checks(U, settings())
    assert report["evidence"] is None
    assert TEST_MASTER_KEY not in json.dumps(report)


def test_run_says_no_go_and_runs_only_the_named_checks(fake_checks):
    fake_checks["backends"] = ("fail", "model 'x' missing on http://a:1")
    report = PF.run(settings=settings(), checks="backends,init")
    assert report["result"] == "NO-GO" and report["failed"] == ["backends"]
    assert [c["name"] for c in report["checks"]] == ["backends", "init"]


def test_a_check_that_raises_is_a_fail_not_a_crash(monkeypatch):
    def boom(ctx, settings):
        raise RuntimeError(f"unexpected {TEST_MASTER_KEY}")

    monkeypatch.setitem(RUN.CHECKS, "init", boom)
    out = PF._public("init", settings(), "base")
    assert out["status"] == "fail" and "check raised RuntimeError" in out["detail"]
    assert TEST_MASTER_KEY not in out["detail"]


def test_run_writes_a_private_evidence_bundle_without_the_key(fake_checks, tmp_path):
    evidence = tmp_path / "evidence"
    report = PF.run(settings=settings(), evidence_dir=str(evidence))
    bundle = report["evidence"]
    assert os.path.dirname(bundle) == str(evidence)
    assert os.path.basename(bundle).startswith("preflight-") and bundle.endswith("Z")
    assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o700
    assert sorted(os.listdir(bundle)) == ["report.json", "summary.txt"]
    for name in ("report.json", "summary.txt"):
        path = os.path.join(bundle, name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        assert TEST_MASTER_KEY not in text
        assert "<redacted>" in text
    with open(os.path.join(bundle, "report.json"), encoding="utf-8") as handle:
        document = json.load(handle)
    assert document["result"] == "GO" and document["evidence"] == bundle and document["host"] == "gw"
    with open(os.path.join(bundle, "summary.txt"), encoding="utf-8") as handle:
        assert handle.readline() == "LiteLLM preflight: GO\n"
    again = PF.run(settings=settings(), evidence_dir=str(evidence))
    assert again["evidence"] != bundle  # a second run in the same second gets its own bundle


def test_run_takes_the_evidence_dir_from_pillar(fake_checks, tmp_path):
    report = PF.run(settings=settings(preflight={"evidence_dir": str(tmp_path)}))
    assert report["evidence"].startswith(str(tmp_path))


def test_run_defaults_to_the_merged_settings(monkeypatch, fake_checks):
    renderer = MagicMock(return_value={"settings": settings(), "pillar_is_mapping": True})
    monkeypatch.setitem(PF.__salt__, "slsutil.renderer", renderer)
    assert PF.run()["result"] == "GO"
    assert "litellm/map.jinja" in renderer.call_args.kwargs["string"]


def test_state_go_lists_failures_and_never_changes(fake_checks):
    fake_checks["backends"] = ("fail", "model 'x' missing on http://a:1")
    fake_checks["init"] = ("fail", "PID 1 is 'sh', not systemd")
    ret = preflight_state.go("litellm", settings())
    assert ret["result"] is False and ret["changes"] == {}
    assert "Preflight NO-GO: 2 of 11 check(s) failed" in ret["comment"]
    assert "- backends: model 'x' missing on http://a:1" in ret["comment"]
    assert "- init: PID 1 is 'sh', not systemd" in ret["comment"]
    assert "- resources: memory 512 MiB" in ret["comment"]
    assert TEST_MASTER_KEY not in ret["comment"]


def test_state_go_passes_with_warnings_in_test_mode_too(fake_checks, tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(preflight_state.__opts__, "test", True)
        ret = preflight_state.go("litellm", settings(), evidence_dir=str(tmp_path))
    assert ret["result"] is True and ret["changes"] == {}
    assert "Preflight GO: 11 check(s), none failed" in ret["comment"]
    assert "Warnings (1):" in ret["comment"]
    assert f"Evidence: {tmp_path}/preflight-" in ret["comment"]


def test_state_go_fails_cleanly_on_an_unknown_check(fake_checks):
    ret = preflight_state.go("litellm", settings(), checks=["nope"])
    assert ret["result"] is False and "unknown check(s) nope" in ret["comment"]


def test_package_index_and_its_tls_are_skipped_when_the_pinned_version_is_installed(tmp_path):
    venv = tmp_path / "venv"
    settings = {
        "venv": str(venv),
        "version": "1.108.7",
        "package_index": {"url": "https://mirror.invalid/simple", "extra_urls": []},
        "backends": ["http://127.0.0.1:11434"],
    }
    assert [label for label, _, _ in TLS.https_endpoints(U, settings)] == ["package_index"]
    (venv / "lib" / "python3.11" / "site-packages" / "litellm-1.108.7.dist-info").mkdir(parents=True)
    status, detail = TLS.check_package_index(ctx(), settings)
    assert status == "skip" and "already installed" in detail
    assert TLS.https_endpoints(U, settings) == []
    settings["version"] = "1.108.8"
    assert [label for label, _, _ in TLS.https_endpoints(U, settings)] == ["package_index"]


# --- evidence pruning, settings without the state tree, the state's check list --------------


def test_keep_evidence_is_validated():
    assert preflight_errors(settings(preflight={"keep_evidence": 5})) == []
    for bad in (0, -1, "many", 2.5, True):
        errors = preflight_errors(settings(preflight={"keep_evidence": bad}))
        assert any("litellm:preflight:keep_evidence: must be an integer >= 1" in e for e in errors), (bad, errors)


def test_run_keeps_only_the_newest_evidence_bundles(fake_checks, tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for name in ("preflight-20240101T000000Z", "preflight-20240101T000000Z-2", "preflight-20240101T000000Z-10"):
        (evidence / name).mkdir()
        (evidence / name / "report.json").write_text("{}")
    (evidence / "notes").mkdir()  # not a bundle: never touched
    (evidence / "preflight-keep.txt").write_text("x")
    cfg = settings(preflight={"evidence_dir": str(evidence), "keep_evidence": 2})
    report = PF.run(settings=cfg)
    kept = sorted(os.listdir(evidence))
    newest = os.path.basename(report["evidence"])
    assert kept == sorted(["notes", "preflight-keep.txt", "preflight-20240101T000000Z-10", newest])
    again = PF.run(settings=cfg)
    assert sorted(os.listdir(evidence)) == sorted(
        ["notes", "preflight-keep.txt", newest, os.path.basename(again["evidence"])]
    )


def test_evidence_keeps_twenty_bundles_by_default(fake_checks, tmp_path):
    for second in range(25):
        (tmp_path / f"preflight-20240101T0000{second:02d}Z").mkdir()
    report = PF.run(settings=settings(), evidence_dir=str(tmp_path))
    kept = sorted(os.listdir(tmp_path))
    from tests.conftest import formula_defaults

    assert len(kept) == formula_defaults()["preflight"]["keep_evidence"] == 20
    assert os.path.basename(report["evidence"]) in kept
    assert "preflight-20240101T000024Z" in kept and "preflight-20240101T000005Z" not in kept


def test_prune_never_removes_the_current_bundle_or_symlinks(tmp_path):
    (tmp_path / "preflight-20240101T000000Z").mkdir()
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "preflight-20230101T000000Z")
    current = str(tmp_path / "preflight-20240101T000000Z")
    assert REPORT.prune_evidence(str(tmp_path), 0, current=current) == []
    assert os.path.isdir(current) and os.path.islink(tmp_path / "preflight-20230101T000000Z")
    assert REPORT.prune_evidence(str(tmp_path / "missing"), 1) == []


def test_every_default_lives_in_defaults_yaml_only():
    from tests.conftest import MODULES_DIR, STATES_DIR, UTILS_DIR, formula_defaults

    # the modules read defaults.yaml through map.jinja (or receive the merged map): nothing mirrors it
    paths = [*MODULES_DIR.glob("*.py"), *STATES_DIR.glob("*.py"), *UTILS_DIR.glob("*.py")]
    evidence_dir = formula_defaults()["preflight"]["evidence_dir"]
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for mirror in ("FORMULA_DEFAULTS", "OS_FAMILY_DEFAULTS", "DEFAULT_MIN_DISK_GIB", "DEFAULT_KEEP_EVIDENCE"):
            assert mirror not in text, (path.name, mirror)
        assert evidence_dir not in text, path.name


def test_without_the_state_tree_pillar_alone_is_checked_and_the_pillar_check_says_why(monkeypatch, fake_checks):
    from salt.exceptions import SaltRenderError

    def no_tree(**kwargs):
        raise SaltRenderError("Jinja error: litellm/map.jinja\njinja2.exceptions.TemplateNotFound: litellm/map.jinja")

    pillar = {"backends": list(BACKENDS), "bind_port": 4100, "preflight": {"min_disk_gib": 7}}
    monkeypatch.setitem(PF.__salt__, "slsutil.renderer", no_tree)
    monkeypatch.setitem(PF.__salt__, "pillar.get", MagicMock(return_value=pillar))
    context, checked = PF._context(None, "base")
    assert checked == pillar  # no defaults.yaml here: nothing is made up
    assert context.note == PF.NO_MAP_NOTE
    # a real template error is not hidden
    syntax = SaltRenderError("Jinja syntax error: unexpected '}'; litellm/map.jinja line 3")
    monkeypatch.setitem(PF.__salt__, "slsutil.renderer", MagicMock(side_effect=syntax))
    with pytest.raises(SaltRenderError):
        PF._context(None, "base")


def test_salt_ssh_without_pillar_says_so_in_the_pillar_check(monkeypatch):
    from salt.exceptions import SaltRenderError

    monkeypatch.setitem(
        PF.__salt__, "slsutil.renderer", MagicMock(side_effect=SaltRenderError("TemplateNotFound: litellm/map.jinja"))
    )
    # no pillar, no defaults.yaml: nothing to go on, and no evidence directory either
    monkeypatch.setitem(PF.__salt__, "pillar.get", MagicMock(return_value={}))
    report = PF.run(checks="pillar")
    assert report["evidence"] is None
    assert report["result"] == "NO-GO"
    detail = report["checks"][0]["detail"]
    assert "litellm:backends" in detail and PF.NO_PILLAR_NOTE in detail


def test_state_comment_lists_every_check_with_its_status(fake_checks):
    ret = preflight_state.go("litellm", settings())
    line = next(ln for ln in ret["comment"].splitlines() if ln.startswith("Checks: "))
    for name in RUN.selected_checks(U, settings()):
        assert f"{name} " in line
    assert "resources warn" in line and "pillar pass" in line


def test_ownership_fails_naming_the_key_when_the_deploy_would_take_something_over(monkeypatch):
    seen = {}

    def owner_check(entries):
        seen["entries"] = entries
        return {"claims": [], "labels": [], "adopted": False, "problems": [
            "litellm:service:user: user 'www-data' already exists on this host (uid 33, a system account)"]}

    monkeypatch.setitem(PF.__salt__, "litellm_owner.check", owner_check)
    monkeypatch.setitem(PF.__salt__, "litellm_config.layout",
                        lambda settings=None: litellm_config.plan_layout(settings))
    out = check("ownership", settings(service={"name": "litellm", "user": "www-data", "group": "litellm"}))
    assert out["status"] == "fail" and "litellm:service:user: user 'www-data' already exists" in out["detail"]
    assert ("user", "www-data") in {(e["kind"], e.get("name")) for e in seen["entries"]}
    monkeypatch.setitem(PF.__salt__, "litellm_owner.check",
                        lambda entries: {"claims": entries, "labels": [], "adopted": False, "problems": []})
    assert check("ownership", settings())["status"] == "pass"
    monkeypatch.delitem(PF.__salt__, "litellm_owner.check")
    assert check("ownership", settings())["status"] == "skip"


def test_the_evidence_directories_a_run_creates_are_recorded_as_the_formulas(fake_checks, tmp_path, monkeypatch):
    evidence = tmp_path / "store" / "evidence"
    noted = []
    monkeypatch.setitem(PF.__salt__, "litellm_owner.absent", lambda path: [str(evidence), str(evidence.parent)])
    monkeypatch.setitem(PF.__salt__, "litellm_owner.note", lambda paths, key: noted.append((paths, key)))
    report = PF.run(settings=settings(), evidence_dir=str(evidence))
    assert report["evidence"].startswith(str(evidence))
    assert noted == [([str(evidence), str(evidence.parent)], "preflight:evidence_dir")]
    noted.clear()
    PF.run(settings=settings(), evidence_dir="")  # no bundle: nothing to record
    assert noted == []

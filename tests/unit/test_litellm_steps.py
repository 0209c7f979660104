"""The operator's steps as answers (_utils/litellm_steps.py) and the new site (_utils/litellm_site.py)."""

from tests.conftest import SALT_UTILS, TEST_MASTER_KEY, formula_defaults, load_salt_module, merged, reference_pillar

U = SALT_UTILS
STEPS = U.litellm_steps
SITE = U.litellm_site
CONTROL = ["ControlMaster=auto", "ControlPath=~/.ssh/salt-ssh-%C", "ControlPersist=60s"]


def settings():
    return merged(reference_pillar(), {"master_key": TEST_MASTER_KEY, "service": {"workers": 2}})


def test_rendered_gives_every_file_and_no_secret():
    def template(name):
        return f"LITELLM_MASTER_KEY={TEST_MASTER_KEY}\n" if name == "litellm.env.jinja" else "[Unit]\n"

    answer = STEPS.rendered(U, settings(), template)
    assert answer["valid"] is True and answer["errors"] == []
    assert set(answer) == {"valid", "errors", "config", "env", "keys", "unit"}
    assert TEST_MASTER_KEY not in str(answer)


def test_rendered_invalid_gives_the_errors_only():
    bad = dict(settings(), backends=["ftp://x"])
    answer = STEPS.rendered(U, bad, lambda name: "never called")
    assert answer["valid"] is False and set(answer) == {"valid", "errors"}
    assert answer["errors"][0].startswith("litellm:backends:0:")


def test_no_map_is_one_line_saying_what_to_run():
    answer = STEPS.no_map()
    assert answer["valid"] is False and len(answer["errors"]) == 1
    assert "\n" not in answer["errors"][0] and "state.sls litellm.validate" in answer["errors"][0]


def test_pillar_errors_are_one_line_each():
    assert STEPS.pillar_errors({"litellm": {}}) == []
    errors = STEPS.pillar_errors({"_errors": ["Rendering SLS 'litellm_secrets' failed:\n  gpg: decryption failed"]})
    assert errors == ["pillar: Rendering SLS 'litellm_secrets' failed: gpg: decryption failed"]


def test_control_master_kept_lost_or_missing():
    assert STEPS.control_master([], CONTROL) == ("pass", "ControlMaster kept (the master's ssh_options)")
    assert STEPS.control_master(["LogLevel=ERROR", *CONTROL], CONTROL)[0] == "pass"
    status, detail = STEPS.control_master(["StrictHostKeyChecking=no"], CONTROL)
    assert status == "warn" and "replace the master's" in detail and "ControlMaster=auto" in detail
    assert STEPS.control_master([], [])[0] == "warn"


def test_report_from_state_return():
    report = {"result": "GO", "checks": [], "failed": [], "warnings": [], "duration_ms": 1.0, "evidence": None}
    ret = {"local": {"jid": "1", "return": {"litellm_preflight_|-x_|-litellm_|-go": {"comment": "", "report": report}}}}
    assert STEPS.report_from_state(ret) == (report, None)
    assert STEPS.report_from_state({"local": {"jid": "1", "return": {"a": {"comment": "Rendering\n failed"}}}}) == (
        None, "Rendering failed")
    assert STEPS.report_from_state(["Specified state 'x' was not found"])[0] is None


def test_add_check_keeps_the_verdict_on_a_warning():
    base = U.litellm_preflight_report.build_report([U.litellm_preflight_report.result("dns", "pass", "ok")], 5.0)
    report = STEPS.add_check(U, base, "ssh", "warn", "no ControlMaster")
    assert report["result"] == "GO" and report["warnings"] == ["ssh"] and len(report["checks"]) == 2
    assert STEPS.failed_report(U, "pillar", "x")["result"] == "NO-GO"


def test_preflight_high_is_one_state():
    high = STEPS.preflight_high({"a": 1}, None, ["dns"], "base")
    assert list(high) == ["litellm-steps-preflight-reported"]
    assert high["litellm-steps-preflight-reported"]["litellm_preflight"][0] == "go"


def test_module_validate_without_the_state_tree_says_what_to_run(monkeypatch):
    from salt.exceptions import SaltRenderError

    config = load_salt_module("modules", "litellm_config")

    def no_tree(**kwargs):
        raise SaltRenderError("TemplateNotFound: litellm/map.jinja")

    monkeypatch.setattr(config, "__salt__", {"slsutil.renderer": no_tree, "pillar.get": lambda *a, **k: {}},
                        raising=False)
    for function in (config.validate, config.render):
        answer = function()
        assert answer["valid"] is False and len(answer["errors"]) == 1, answer
        assert "state.sls litellm.validate" in answer["errors"][0]


# --- the new site -----------------------------------------------------------------------------


def test_site_pillar_states_only_what_the_site_gave():
    answers = {"host": "gw", "backends": ["http://a:11434"], "models": [SITE.parse_model("x=llama3.2:3b")],
               "bind_port": 4000, "ca_bundle": None}
    assert SITE.site_pillar(answers) == {
        "bind_port": 4000, "backends": ["http://a:11434"],
        "models": [{"name": "x", "provider": "ollama", "model": "llama3.2:3b"}],
    }
    assert SITE.parse_model("qwen2.5:7b") == {"name": "qwen2.5-7b", "provider": "ollama", "model": "qwen2.5:7b"}


def test_site_problems_are_validations_named_keys():
    good = {"backends": ["http://a:11434"], "models": [SITE.parse_model("x=y:1")]}
    assert SITE.pillar_problems(U, formula_defaults(), good) == []
    bad = {"backends": ["htp:/a"], "models": [SITE.parse_model("x=y:1"), SITE.parse_model("x=z:1")]}
    assert SITE.pillar_problems(U, formula_defaults(), bad) == [
        "litellm:backends:0: must start with http:// or https://, got 'htp:/a'",
        "litellm:models:1:name: duplicate alias 'x'",
    ]


def test_roster_entry_problems_and_control_master():
    assert SITE.roster_problems("gw", "gw.example", {}) == []
    assert "duplicate alias" in SITE.roster_problems("gw", "h", {"gw": {}})[0]
    assert SITE.roster_problems("bad alias", "", {})[0].startswith("roster:bad alias:")
    entry = SITE.roster_entry("h", port=2222, priv="/k")
    assert entry == {"host": "h", "port": 2222, "user": "root", "priv": "/k"}
    assert SITE.keep_control_master(entry, CONTROL) == entry  # the master's options apply
    own = SITE.keep_control_master(dict(entry, ssh_options=["LogLevel=ERROR"]), CONTROL)
    assert own["ssh_options"] == ["LogLevel=ERROR", *CONTROL]

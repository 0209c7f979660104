"""
The operator's steps as answers, wherever they run: ``litellm_config.validate``
and ``render`` (on the target through ``salt-call``, or on the controller
through the salt-ssh wrapper in ``_wrapper/``), the preflight report out of a
state return, and the check that a salt-ssh run keeps its ControlMaster.

Pure functions: the callers hand in the merged settings and a function that
renders one of the formula's templates. Every answer is a dict a person can
read; a step that cannot run here says, in one line, what to run instead.
"""

NO_MAP_HINT = (
    "salt://litellm/map.jinja is not on this target: salt-ssh ships the modules without the state tree. "
    "Run it from the repository root with the formula's etc/salt/master (its wrapper_dirs run this on the "
    "controller), or run: salt-ssh <target> state.sls litellm.validate"
)
CONTROL_MASTER = "ControlMaster"
PREFLIGHT_STATE_ID = "litellm-steps-preflight-reported"


def validation(utils, settings):
    """``{"valid", "errors"}`` of the merged ``settings``."""
    errors = list(utils.litellm_validate.check_settings(utils, settings))
    return {"valid": not errors, "errors": errors}


def cannot(reason, hint):
    """The answer of a step that cannot run here: why, and the one command to run instead."""
    return {"valid": False, "errors": [f"{reason}: {hint}"]}


def no_map():
    """The answer of validate/render on a target with neither pillar nor the state tree."""
    return cannot("no formula settings here", NO_MAP_HINT)


def rendered(utils, settings, template):
    """
    The files the formula would write for ``settings`` (``template(name)``
    renders ``salt://litellm/files/<name>``): config, env (secrets redacted),
    keys (hashes only) and unit; only the errors when the settings are invalid.
    """
    answer = validation(utils, settings)
    if not answer["valid"]:
        return answer
    answer.update(
        {
            "config": utils.litellm_build.config_text(settings),
            "env": utils.litellm_build.redact_env(utils, template("litellm.env.jinja")),
            "keys": utils.litellm_keys.key_table_text(settings),
            "unit": template("litellm.service.jinja"),
        }
    )
    return answer


def pillar_errors(pillar):
    """Salt's own pillar compile errors (``_errors``), each on one line, never a traceback."""
    errors = pillar.get("_errors") if isinstance(pillar, dict) else None
    if not errors:
        return []
    return ["pillar: " + " ".join(str(error).split())[:500] for error in errors]


def _lists_option(options, name):
    prefix = name.lower() + "="
    return any(str(option).replace(" ", "").lower().startswith(prefix) for option in options or [])


def control_master(target_options, master_options):
    """
    One preflight result (name ``ssh``) on the ssh options of a salt-ssh run.
    Salt's rule: a roster entry's own ``ssh_options`` replace the master's, so
    an entry with options but no ControlMaster loses it (each round trip of
    the run opens a new connection: a no-op re-apply ~5 s -> 8-9 s).
    """
    effective = target_options if target_options else master_options
    if _lists_option(effective, CONTROL_MASTER):
        where = "the roster entry" if target_options else "the master's ssh_options"
        return "pass", f"ControlMaster kept ({where})"
    if target_options and _lists_option(master_options, CONTROL_MASTER):
        return "warn", (
            "the roster entry's own ssh_options replace the master's (Salt's rule), so this run goes "
            "without ControlMaster (a no-op re-apply ~3 s slower): add ControlMaster=auto, "
            "ControlPath=~/.ssh/salt-ssh-%C and ControlPersist=60s to the entry's ssh_options, "
            "or remove them (scripts/new-site writes entries that keep it)"
        )
    return "warn", (
        "no ControlMaster in ssh_options: every round trip of a salt-ssh run opens a new connection; "
        "use the formula's etc/salt/master"
    )


def preflight_high(settings, evidence_dir, checks, saltenv):
    """The high data of one ``litellm_preflight.go`` state (salt-ssh's state package carries it)."""
    args = [{"name": "litellm"}, {"settings": settings}, {"evidence_dir": evidence_dir}, {"checks": checks}]
    return {PREFLIGHT_STATE_ID: {"litellm_preflight": ["go", *args], "__env__": saltenv, "__sls__": "litellm.steps"}}


def report_from_state(ret):
    """
    The preflight report inside a ``state.single litellm_preflight.go`` return
    (the state carries it as ``report``), or None with the state's comment.
    """
    if isinstance(ret, dict) and "local" in ret and len(ret) == 1:
        ret = ret["local"]
    if isinstance(ret, dict) and "jid" in ret and "return" in ret:
        ret = ret["return"]
    if isinstance(ret, dict):
        for state in ret.values():
            if isinstance(state, dict) and isinstance(state.get("report"), dict):
                return state["report"], None
        comments = [str(state.get("comment")) for state in ret.values() if isinstance(state, dict)]
        return None, " ".join(" ".join(comments).split())[:1500] or "no state ran"
    if isinstance(ret, list):
        return None, " ".join(" ".join(str(item) for item in ret).split())[:1500]
    return None, " ".join(str(ret).split())[:1500]


def add_check(utils, report, name, status, detail):
    """``report`` with one more check (the verdict recomputed: a warning never makes NO-GO)."""
    checks = list(report.get("checks") or []) + [utils.litellm_preflight_report.result(name, status, detail)]
    merged = utils.litellm_preflight_report.build_report(checks, report.get("duration_ms") or 0.0)
    merged["evidence"] = report.get("evidence")
    return merged


def failed_report(utils, name, detail):
    """A NO-GO report of one failed check: the preflight could not run at all."""
    return utils.litellm_preflight_report.build_report(
        [utils.litellm_preflight_report.result(name, "fail", detail)], 0.0
    )

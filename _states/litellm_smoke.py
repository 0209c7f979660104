"""
``litellm_smoke.passed``: the run succeeds only when the gateway passes every
smoke check (``litellm_smoke.run``). A passing smoke test changes nothing (it
only keeps the live config and env as the known-good pair, when ``config_dir``
is given); a failing one after a change rolls back to that pair
(``litellm_smoke.settle``) and still fails.
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_smoke"

def __virtual__():
    if "litellm_smoke.run" not in __salt__:
        return (False, "the litellm_smoke execution module is not loaded")
    return __virtualname__


def _scrub(text, secret):
    return __utils__["litellm_redact.redact_secret"](text, secret)


def passed(
    name, url=None, master_key=None, models=None, backends=None, concurrency=10, latency_requests=10,
    chat_models="first", evidence_dir=None, timeout=30, bind_host=None, bind_port=None, config_dir=None,
    service="litellm", group="litellm", rollback=True, ready_timeout=180, venv="/opt/litellm/venv", keep=5,
    keep_venvs=1, metrics_url=None,
):
    """
    Run every smoke check against the gateway and succeed only when all pass
    (warnings are listed, they do not fail the state). Arguments left None
    come from pillar ``litellm:`` like in ``litellm_smoke.run``; leave
    ``master_key`` out of the SLS so that it is taken from the secret pillar.
    ``bind_host``/``bind_port`` (the formula's) give the URL when ``url`` is
    not set; ``metrics_url`` (litellm:metrics) adds the ``metrics`` check.
    With ``config_dir`` (the formula's), a PASS keeps ``config.yaml``,
    ``litellm.env`` and the venv release as the newest known-good release
    (the newest ``keep``; bookkeeping: no changes reported); a FAIL with
    ``rollback`` on, when the live state differs from that release, restores
    it, restarts ``service`` and runs smoke again: the state still fails,
    with changes ``{"rollback": {"release", "restored": [...],
    "smoke_after_rollback": "PASS"|"FAIL"}}``.
    Otherwise never reports changes; in test mode it says what it would run.

    .. code-block:: yaml

        litellm-smoke-passed:
          litellm_smoke.passed:
            - name: litellm
            - chat_models: all
            - evidence_dir: /var/lib/litellm-smoke
            - require:
              - litellm_service: litellm-service-running-ready
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if url is None and bind_host is not None:
        # the formula's bind address, asked on loopback when it is a wildcard
        url = __salt__["litellm_config.local_url"](bind_host, bind_port)
    run_kwargs = {
        "url": url, "master_key": master_key, "models": models, "backends": backends, "concurrency": concurrency,
        "latency_requests": latency_requests, "chat_models": chat_models, "evidence_dir": evidence_dir,
        "timeout": timeout, "metrics_url": metrics_url,
    }
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = _scrub(_plan_comment(run_kwargs, bool(config_dir and rollback)), master_key)
        return ret
    report = __salt__["litellm_smoke.run"](**run_kwargs)
    settled = None
    if config_dir:
        settled = __salt__["litellm_smoke.settle"](
            report, config_dir=config_dir, service=service, group=group, rollback=rollback,
            ready_timeout=ready_timeout, run_kwargs=run_kwargs, venv=venv, keep=keep, keep_venvs=keep_venvs,
        )
    failed = [check for check in report["checks"] if check["status"] == "fail"]
    ret["result"] = not failed
    if failed and settled and settled["action"] == "rolled_back":
        ret["changes"] = _rollback_changes(settled)
    ret["comment"] = _scrub("\n".join(_report_lines(report, failed, settled, service)), master_key)
    return ret


def key_present(name):
    """
    The formula's smoke key at ``name`` (``<config_dir>/smoke-key``): made
    once (root:root 0600, never shown), left alone when it is there, so a
    second run changes nothing. The key table lists its hash (``_smoke``).

    .. code-block:: yaml

        litellm-config-file-smoke-key-present:
          litellm_smoke.key_present:
            - name: /etc/litellm/smoke-key
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    config_dir, file_name = name.rsplit("/", 1)
    if file_name != "smoke-key":
        ret.update(result=False, comment=f"{name}: the smoke key's file is <config_dir>/smoke-key")
        return ret
    made = __salt__["litellm_smoke.smoke_key"](config_dir or "/", test=__opts__["test"])
    if made["created"] is None:
        ret.update(result=None, comment=f"The smoke key {name} would be made ({made['reason']})")
    elif made["created"]:
        ret.update(changes={"smoke_key": "made (root 0600, never shown)"}, comment=f"Made the smoke key {name}")
    else:
        ret["comment"] = f"The smoke key {name} is present"
    return ret


def _rollback_changes(settled):
    """The changes of a failed run that rolled back: which release came back, and whether smoke passes on it."""
    return {
        "rollback": {
            "release": settled["release"],
            "restored": settled["restored"],
            "smoke_after_rollback": settled["smoke_after_rollback"],
        }
    }


def _plan_comment(run_kwargs, rolls_back):
    """What a run in test mode would do."""
    planned = __salt__["litellm_smoke.plan"](
        **{key: run_kwargs[key] for key in ("url", "models", "backends", "chat_models", "concurrency",
                                             "latency_requests")}
    )
    aliases = ", ".join(planned["models"]) or "the aliases the gateway lists"
    comment = (
        f"Would run {len(planned['checks'])} smoke checks ({', '.join(planned['checks'])}) "
        f"against {planned['url']} for {aliases}"
    )
    if not (planned["has_master_key"] or run_kwargs["master_key"]):
        comment += "; no master key is known, most checks would be skipped"
    if rolls_back:
        comment += "; on a failure after a change it would roll back to the last known-good release"
    return comment


def _report_lines(report, failed, settled, service):
    """The comment of a run: its verdict, what failed or warned, the evidence, the bookkeeping."""
    lines = []
    if failed:
        if settled and settled["action"] == "rolled_back":
            lines.append(
                f"Smoke test of {report['url']} FAILED after a change (failed: "
                f"{', '.join(check['name'] for check in failed)}): ROLLED BACK to known-good release "
                f"{settled['release']}, restarted {service}; smoke after rollback: {settled['smoke_after_rollback']}"
            )
        lines.append(f"Smoke test of {report['url']} FAILED: {report['summary']}")
        lines += [f"- {check['name']}: {check['detail']}" for check in failed]
    else:
        lines.append(f"Smoke test of {report['url']} passed: {report['summary']} in {report['duration_ms']} ms")
    warned = [check for check in report["checks"] if check["status"] in ("warn", "skip")]
    lines += [f"- {check['name']} ({check['status']}): {check['detail']}" for check in warned]
    if report.get("evidence"):
        lines.append(f"Evidence: {report['evidence']}")
    if settled:
        lines += _settled_lines(settled, service, bool(failed))
    return lines


def _settled_lines(settled, service, failed):
    """What the known-good bookkeeping did, as comment lines."""
    action = settled["action"]
    if action == "saved":
        extra = f" ({settled['reason']})" if settled["reason"] else ""
        return [f"Known-good release saved: {settled['release']}{extra}"]
    if action == "kept":
        return [f"Known-good release: unchanged ({settled['release']} is the live one)"]
    if action == "rolled_back":
        lines = [f"Rolled back ({settled['reason']}): {', '.join(settled['restored'])}"]
        ready = settled.get("ready") or {}
        if ready and not ready.get("ready"):
            lines.append(f"- {service} not ready after the rollback: {ready.get('status')} {ready.get('detail')}")
        after = settled.get("after") or {}
        if after:
            lines.append(f"Smoke test after rollback: {after.get('summary')}")
            lines += [f"- {check['name']}: {check['detail']}" for check in after.get("failed") or []]
        return lines
    if action == "error":
        return [f"Warning: {settled['reason']}"]
    if not settled["reason"]:
        return []
    if failed:
        return [f"Not rolled back: {settled['reason']}"]
    return [f"Known-good release not saved: {settled['reason']}"]

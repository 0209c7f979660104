"""
Gate a deploy on the host's preflight: ``litellm_preflight.go`` fails, listing
every failed check and why, when the host is NO-GO for the litellm formula.

The checks are read-only, so they run in test mode too; the state never
reports changes (the evidence bundle's path goes in the comment), so a
re-apply reports 0 changes.
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_preflight"


def __virtual__():
    if "litellm_preflight.run" not in __salt__:
        return (False, "the litellm_preflight execution module is not loaded")
    return __virtualname__


def _comment(report):
    checks = {check["name"]: check for check in report["checks"]}
    lines = []
    if report["failed"]:
        lines.append(f"Preflight NO-GO: {len(report['failed'])} of {len(report['checks'])} check(s) failed:")
        lines.extend(f"- {name}: {checks[name]['detail']}" for name in report["failed"])
    else:
        lines.append(f"Preflight GO: {len(report['checks'])} check(s), none failed")
    if report["warnings"]:
        lines.append(f"Warnings ({len(report['warnings'])}):")
        lines.extend(f"- {name}: {checks[name]['detail']}" for name in report["warnings"])
    skipped = [check["name"] for check in report["checks"] if check["status"] == "skip"]
    if skipped:
        lines.append(f"Skipped: {', '.join(skipped)}")
    lines.append("Checks: " + ", ".join(f"{check['name']} {check['status']}" for check in report["checks"]))
    lines.append(f"Took {report['duration_ms']:.0f} ms")
    if report.get("evidence"):
        lines.append(f"Evidence: {report['evidence']}")
    return "\n".join(lines)


def go(name, settings, evidence_dir=None, checks=None):
    """
    Succeed only when the preflight of the host says GO for ``settings`` (the
    merged map of the formula). Failed checks are listed with their detail,
    warnings too (they do not fail the state). Never changes anything but the
    optional evidence bundle in ``evidence_dir`` (default: pillar
    ``litellm:preflight:evidence_dir``); runs in test mode as well.

    .. code-block:: yaml

        litellm-preflight-go:
          litellm_preflight.go:
            - name: litellm
            - settings: {{ litellm | json }}
            - failhard: True
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        report = __salt__["litellm_preflight.run"](settings=settings, evidence_dir=evidence_dir, checks=checks)
    except (OSError, ValueError) as exc:
        ret["result"] = False
        ret["comment"] = f"Preflight could not run: {exc}"
        return ret
    ret["result"] = report["result"] == "GO"
    ret["comment"] = _comment(report)
    # The whole (redacted) report rides along in the state return, so that
    # salt-ssh users get it on the controller (see _wrapper/litellm_preflight.py).
    ret["report"] = report
    return ret

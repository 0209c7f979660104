"""
``litellm_release.rolled_back``: when a deploy step fails (``onfail``), go back
to the last known-good release (``litellm_release.recover``).
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_release"


def __virtual__():
    if "litellm_release.recover" not in __salt__:
        return (False, "the litellm_release execution module is not loaded")
    return __virtualname__


def rolled_back(
    name,
    config_dir="/etc/litellm",
    venv="/opt/litellm/venv",
    group="litellm",
    host="127.0.0.1",
    port=4000,
    ready_timeout=180,
    url=None,
):
    """
    Restore the newest known-good release (config.yaml, litellm.env, venv)
    of the service ``name`` when the live state differs from it, restart the
    service if its process loaded what was replaced, and wait until it is
    ready. Meant to run only through ``onfail`` on the deploy steps: the run
    still fails on the step that failed; this state says ROLLED BACK and
    fails itself only when the rollback did not bring the gateway back.
    Readiness is asked at ``url`` (litellm:tls: the https base_url), else at
    ``host``:``port`` over http.

    .. code-block:: yaml

        litellm-service-running-rolled-back:
          litellm_release.rolled_back:
            - name: litellm
            - onfail:
              - litellm_service: litellm-service-running-ready
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    url = url or __salt__["litellm_config.local_url"](host, port)
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Would roll {name} back to its last known-good release"
        return ret
    try:
        out = __salt__["litellm_release.recover"](
            config_dir=config_dir, venv=venv, service=name, group=group, url=url, ready_timeout=ready_timeout
        )
    except Exception as exc:  # pylint: disable=broad-except
        ret["result"] = False
        ret["comment"] = f"Rolling {name} back failed: {type(exc).__name__}: {exc}"
        return ret
    if out["action"] != "rolled_back":
        ret["comment"] = f"Not rolled back: {out['reason']}"
        return ret
    ret["changes"] = {
        "rollback": {"release": out["release"], "restored": out["restored"], "restarted": out["restarted"],
                     "path": out.get("path")}
    }
    ret["result"] = bool((out["ready"] or {}).get("ready"))
    ret["comment"] = "\n".join(_rollback_lines(name, out))
    return ret


def _rollback_lines(name, out):
    """The comment of a rollback that ran: what it restored, what it left, whether the gateway is back."""
    ready = out["ready"] or {}
    lines = [f"ROLLED BACK {name} to known-good release {out['release']}: {out['reason']}"]
    lines += [f"- not restored: {item}" for item in out["skipped"]]
    if ready.get("ready"):
        how = (f"{out.get('path', 'restart')} done, ready after {ready.get('waited')} s" if out["restarted"]
               else "not restarted: still ready")
        lines.append(f"{name} serves the known-good release again ({how})")
    else:
        lines.append(f"{name} is NOT ready after the rollback: {ready.get('status')} {ready.get('detail')}")
    return lines

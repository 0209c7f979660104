"""
``litellm_smoke.passed``: the run succeeds only when the gateway passes every
smoke check (``litellm_smoke.run``). A smoke test changes nothing.
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_smoke"

REDACTED = "<redacted>"


def __virtual__():
    if "litellm_smoke.run" not in __salt__:
        return (False, "the litellm_smoke execution module is not loaded")
    return __virtualname__


def _scrub(text, secret):
    if secret and isinstance(secret, str):
        return text.replace(secret, REDACTED)
    return text


def passed(
    name,
    url=None,
    master_key=None,
    models=None,
    backends=None,
    concurrency=10,
    latency_requests=10,
    chat_models="first",
    evidence_dir=None,
    timeout=30,
    bind_host=None,
    bind_port=None,
):
    """
    Run every smoke check against the gateway and succeed only when all pass
    (warnings are listed, they do not fail the state). Arguments left None
    come from pillar ``litellm:`` like in ``litellm_smoke.run``; leave
    ``master_key`` out of the SLS so that it is taken from the secret pillar.
    ``bind_host``/``bind_port`` (the formula's) give the URL when ``url`` is
    not set.
    Never reports changes; in test mode it says what it would run.

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
    if __opts__["test"]:
        planned = __salt__["litellm_smoke.plan"](
            url=url,
            models=models,
            backends=backends,
            chat_models=chat_models,
            concurrency=concurrency,
            latency_requests=latency_requests,
        )
        aliases = ", ".join(planned["models"]) or "the aliases the gateway lists"
        comment = (
            f"Would run {len(planned['checks'])} smoke checks ({', '.join(planned['checks'])}) "
            f"against {planned['url']} for {aliases}"
        )
        if not (planned["has_master_key"] or master_key):
            comment += "; no master key is known, most checks would be skipped"
        ret["result"] = None
        ret["comment"] = _scrub(comment, master_key)
        return ret
    report = __salt__["litellm_smoke.run"](
        url=url,
        master_key=master_key,
        models=models,
        backends=backends,
        concurrency=concurrency,
        latency_requests=latency_requests,
        chat_models=chat_models,
        evidence_dir=evidence_dir,
        timeout=timeout,
    )
    failed = [check for check in report["checks"] if check["status"] == "fail"]
    warned = [check for check in report["checks"] if check["status"] in ("warn", "skip")]
    lines = []
    if failed:
        ret["result"] = False
        lines.append(f"Smoke test of {report['url']} FAILED: {report['summary']}")
        lines += [f"- {check['name']}: {check['detail']}" for check in failed]
    else:
        lines.append(f"Smoke test of {report['url']} passed: {report['summary']} in {report['duration_ms']} ms")
    lines += [f"- {check['name']} ({check['status']}): {check['detail']}" for check in warned]
    if report.get("evidence"):
        lines.append(f"Evidence: {report['evidence']}")
    ret["comment"] = _scrub("\n".join(lines), master_key)
    return ret

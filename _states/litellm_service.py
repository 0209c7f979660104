"""
``litellm_service.ready``: the run succeeds only once the gateway is ready.
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_service"


def __virtual__():
    if "litellm_service.wait_ready" not in __salt__:
        return (False, "the litellm_service execution module is not loaded")
    return __virtualname__


def ready(name, host="127.0.0.1", port=4000, timeout=180):
    """
    Wait until the service ``name`` answers 200 on ``/health/readiness`` at
    ``host``:``port`` (a wildcard bind address is asked on loopback). Changes
    nothing; fails with the last answer and the unit's state after ``timeout``.

    .. code-block:: yaml

        litellm-service-running-ready:
          litellm_service.ready:
            - name: litellm
            - host: 0.0.0.0
            - port: 4000
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    url = __salt__["litellm_config.local_url"](host, port)
    if __opts__["test"]:
        answer = __salt__["litellm_service.readiness"](url)
        if answer["ready"]:
            ret["comment"] = f"{name} is ready at {url}"
        else:
            ret["result"] = None
            ret["comment"] = f"{name} would be checked for readiness at {url} (now: {answer['detail']})"
        return ret
    answer = __salt__["litellm_service.wait_ready"](url, timeout=timeout)
    if answer["ready"]:
        ret["comment"] = f"{name} is ready at {url} (waited {answer['waited']} s)"
        return ret
    ret["result"] = False
    active = __salt__["service.status"](name)
    ret["comment"] = (
        f"{name} did not become ready at {url} within {timeout} s "
        f"(last answer: {answer['status'] or answer['detail']}; unit active: {active}). "
        f"See: journalctl -u {name}"
    )
    return ret

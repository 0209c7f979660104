"""
Gate and clean by the formula's record of what it owns on the host.

``litellm_owner.claimed`` runs before anything is created: it refuses a
takeover (a path, unit, user or group that exists and is not the formula's),
naming the pillar key, and records what the run is about to create.
``litellm_owner.removed`` removes exactly what the record lists for one job.
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_owner"


def __virtual__():
    if "litellm_owner.claim" not in __salt__:
        return (False, "the litellm_owner execution module is not loaded")
    return __virtualname__


def _layout(settings, scope):
    if scope == "redis":
        redis = settings.get("redis") if isinstance(settings.get("redis"), dict) else {}
        if not redis.get("server"):
            return []
        return [{"kind": "pkg", "key": "redis:server", "job": "redis", "name": "redis-server", "path": ""}]
    return __salt__["litellm_config.layout"](settings=settings)


def _decide(ret, settings, scope):
    """The layout and the takeover decision, or None with ``ret`` failed."""
    entries = _layout(settings, scope)
    try:
        decided = __salt__["litellm_owner.check"](entries)
    except RuntimeError as exc:
        ret.update(result=False, comment=str(exc))
        return entries, None
    if decided["problems"]:
        ret["result"] = False
        ret["comment"] = "Takeover refused, nothing was changed:\n" + "\n".join(f"- {p}" for p in decided["problems"])
        return entries, None
    return entries, decided


def checked(name, settings, scope="gateway"):
    """
    Read-only: fail, naming the pillar key and what was found, when anything
    this run would create already exists and is not the formula's. Runs
    before the preflight (which may write evidence) and never changes anything.
    Its arguments are those of :func:`claimed`; the formula's ID is
    ``litellm-owner-record-checked`` (``failhard: True``).
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    _, decided = _decide(ret, settings, scope)
    if decided is not None:
        ret["comment"] = f"No takeover: {len(decided['claims'])} new path(s), unit(s) or account(s) to create"
    return ret


def claimed(name, settings, scope="gateway"):
    """
    Refuse a takeover, then record what this run will create.

    .. code-block:: yaml

        litellm-owner-record-claimed:
          litellm_owner.claimed:
            - name: litellm
            - settings: {{ litellm | json }}
            - failhard: True

    ``scope: redis`` claims the Redis server package of ``litellm.redis``.
    Under ``test=True`` it says what it would record and records nothing.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    entries, decided = _decide(ret, settings, scope)
    if decided is None:
        return ret
    labels = decided["labels"]
    if not labels and not decided["adopted"]:
        ret["comment"] = "Everything this run creates is already in the formula's record"
        return ret
    adopted = " (adopting a deploy of an earlier formula version, found by its unit file)" if decided["adopted"] else ""
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Would record as the formula's{adopted}: " + ", ".join(labels)
        ret["changes"] = {"recorded": labels}
        return ret
    try:
        __salt__["litellm_owner.claim"](entries)
    except RuntimeError as exc:
        ret.update(result=False, comment=f"Takeover refused, nothing was changed:\n{exc}")
        return ret
    ret["comment"] = f"Recorded as the formula's{adopted}: " + ", ".join(labels)
    ret["changes"] = {"recorded": labels}
    return ret


def removed(name, jobs):
    """
    Remove what the formula's record lists for ``jobs`` (service, config,
    package, owner, redis), whatever pillar says now.

    .. code-block:: yaml

        litellm-service-clean-owned-removed:
          litellm_owner.removed:
            - name: litellm
            - jobs: [service]

    A host with no record changes nothing. Under ``test=True`` the comment
    lists exactly the record's entries that would go.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        would = __salt__["litellm_owner.remove"](jobs, test=True)
    except RuntimeError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if would["record"] is None:
        ret["comment"] = "No record of the formula on this host: it created nothing here, nothing to remove"
        return ret
    if not would["removed"]:
        ret["comment"] = f"The formula's record lists nothing of {', '.join(jobs)} here"
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "Would remove (the formula's record): " + ", ".join(would["removed"])
        ret["changes"] = {"removed": would["removed"]}
        return ret
    done = __salt__["litellm_owner.remove"](jobs)
    if done["removed"]:
        ret["changes"] = {"removed": done["removed"]}
    lines = ["Removed (the formula's record): " + (", ".join(done["removed"]) or "nothing was left to remove")]
    lines += [f"Left: {why}" for why in done["left"]]
    if done["errors"]:
        ret["result"] = False
        lines += [f"Failed: {why}" for why in done["errors"]]
    ret["comment"] = "\n".join(lines)
    return ret

"""
Gate a run on the formula's settings: ``litellm_config.validated`` fails,
naming every bad pillar key, before any other state changes the host.
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_config"


def __virtual__():
    if "litellm_config.validate" not in __salt__:
        return (False, "the litellm_config execution module is not loaded")
    return __virtualname__


def validated(name, settings, pillar_is_mapping=True, lock_source=None, section=None, compile_list_source=None):
    """
    Succeed only when ``settings`` (the merged map of the formula) are valid
    and, when given, the lock file ``lock_source`` for the pinned version
    and its compile list ``compile_list_source`` exist on the file server.
    Changes nothing, also outside test mode.

    .. code-block:: yaml

        litellm-validate-pillar-validated:
          litellm_config.validated:
            - name: litellm
            - settings: {{ litellm | json }}
            - failhard: True

    With ``section`` (e.g. ``redis``) only the errors of ``litellm:<section>``
    count.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if not pillar_is_mapping:
        ret["result"] = False
        ret["comment"] = "Invalid pillar:\n- litellm: must be a mapping of settings (see pillar.example)"
        return ret
    errors = __salt__["litellm_config.validate"](settings=settings)["errors"]
    if section:
        # Only one section's keys matter (e.g. redis on a host that only runs Redis).
        errors = [e for e in errors if e.startswith((f"litellm:{section}:", f"litellm:{section} "))]
        if not errors:
            ret["comment"] = f"Pillar litellm:{section} is valid"
            return ret
    if not errors and lock_source and not __salt__["cp.hash_file"](lock_source):
        errors.append(
            f"litellm:version: no lock file for {settings.get('version')!r} "
            f"({lock_source}); generate one with `make lock VERSION=...`"
        )
    if not errors and compile_list_source and not __salt__["cp.hash_file"](compile_list_source):
        errors.append(
            f"litellm:version: no compile list for {settings.get('version')!r} "
            f"({compile_list_source}); `make lock VERSION=...` writes it beside the lock"
        )
    if errors:
        ret["result"] = False
        ret["comment"] = "Invalid pillar, nothing was changed:\n" + "\n".join(f"- {e}" for e in errors)
        return ret
    ret["comment"] = (
        f"Pillar is valid: {len(settings['models'])} model(s) x " f"{len(settings['backends'])} backend(s)"
    )
    return ret

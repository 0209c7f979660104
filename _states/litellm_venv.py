"""
``litellm_venv.installed``: the venv holds exactly what the lock file pins.
"""

import logging

log = logging.getLogger(__name__)

__virtualname__ = "litellm_venv"


def __virtual__():
    if "litellm_venv.status" not in __salt__:
        return (False, "the litellm_venv execution module is not loaded")
    return __virtualname__


def installed(name, lock_file, python="/usr/bin/python3", index_url="", extra_index_urls=None, ca_bundle="",
              compile_list=""):
    """
    Make the venv path ``name`` run the packages of ``lock_file``: nothing to
    do (offline) when its active release records that lock's digest;
    otherwise build that release beside the active one (or reuse it when it
    is still on disk) and switch ``name`` to it. The release it replaces is
    kept for a rollback. ``compile_list``: the lock's list of the files to
    compile (the rest stay source only); without one, every file.

    .. code-block:: yaml

        litellm-package-install-venv-installed:
          litellm_venv.installed:
            - name: /opt/litellm/venv
            - lock_file: /opt/litellm/venv-releases/litellm-1.108.7.lock
            - compile_list: /opt/litellm/venv-releases/litellm-1.108.7.compile.txt
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    before = __salt__["litellm_venv.status"](name, lock_file)
    if before["installed"]:
        ret["comment"] = f"{name} already runs {before['active']}, which matches {lock_file}"
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {
            "lock": {"old": before["current"], "new": before["wanted"] or f"the digest of {lock_file}"},
            "release": {"old": before["active"], "new": before["release"]},
        }
        ret["comment"] = f"{name} would run {before['release']}, installed from {lock_file}"
        return ret
    try:
        after = __salt__["litellm_venv.install"](
            name,
            lock_file,
            python=python,
            index_url=index_url,
            extra_index_urls=extra_index_urls,
            ca_bundle=ca_bundle,
            compile_list=compile_list,
        )
    except (OSError, RuntimeError) as exc:
        ret["result"] = False
        ret["comment"] = f"Installing {lock_file} for {name} failed ({name} still runs {before['active']}): {exc}"
        return ret
    ret["changes"] = {
        "lock": {"old": before["current"], "new": after["current"]},
        "release": {"old": after["previous"], "new": after["active"]},
    }
    ret["result"] = after["installed"]
    how = "built from" if after["built"] else "already on disk, installed from"
    ret["comment"] = f"{name} now runs {after['active']} ({how} {lock_file}); the previous release is kept"
    if after.get("uv_from"):
        ret["comment"] += f"; uv from {after['uv_from']}"
    if after.get("seconds"):
        ret["comment"] += "; " + ", ".join(f"{step} {value} s" for step, value in after["seconds"].items())
    return ret

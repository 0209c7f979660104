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


def installed(name, lock_file, python="/usr/bin/python3", index_url="", extra_index_urls=None, ca_bundle=""):
    """
    Install the packages of ``lock_file`` into the venv ``name`` unless the
    venv already records that lock's digest (then nothing is done, offline).

    .. code-block:: yaml

        litellm-package-install-venv-installed:
          litellm_venv.installed:
            - name: /opt/litellm/venv
            - lock_file: /opt/litellm/venv/requirements.lock
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    before = __salt__["litellm_venv.status"](name, lock_file)
    if before["installed"]:
        ret["comment"] = f"{name} already matches {lock_file}"
        return ret
    change = {"old": before["current"], "new": before["wanted"] or f"the digest of {lock_file}"}
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = {"lock": change}
        ret["comment"] = f"{name} would be installed from {lock_file}"
        return ret
    try:
        after = __salt__["litellm_venv.install"](
            name,
            lock_file,
            python=python,
            index_url=index_url,
            extra_index_urls=extra_index_urls,
            ca_bundle=ca_bundle,
        )
    except (OSError, RuntimeError) as exc:
        ret["result"] = False
        ret["comment"] = f"Installing {name} from {lock_file} failed: {exc}"
        return ret
    ret["changes"] = {"lock": {"old": before["current"], "new": after["current"]}}
    ret["result"] = after["installed"]
    ret["comment"] = f"{name} installed from {lock_file}"
    return ret

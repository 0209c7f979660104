"""
salt-ssh wrapper: ``salt-ssh <target> litellm_config.validate`` and
``litellm_config.render`` run on the controller, where the state tree and the
target's pillar are (a raw salt-ssh module call on the target has neither).

The settings are merged by the formula's own ``salt://litellm/map.jinja``
(``parameters/defaults.yaml``, per-OS values, pillar) with the target's
grains, through salt-ssh's file server; the logic is the formula's
``_utils`` (``litellm_steps``), the same code ``salt-call`` runs on a host.
Nothing is sent to the target, so the master key stays on the controller.
Loaded through ``wrapper_dirs`` (``etc/salt/master`` sets it, and again in
``ssh_minion_opts``: salt-ssh 3008 reloads the wrappers with the target's
options). Every other ``litellm_config`` function runs on the target.
"""

import logging
import os

import salt.loader
from salt.loader.context import NamedLoaderContext

log = logging.getLogger(__name__)

__virtualname__ = "litellm_config"

UTILS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "_utils")


def __virtual__():
    if not os.path.isfile(os.path.join(UTILS_DIR, "litellm_steps.py")):
        return (False, f"the litellm_config wrapper needs the formula's _utils beside it ({UTILS_DIR})")
    return __virtualname__


def _loaded(dunder):
    """The object behind a loader dunder: Salt's proxies resolve only in this module's own context."""
    return dunder.value() if isinstance(dunder, NamedLoaderContext) else dunder


def _utils():
    if "litellm_steps.utils" not in __context__:
        opts = dict(__opts__)
        opts["utils_dirs"] = [UTILS_DIR]
        __context__["litellm_steps.utils"] = salt.loader.utils(opts)
    return __context__["litellm_steps.utils"]


def _settings(utils, saltenv):
    """(settings, None), or (None, the answer saying why there are none)."""
    problems = utils["litellm_steps.pillar_errors"](_loaded(__pillar__))
    if problems:
        return None, {"valid": False, "errors": problems}
    try:
        return utils["litellm_settings.merged"](_loaded(__salt__), saltenv), None
    except Exception as exc:  # pylint: disable=broad-except
        log.debug("litellm/map.jinja did not render", exc_info=True)
        detail = " ".join(str(exc).split())[:500]
        return None, utils["litellm_steps.cannot"](
            "salt://litellm/map.jinja did not render", f"{detail}; check file_roots in the master config"
        )


def _template(settings, saltenv):
    funcs = _loaded(__salt__)  # called from the utils' loader context, where the proxy would not resolve

    def render(name):
        return funcs["slsutil.renderer"](
            path=f"salt://litellm/files/{name}", default_renderer="jinja", saltenv=saltenv, litellm=settings
        )

    return render


def validate(settings=None, saltenv="base"):
    """
    Validate the target's merged settings (map.jinja: defaults, per-OS values,
    pillar) on the controller. Returns ``{"valid": bool, "errors": [...]}``,
    each error naming the pillar key; secrets are never echoed.

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_config.validate
    """
    utils = _utils()
    if settings is None:
        settings, answer = _settings(utils, saltenv)
        if answer:
            return answer
    return utils["litellm_steps.validation"](utils, settings)


def render(settings=None, saltenv="base"):
    """
    Render on the controller, touching nothing, the files the formula would
    write on the target: ``config``, ``env`` (secrets redacted), ``keys``
    (hashes only) and ``unit``, plus the validation ``errors``.

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_config.render --out=yaml
    """
    utils = _utils()
    if settings is None:
        settings, answer = _settings(utils, saltenv)
        if answer:
            return answer
    return utils["litellm_steps.rendered"](utils, settings, _template(settings, saltenv))

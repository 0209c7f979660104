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
options). ``litellm_config.edge``, which the SLS call while they render,
is pure and computed here too: on the target each such call was one more
ssh round trip and salt-call (issue 17). Every other ``litellm_config``
function runs on the target.
"""

import logging
import os
import sys

log = logging.getLogger(__name__)

__virtualname__ = "litellm_config"

_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:0] = [] if _HERE in sys.path else [_HERE]  # the wrappers' shared file is beside them
import litellm_wrapper_common as _common  # noqa: E402


def __virtual__():
    return _common.virtual(__virtualname__)


def _settings(utils, saltenv):
    """(settings, None), or (None, the answer saying why there are none)."""
    problems = utils["litellm_steps.pillar_errors"](_common.loaded(__pillar__))
    if problems:
        return None, {"valid": False, "errors": problems}
    try:
        return utils["litellm_settings.merged"](_common.loaded(__salt__), saltenv), None
    except Exception as exc:  # pylint: disable=broad-except
        log.debug("litellm/map.jinja did not render", exc_info=True)
        detail = " ".join(str(exc).split())[:500]
        return None, utils["litellm_steps.cannot"](
            "salt://litellm/map.jinja did not render", f"{detail}; check file_roots in the master config"
        )


def _template(settings, saltenv):
    funcs = _common.loaded(__salt__)  # called from the utils' loader context, where the proxy would not resolve

    def render(name):
        # The unit templates ask litellm_service on a target; here the same pure values come in the context.
        utils = _common.utils(__opts__, __context__)
        plan = utils["litellm_capacity.plan"](settings)
        unit = utils["litellm_unit.template_values"](settings, plan, utils["litellm_capacity.unit_lines"](plan))
        context = settings
        if name == "litellm.env.jinja":  # as config/file.sls gives it: with the metrics environment
            context = dict(settings, metrics_env=utils["litellm_edge.metrics_env"](settings))
        return funcs["slsutil.renderer"](
            path=f"salt://litellm/files/{name}", default_renderer="jinja", saltenv=saltenv, litellm=context, unit=unit
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
    utils = _common.utils(__opts__, __context__)
    if settings is None:
        settings, answer = _settings(utils, saltenv)
        if answer:
            return answer
    return utils["litellm_steps.validation"](utils, settings)


def render(settings=None, saltenv="base"):
    """
    Render on the controller, touching nothing, the files the formula would
    write on the target: ``config``, ``env`` (secrets redacted), ``keys``
    (hashes only), ``unit`` and ``socket``, plus the validation ``errors``.

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_config.render --out=yaml
    """
    utils = _common.utils(__opts__, __context__)
    if settings is None:
        settings, answer = _settings(utils, saltenv)
        if answer:
            return answer
    return utils["litellm_steps.rendered"](utils, settings, _template(settings, saltenv))


def edge(settings):
    """
    The gateway's edge for the merged settings, as the target's
    ``litellm_config.edge`` computes it (pure, no secret), computed on the
    controller: config/file.sls and smoke.sls call it while they render.

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_config.edge '{...merged settings...}'
    """
    utils = _common.utils(__opts__, __context__)
    return utils["litellm_edge.edge"](utils, settings)

"""
Validate and render the LiteLLM proxy configuration from the formula's settings.

This module is the face: the pure logic lives in ``_utils/``, one concern a
file, reached through ``__utils__``: ``litellm_validate`` (the primitives and
``check_settings``, which runs every section's checks), ``_sections``,
``_secrets`` and ``_preflight`` (the sections), ``litellm_keys`` (client
keys and their table), ``litellm_layout`` (what the formula creates, and
where it may) and ``litellm_build`` (the config LiteLLM reads). The public
functions here read pillar and the formula's templates. Nothing here touches
the host: ``render`` is the dry run of the original deployment's
template-validation step.
"""

import os

from salt.loader.context import NamedLoaderContext

__virtualname__ = "litellm_config"

KEY_TABLE_NAME = "client-keys.json"
AUTH_HOOK_MODULE = "litellm_client_keys"  # salt://litellm/files/litellm_client_keys.py, named in the config


def __virtual__():
    if "litellm_validate.check_settings" not in __utils__:
        return (False, "litellm_config needs the formula's _utils (saltutil.sync_utils, or utils_dirs)")
    return __virtualname__


def _loaded(dunder):
    """The object behind a loader dunder: Salt's proxies resolve only in this module's own context."""
    return dunder.value() if isinstance(dunder, NamedLoaderContext) else dunder


# --- pure: delegates to the utils ----------------------------------------------


def check_settings(settings):
    """
    Every problem of the merged settings, as messages naming the pillar key.
    Pure function: an empty list means the settings are valid.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.check_settings '{...merged settings...}'
    """
    return __utils__["litellm_validate.check_settings"](_loaded(__utils__), settings)


def dedicated_dir_problem(path):
    """
    Why ``path`` (absolute) cannot be a directory of the formula's own, or
    None: a system directory, anything below /boot, /dev, /proc, /run, /sys,
    /home, /root or /tmp, or a path inside a system directory that is not one
    that holds a directory per program (/etc/litellm and /opt/litellm are
    fine, /etc/ssh and /usr/lib/litellm are not).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.dedicated_dir_problem /opt/litellm/venv
    """
    return __utils__["litellm_layout.dedicated_dir_problem"](path)


def plan_layout(settings):
    """
    What the formula creates on a host for ``settings`` (the merged map):
    one entry per path, unit, user and group, each with the pillar key that
    names it (None for the formula's fixed directories) and the job (SLS)
    that removes it. Pure; tolerates bad values (validation reports them).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.plan_layout '{...merged settings...}'
    """
    return __utils__["litellm_layout.plan_layout"](settings)


def local_url(bind_host, bind_port):
    """
    The URL at which the gateway answers on the host itself.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.local_url 0.0.0.0 4000
    """
    return __utils__["litellm_settings.local_url"](bind_host, bind_port)


def capacity(settings):
    """
    The capacity plan of the merged settings: every ``auto`` of
    ``litellm:capacity`` resolved from the workers and memory (admission per
    worker, uvicorn's connection limit and backlog, LimitNOFILE, TasksMax,
    MemoryHigh/MemoryMax), with the totals ``admitted`` and ``queued``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.capacity '{...merged settings...}'
    """
    return __utils__["litellm_capacity.plan"](settings)


def capacity_unit_lines(plan):
    """
    The resource-limit lines of the unit for a capacity plan (``capacity``).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.capacity_unit_lines '{...capacity plan...}'
    """
    return __utils__["litellm_capacity.unit_lines"](plan)


def _admission(settings):
    return __utils__["litellm_capacity.general_settings"](capacity(settings))


def edge(settings):
    """
    The gateway's edge for the merged settings (no secret in it): uvicorn's
    TLS arguments (``tls_args``, [] without TLS), the TLS file paths, the
    metrics environment of the service, the scrape endpoint's argv, the
    script that writes its info metric, the workers' metrics directory and
    the scrape URL on the host itself.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.edge '{...merged settings...}'
    """
    edge_utils = _loaded(__utils__)
    return edge_utils["litellm_edge.edge"](edge_utils, settings)


def build_config(settings):
    """
    The LiteLLM config as a dict: one model_list entry per model x backend.

    Every alias exists on every backend, so the router balances between them
    and fails over when one is down. The master key is only referenced.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.build_config '{...merged settings...}'
    """
    return __utils__["litellm_build.build_config"](settings, _admission(settings))


def config_text(settings):
    """
    The config.yaml text for the merged settings (used by the config template).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.config_text '{...merged settings...}'
    """
    return __utils__["litellm_build.config_text"](settings, _admission(settings))


def key_table(settings):
    """
    The client key table (client-keys.json) as a dict: per client its key's
    SHA-256 (never the key), models (``[]``, every alias, by default), limits, expiry
    (aware ISO date-time) and disabled flag. Read by the formula's hook, which
    re-reads it when it changes: no restart.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.key_table '{...merged settings...}'
    """
    return __utils__["litellm_keys.key_table"](settings)


def key_table_text(settings):
    """
    The client-keys.json text for the merged settings (used by its template).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.key_table_text '{...merged settings...}'
    """
    return __utils__["litellm_keys.key_table_text"](settings)


def redact_env(text):
    """
    The env file text with the secrets' values (master key, Redis password) replaced.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.redact_env "$(cat /etc/litellm/litellm.env)"
    """
    return __utils__["litellm_build.redact_env"](_loaded(__utils__), text)


# --- thin wrappers (pillar, file server) ---------------------------------------


_NO_MAP = object()


def _merged_settings(saltenv):
    """The formula's merged settings, through map.jinja itself; _NO_MAP without the state tree here."""
    return __utils__["litellm_settings.merged"](_loaded(__salt__), saltenv, without_map=_NO_MAP)


def validate(settings=None, saltenv="base"):
    """
    Validate the formula's settings: the merged map of defaults and pillar, or
    the given ``settings``. Returns ``{"valid": bool, "errors": [...]}``; each
    error names the pillar key and the problem. Secrets are never echoed.
    Through salt-ssh the controller runs it (``_wrapper/litellm_config.py``);
    where neither pillar nor the state tree is, the one error says what to run.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.validate
        salt-ssh gateway litellm_config.validate
    """
    if settings is None:
        settings = _merged_settings(saltenv)
        if settings is _NO_MAP:
            return __utils__["litellm_steps.no_map"]()
    return __utils__["litellm_steps.validation"](_loaded(__utils__), settings)


def layout(settings=None, saltenv="base"):
    """
    What the formula would create on this host for the merged settings
    (default: defaults + pillar): each path, unit, user and group, with the
    pillar key that names it. Changes nothing; ``litellm_owner.show`` lists
    what it did create.

    CLI Example:

    .. code-block:: bash

        salt-call --local litellm_config.layout
    """
    if settings is None:
        settings = _merged_settings(saltenv)
    return plan_layout(settings)


def _render_template(salt, name, settings, saltenv):
    contents = salt["cp.get_file_str"](f"salt://litellm/files/{name}", saltenv=saltenv)
    if contents is False or contents is None:
        raise FileNotFoundError(f"salt://litellm/files/{name} not found in saltenv {saltenv!r}")
    result = salt["file.apply_template_on_contents"](
        contents, template="jinja", context={"litellm": settings}, defaults={}, saltenv=saltenv
    )
    return result


def render(settings=None, saltenv="base"):
    """
    Render, without touching the host, the files the formula would write for
    the current pillar (or the given ``settings``): ``config`` (config.yaml),
    ``env`` (litellm.env, master key redacted), ``keys`` (client-keys.json:
    hashes, never keys), ``unit`` and ``socket`` (the systemd units), plus the validation
    ``errors``. Nothing is rendered when the settings are invalid. Through
    salt-ssh the controller renders (``_wrapper/litellm_config.py``).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.render
        salt-ssh gateway litellm_config.render --out=yaml
    """
    if settings is None:
        settings = _merged_settings(saltenv)
        if settings is _NO_MAP:
            return __utils__["litellm_steps.no_map"]()
    # the templates are rendered from the utils' loader context, where these proxies would not resolve
    salt, utils = _loaded(__salt__), _loaded(__utils__)

    def template(name):
        context = settings
        if name == "litellm.env.jinja":  # as config/file.sls gives it: with the metrics environment
            context = dict(settings, metrics_env=utils["litellm_edge.metrics_env"](settings))
        return _render_template(salt, name, context, saltenv)

    return utils["litellm_steps.rendered"](utils, settings, template)


def rollback(steps=1, service="litellm", ready_timeout=180):
    """
    Roll the gateway back to a known-good release (config.yaml, litellm.env
    and venv, kept after each passing smoke test): ``steps`` releases older
    than the live one, or the newest one when the live state never passed.
    Restarts the service, waits until it is ready and runs the smoke test.
    What to roll back is read from the deployed unit of ``service``, so it
    also works through salt-ssh, which gives custom modules no pillar. The
    next ``state.apply`` deploys what pillar says again: revert pillar too to
    stay rolled back.

    Returns the rollback (``action``, ``release``, ``restored``, ``ready``)
    and the ``smoke`` summary; never file contents.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_config.rollback
        salt-ssh gateway litellm_config.rollback steps=2
    """
    unit_path = f"/etc/systemd/system/{service}.service"
    try:
        with open(unit_path, encoding="utf-8") as handle:
            unit = __salt__["litellm_smoke.unit_settings"](handle.read())
    except OSError as exc:
        return {"action": "none", "reason": f"{unit_path}: {exc.strerror}: is the gateway deployed here?"}
    config_dir = os.path.dirname(unit.get("config", "/etc/litellm/config.yaml"))
    # with litellm:tls the unit names its https URL (the certificate is verified for its host)
    url = unit.get("url") or local_url(unit.get("bind_host", "0.0.0.0"), unit.get("bind_port", 4000))
    result = __salt__["litellm_release.recover"](
        config_dir=config_dir,
        venv=unit.get("venv", "/opt/litellm/venv"),
        service=service,
        group=unit.get("group", "litellm"),
        url=url,
        ready_timeout=int(ready_timeout),
        steps=int(steps),
        force_restart=True,
    )
    if result["action"] == "rolled_back":
        report = __salt__["litellm_smoke.run_as_deployed"](
            url=url, config_dir=config_dir, env_file=unit.get("env_file")
        )
        result["smoke"] = report["summary"]
        result["smoke_result"] = report["result"]
    return result

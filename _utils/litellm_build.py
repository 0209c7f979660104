"""
The LiteLLM config the formula renders (``build_config``, ``config_text``)
from validated settings: one ``model_list`` entry per model x backend, the
router, LiteLLM and general settings, and the client-key hook when there are
client keys. Secrets are only referenced (``os.environ/...``): their values
are in the env file, which ``redact_env`` shows without them.
"""

import urllib.parse

import salt.utils.yaml

MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
REDIS_PASSWORD_ENV = "REDIS_PASSWORD"
PROVIDERS = {"ollama": "ollama_chat"}
MODEL_LIMIT_KEYS = ("rpm", "tpm")
AUTH_HOOK_MODULE = "litellm_client_keys"
CONFIG_HEADER = "# Managed by Salt (litellm formula). Local edits are overwritten.\n"


def provider_prefixes():
    """provider of litellm:models -> LiteLLM's model prefix."""
    return dict(PROVIDERS)


def model_limit_keys():
    """The per-deployment limits a model of litellm:models may set."""
    return MODEL_LIMIT_KEYS


def deployment_id(alias, backend):
    # No ':' in it: LiteLLM's usage-based-routing-v2 splits its usage keys on
    # ':' and finds no deployment at all for an id that has one (every request
    # 429 "No deployments available", measured on 1.108.7).
    netloc = urllib.parse.urlsplit(backend).netloc
    return f"{alias}@{netloc}".replace(":", "_")


def _model_list(settings):
    """Every alias on every backend, so the router balances between them and fails over when one is down."""
    model_list = []
    for model in settings["models"]:
        prefix = PROVIDERS[model.get("provider", "ollama")]
        # Per-deployment limits: enforced by usage-based-routing-v2 (weights otherwise).
        limits = {limit: model[limit] for limit in MODEL_LIMIT_KEYS if model.get(limit) is not None}
        for backend in settings["backends"]:
            model_list.append(
                {
                    "model_name": model["name"],
                    "litellm_params": {
                        "model": f"{prefix}/{model['model']}",
                        "api_base": backend.rstrip("/"),
                        "timeout": settings["request_timeout"],
                        **limits,
                    },
                    "model_info": {"id": deployment_id(model["name"], backend)},
                }
            )
    return model_list


def _router_settings(settings):
    router_settings = {
        "routing_strategy": settings["routing_strategy"],
        "num_retries": settings["max_retries"],
        "timeout": settings["request_timeout"],
        "allowed_fails": settings["allowed_fails"],
        "cooldown_time": settings["cooldown_time"],
        # A refused connection never cools a deployment down in LiteLLM 1.108;
        # this retries on the other backends of the alias instead (measured:
        # 100/100 with one of two backends dead, 86/100 without).
        "enable_weighted_failover": True,
    }
    redis = settings.get("redis") or {}
    if redis.get("host"):
        # Shared router state (usage, cooldowns) between gateways: host, port
        # and password (LiteLLM documents redis_url as slower); the password
        # only by reference, its value is in the env file.
        router_settings.update(
            {
                "redis_host": redis["host"],
                "redis_port": redis.get("port", 6379),
                "redis_password": f"os.environ/{REDIS_PASSWORD_ENV}",
            }
        )
    router_settings.update(settings.get("router_settings") or {})
    return router_settings


def _litellm_settings(settings):
    litellm_settings = {
        "request_timeout": settings["request_timeout"],
        "drop_params": True,
    }
    if settings["service"].get("log_format") == "json":
        # uvicorn's own access and error lines as JSON too (JSON_LOGS in the env covers LiteLLM's)
        litellm_settings["json_logs"] = True
    litellm_settings.update(settings.get("litellm_settings") or {})
    if isinstance(settings.get("metrics"), dict) and settings["metrics"].get("enabled") is True:
        # litellm:metrics: the prometheus callback, beside pillar's own callbacks
        callbacks = litellm_settings.get("callbacks") or []
        callbacks = [callbacks] if isinstance(callbacks, str) else list(callbacks)
        litellm_settings["callbacks"] = callbacks + ([] if "prometheus" in callbacks else ["prometheus"])
    return litellm_settings


def _general_settings(settings, admission):
    general_settings = {"master_key": f"os.environ/{MASTER_KEY_ENV}"}
    # LiteLLM's per-worker admission control (litellm_capacity): 503 with Retry-After beyond it
    general_settings.update(admission or {})
    if settings["health_check_interval"]:
        # Background checks (general_settings, not router_settings: there they
        # stop LiteLLM from starting) and routing that skips unhealthy backends.
        general_settings.update(
            {
                "background_health_checks": True,
                "health_check_interval": settings["health_check_interval"],
                "enable_health_check_routing": True,
            }
        )
    redis = settings.get("redis") or {}
    if redis.get("host"):
        # The proxy-level Redis: key rpm/tpm/max_parallel limits (the client
        # keys') count there, across gateways; router_settings.redis_* is only
        # the router's. The password by reference, like the router's.
        general_settings["coordination_redis"] = {
            "host": redis["host"],
            "port": redis.get("port", 6379),
            "password": f"os.environ/{REDIS_PASSWORD_ENV}",
        }
    general_settings.update(settings.get("general_settings") or {})
    return general_settings


def build_config(settings, admission=None):
    """
    The LiteLLM config as a dict: one model_list entry per model x backend.

    Every alias exists on every backend, so the router balances between them
    and fails over when one is down. The master key is only referenced.
    ``admission``: the general_settings of LiteLLM's admission control
    (``litellm_capacity.general_settings``); pillar's general_settings win.
    """
    litellm_settings = _litellm_settings(settings)
    general_settings = _general_settings(settings, admission)
    if settings.get("keys"):
        # Client keys without a database: the formula's hook checks every key
        # against the key table first; auto mode hands the master key (and no
        # key) on to LiteLLM's own auth. The common checks keep client keys off
        # admin routes; the post-custom-auth checks enforce models and expiry.
        general_settings.update(
            {
                "custom_auth": f"{AUTH_HOOK_MODULE}.authenticate",
                "custom_auth_settings": {"mode": "auto"},
                "custom_auth_run_common_checks": True,
            }
        )
        litellm_settings["enable_post_custom_auth_checks"] = True
    return {
        "model_list": _model_list(settings),
        "router_settings": _router_settings(settings),
        "litellm_settings": litellm_settings,
        "general_settings": general_settings,
    }


def config_text(settings, admission=None):
    """The config.yaml text for the merged settings (used by the config template)."""
    return CONFIG_HEADER + salt.utils.yaml.safe_dump(
        build_config(settings, admission), default_flow_style=False, sort_keys=False
    )


def redact_env(utils, text):
    """The env file text with the secrets' values (master key, Redis password) replaced."""
    return utils.litellm_redact.redact_env(text, (MASTER_KEY_ENV, REDIS_PASSWORD_ENV))

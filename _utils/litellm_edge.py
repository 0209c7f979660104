"""
The gateway's edge, as pure functions of the merged settings (the
listener's TLS arguments and files are ``litellm_unit.tls_args`` and
``tls_files``, beside the rest of the service's command line): the
environment and unit of the Prometheus scrape endpoint (``litellm:metrics``: LiteLLM's own
``prometheus_metrics_server`` over ``PROMETHEUS_MULTIPROC_DIR``, which
merges every worker; ``litellm_build`` adds the ``prometheus`` callback),
its info metric, and the URL the host itself reaches the gateway at.

No function reads a secret: the key is a path here, never its content.
"""

import os

FORMULA_RELEASE = "0.1.0"  # pyproject.toml's version (tests/unit/test_litellm_edge.py keeps them equal)
METRICS_MODULE = "litellm.proxy.prometheus_metrics_server"
INFO_METRIC = "litellm_salt_build_info"


def _section(settings, name):
    value = settings.get(name) if isinstance(settings, dict) else None
    return value if isinstance(value, dict) else {}


def tls_on(settings):
    return _section(settings, "tls").get("enabled") is True


def metrics_on(settings):
    return _section(settings, "metrics").get("enabled") is True


def service_name(settings):
    name = _section(settings, "service").get("name")
    return name if isinstance(name, str) and name else "litellm"


def multiproc_dir(settings):
    """Where every worker writes its samples: a RuntimeDirectory of the service (emptied at each restart)."""
    return f"/run/{service_name(settings)}/prometheus"


def metrics_env(settings):
    """The service's environment for metrics ({} when off): several workers' samples in one directory."""
    return {"PROMETHEUS_MULTIPROC_DIR": multiproc_dir(settings)} if metrics_on(settings) else {}


def metrics_argv(settings):
    """The scrape endpoint's command line: LiteLLM's metrics server over the workers' directory."""
    metrics = _section(settings, "metrics")
    return [
        os.path.join(settings.get("venv") or "/opt/litellm/venv", "bin", "python"), "-m", METRICS_MODULE,
        "--host", str(metrics.get("bind_host")), "--port", str(metrics.get("port")),
        "--multiproc_dir", multiproc_dir(settings),
    ]


def info_labels(settings):
    return {"formula_release": FORMULA_RELEASE, "litellm_version": str(settings.get("version"))}


def info_script(settings):
    """
    Python (run with the venv's interpreter before the metrics server) that
    writes the info metric into the workers' directory: a gauge of 1 with
    the formula release and the LiteLLM version as labels, kept after it
    exits (multiprocess mode ``max``), merged like the workers' samples.
    """
    labels = info_labels(settings)
    return (
        "import prometheus_client as p;"
        f"g=p.Gauge({INFO_METRIC!r},'The litellm formula release and LiteLLM version deployed',"
        f"{sorted(labels)!r},multiprocess_mode='max');"
        f"g.labels(**{labels!r}).set(1)"
    )


def metrics_url(settings):
    """The scrape URL as the host itself reaches it."""
    metrics = _section(settings, "metrics")
    host = str(metrics.get("bind_host"))
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{metrics.get('port')}/metrics"


def local_scheme(settings):
    return "https" if tls_on(settings) else "http"


def default_base_url(settings, minion_id):
    """``base_url`` when pillar leaves it '': <scheme>://<minion id>:<bind_port>."""
    return f"{local_scheme(settings)}://{minion_id}:{settings.get('bind_port')}"


#: the gateway's edge (``litellm_config.edge``): each value and the util that computes it from the settings
EDGE_VALUES = (
    ("tls_args", "litellm_unit.tls_args"),
    ("tls_files", "litellm_unit.tls_files"),
    ("metrics_env", "litellm_edge.metrics_env"),
    ("metrics_argv", "litellm_edge.metrics_argv"),
    ("info_script", "litellm_edge.info_script"),
    ("multiproc_dir", "litellm_edge.multiproc_dir"),
    ("metrics_url", "litellm_edge.metrics_url"),
)


def edge(utils, settings):
    """The edge for the merged settings, by the formula's utils (``utils``: a loader of them, or a dict)."""
    return {key: utils[name](settings) for key, name in EDGE_VALUES}

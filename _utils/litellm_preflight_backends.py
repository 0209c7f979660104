"""
Preflight check ``backends``: every Ollama backend answers (TCP connect,
``GET /api/version``) and ``GET /api/tags`` lists every configured model, as
Ollama names them (``:latest`` when untagged). All probes together are
bounded (``PROBE_DEADLINE``).
"""

import json
import ssl

PROBE_DEADLINE = 15.0  # seconds, all probes of one network check together


def normalize_model(name):
    """
    An Ollama model name as Ollama resolves it: case-insensitive, the default
    ``registry.ollama.ai/library/`` namespace dropped, ``:latest`` when no tag.

    ``llama3`` -> ``llama3:latest``; ``Library/Qwen2.5:7B`` -> ``qwen2.5:7b``;
    ``hf.co/org/repo`` -> ``hf.co/org/repo:latest``.
    """
    name = str(name or "").strip().lower()
    for prefix in ("registry.ollama.ai/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if not name:
        return ""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


def missing_models(wanted, available):
    """The models of ``wanted`` (as configured) not among ``available`` (as listed)."""
    have = {normalize_model(name) for name in available}
    return [name for name in wanted if normalize_model(name) not in have]


def tags_model_names(payload):
    """Model names from an ``/api/tags`` answer (``name`` and ``model`` keys)."""
    names = []
    for entry in (payload or {}).get("models") or []:
        if isinstance(entry, dict):
            for key in ("name", "model"):
                if isinstance(entry.get(key), str):
                    names.append(entry[key])
    return names


def _ask(http, url, context):
    """(ollama version, model names) of one backend; raises, or returns a fail detail."""
    status, body = http.get(url + "/api/version", context=context)
    if status != 200:
        return None, f"{url}: GET /api/version answered HTTP {status}"
    version = json.loads(body or b"{}").get("version", "?")
    status, body = http.get(url + "/api/tags", context=context, limit=16 << 20)
    if status != 200:
        return None, f"{url}: GET /api/tags answered HTTP {status}"
    return (version, tags_model_names(json.loads(body or b"{}"))), None


def probe_backend(utils, url, models, context):
    """(status, detail) of one backend."""
    http = utils.litellm_http
    try:
        utils.litellm_net.tcp_connect(*http.host_port(url))
    except OSError as exc:
        return "fail", f"{url}: TCP connect failed ({exc.strerror or exc})"
    try:
        answer, problem = _ask(http, url, context)
    except ssl.SSLCertVerificationError as exc:
        return "fail", f"{url}: TLS verification failed ({exc.verify_message})"
    except (OSError, ValueError, AttributeError) as exc:
        return "fail", f"{url}: {type(exc).__name__}: {exc}"
    if problem:
        return "fail", problem
    version, available = answer
    missing = missing_models(models, available)
    if missing:
        return "fail", "; ".join(f"model {m!r} missing on {url}" for m in missing)
    return "pass", f"{url}: ollama {version}, {len(models)}/{len(models)} model(s)"


def check_backends(ctx, settings):
    utils = ctx.utils
    urls = utils.litellm_settings.backend_urls(settings)
    if not urls:
        return "skip", "no valid backend URL (see the pillar check)"
    models = utils.litellm_settings.configured_models(settings)
    context = None
    if any(url.startswith("https://") for url in urls):
        try:
            context, _ = utils.litellm_http.site_tls(settings)
        except (OSError, ssl.SSLError) as exc:
            return "fail", f"{utils.litellm_http.site_store(settings)} cannot be loaded: {exc}"
    answers = utils.litellm_net.parallel(lambda u: probe_backend(utils, u, models, context), urls, PROBE_DEADLINE)
    statuses, parts = [], []
    for url, (kind, value) in zip(urls, answers):
        if kind == "ok":
            statuses.append(value[0])
            parts.append(value[1])
        else:
            statuses.append("fail")
            parts.append(f"{url}: no answer within {PROBE_DEADLINE:.0f} s" if kind == "timeout" else f"{url}: {value}")
    return utils.litellm_preflight_report.worst(statuses), "; ".join(parts)

"""
The formula's settings: loaded through ``salt://litellm/map.jinja`` (which
merges ``parameters/defaults.yaml``, the per-OS values and pillar; the one
place the defaults live), and read with accessors that tolerate bad pillar
(the pillar check reports it).
"""

import logging
import urllib.parse

log = logging.getLogger(__name__)

MAP_SOURCE = (
    "{%- from 'litellm/map.jinja' import litellm, pillar_is_mapping with context %}"
    "{{ {'settings': litellm, 'pillar_is_mapping': pillar_is_mapping} | json }}"
)
NO_MAP = "TemplateNotFound: litellm/map.jinja"
DEFAULT_INDEX_URL = "https://pypi.org/simple/"  # what pip and uv use when package_index:url is ''


def pillar(salt):
    """Pillar ``litellm`` unmasked (Salt 3008 masks pillar values outside templates); {} without pillar.get."""
    if "pillar.get" not in salt:
        return {}
    try:
        return salt["pillar.get"]("litellm", {}, unmask=True)
    except TypeError:  # a Salt without unmask
        return salt["pillar.get"]("litellm", {})


def merged(salt, saltenv="base", without_map=None):
    """
    The formula's merged settings, through map.jinja itself (pillar alone when
    it is not a mapping: validation names the problem). Without the state tree
    on the target (``salt-ssh <target> <module>.<function>`` ships the modules,
    not ``salt://litellm/``) ``without_map`` is returned when given, else the
    error is raised; a real error of map.jinja is never hidden.
    """
    if "slsutil.renderer" not in salt and without_map is not None:
        return without_map  # a module imported outside Salt's loader
    try:
        rendered = salt["slsutil.renderer"](string=MAP_SOURCE, default_renderer="jinja|json", saltenv=saltenv)
    except Exception as exc:  # pylint: disable=broad-except
        # SaltRenderError (TemplateNotFound) when the state tree is not on the target.
        if without_map is None or NO_MAP not in str(exc):
            raise
        log.info("litellm/map.jinja is not available here: the formula's defaults are unknown")
        return without_map
    if not rendered["pillar_is_mapping"]:
        return pillar(salt)
    return rendered["settings"]


# --- accessors (pure) -----------------------------------------------------------------


def local_url(bind_host, bind_port):
    """The URL at which the gateway answers on the host itself (a wildcard bind address on loopback)."""
    host = bind_host
    if bind_host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif bind_host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{bind_port}"


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def section(settings, name):
    """``settings[name]`` when it is a mapping, else {}."""
    value = settings.get(name) if isinstance(settings, dict) else None
    return value if isinstance(value, dict) else {}


def pf_get(settings, *path, default=None):
    """``litellm:preflight:<path>``, ``default`` when missing or empty."""
    node = section(settings, "preflight")
    for part in path:
        if not isinstance(node, dict):
            return default
        node = node.get(part)
    return default if node in (None, "") else node


def valid_url(value):
    if not isinstance(value, str):
        return False
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def backend_urls(settings):
    """The valid backend URLs (the pillar check reports the others)."""
    backends = settings.get("backends")
    return [url.rstrip("/") for url in backends if valid_url(url)] if isinstance(backends, list) else []


def configured_models(settings):
    """The Ollama model names of ``litellm:models``, unique, in order."""
    models = settings.get("models")
    if not isinstance(models, list):
        return []
    names = []
    for entry in models:
        model = entry.get("model") if isinstance(entry, dict) else None
        if isinstance(model, str) and model.strip() and model not in names:
            names.append(model.strip())
    return names


def index_urls(settings):
    """(main index URL, extra index URLs), the main one defaulting to PyPI."""
    index = section(settings, "package_index")
    url = index.get("url") or DEFAULT_INDEX_URL
    extra = index.get("extra_urls") if isinstance(index.get("extra_urls"), list) else []
    return url, [u for u in extra if valid_url(u)]


def service_name(settings):
    name = section(settings, "service").get("name")
    return name if isinstance(name, str) and name else None

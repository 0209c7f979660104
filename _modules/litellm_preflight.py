"""
Read-only go/no-go checks of a host before the litellm formula deploys to it.

Every check returns ``{"name", "status", "detail", "duration_ms"}`` with
``status`` one of ``pass``, ``fail``, ``warn`` or ``skip`` and a one-line
``detail``; ``run`` runs them all (or the named ones) and says ``GO`` or
``NO-GO`` (warnings never make NO-GO). Nothing here changes the host: sockets
are opened to probe and closed at once, files are only read, commands only
ask. The one exception is the evidence bundle that ``run`` writes when it is
asked to (``evidence_dir``). The master key never appears in any output.

Pure functions hold the logic (parsing, comparisons, the verdict, the report
and its redaction); thin wrappers do the I/O, each bounded in time.

Pillar (all optional), under ``litellm:preflight``:

.. code-block:: yaml

    litellm:
      preflight:
        min_disk_gib: 2              # free disk at the venv's nearest existing parent
        min_memory_mib: 1024         # MemAvailable; below it: warn
        evidence_dir: ''             # write preflight-<UTC>/report.json + summary.txt there
        keep_evidence: 20            # bundles kept in evidence_dir (the oldest are pruned)
        offline_wheelhouse: ''       # set: the package_index check is skipped
        dns:
          expected: {}               # host: [addresses] the host must resolve to
          ptr: false                 # reverse lookups must name the host
        site:                        # site checks, off by default
          realm: false               # joined to a realm / domain
          admin_sudo_group: ''       # a sudoers rule for this group
          netplan_single_file: false # exactly one /etc/netplan/*.yaml
          resolver: false            # /etc/resolv.conf has name servers
"""

import base64
import glob
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPConnection, HTTPSConnection

log = logging.getLogger(__name__)

__virtualname__ = "litellm_preflight"

REDACTED = "<redacted>"
DEFAULT_INDEX_URL = "https://pypi.org/simple/"
DEFAULT_PYTHON = "/usr/bin/python3"
DEFAULT_MIN_DISK_GIB = 2
DEFAULT_MIN_MEMORY_MIB = 1024
DEFAULT_KEEP_EVIDENCE = 20
BUNDLE_RE = re.compile(r"^preflight-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<number>\d+))?$")
CONNECT_TIMEOUT = 3.0  # seconds, every TCP connect
HTTP_TIMEOUT = 5.0  # seconds, every HTTP request (socket timeout)
DNS_TIMEOUT = 5.0  # seconds, all lookups of the dns check together
PROBE_DEADLINE = 15.0  # seconds, all probes of one network check together
COMMAND_TIMEOUT = 15  # seconds, every command run
PYTHON_MIN = (3, 9)
PYTHON_BELOW = (3, 14)
GLIBC_MIN = (2, 28)
MAX_INDEX_BYTES = 8 * 1024 * 1024
MAX_DETAIL = 1500

# Paths, module-level so that tests can point them elsewhere.
PROC = "/proc"
SUDOERS = "/etc/sudoers"
SUDOERS_D = "/etc/sudoers.d"
NETPLAN_DIR = "/etc/netplan"
RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
KRB5_CONF = "/etc/krb5.conf"
KRB5_KEYTAB = "/etc/krb5.keytab"
SSSD_CONF = "/etc/sssd/sssd.conf"

STATUSES = ("pass", "fail", "warn", "skip")
TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}
RESOLVED_STUBS = ("127.0.0.53", "127.0.0.54")
PREFLIGHT_KEYS = {
    "enabled",
    "min_disk_gib",
    "min_memory_mib",
    "evidence_dir",
    "keep_evidence",
    "offline_wheelhouse",
    "dns",
    "site",
}
SITE_KEYS = {"realm": bool, "admin_sudo_group": str, "netplan_single_file": bool, "resolver": bool}
SK_RE = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")
URL_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/@\s:]*):(?P<password>[^/@\s]*)@")

# salt/litellm/parameters/defaults.yaml and os_family/*.yaml, for targets that
# run the module without the state tree (salt-ssh); a unit test keeps them equal.
FORMULA_DEFAULTS = {
    "bind_host": "0.0.0.0",
    "bind_port": 4000,
    "base_url": "",
    "backends": [],
    "models": [],
    "request_timeout": 600,
    "max_retries": 2,
    "routing_strategy": "simple-shuffle",
    "allowed_fails": 1,
    "cooldown_time": 30,
    "health_check_interval": 300,
    "master_key": "",
    "version": "1.108.7",
    "venv": "/opt/litellm/venv",
    "package_index": {"url": "", "extra_urls": []},
    "ca_bundle": "",
    "ca_certificates": {},
    "config_dir": "/etc/litellm",
    "service": {
        "name": "litellm",
        "user": "litellm",
        "group": "litellm",
        "workers": "auto",
        "server": "uvicorn",
        "max_requests": 0,
        "log_level": "ERROR",
        "log_format": "text",
        "ready_timeout": 180,
    },
    "litellm_settings": {},
    "router_settings": {},
    "general_settings": {},
    "redis": {"host": "", "port": 6379, "password": "", "server": "", "bind": [], "maxmemory_mib": 256},
    "preflight": {
        "enabled": True,
        "evidence_dir": "/var/lib/litellm-salt/evidence",
        "keep_evidence": 20,
        "min_disk_gib": 2,
        "min_memory_mib": 1024,
        "offline_wheelhouse": "",
        "dns": {"expected": {}, "ptr": False},
        "site": {"realm": False, "admin_sudo_group": "", "netplan_single_file": False, "resolver": False},
    },
    "rollback": {"enabled": True, "keep": 5, "keep_venvs": 1},
    "smoke": {
        "enabled": True,
        "concurrency": 10,
        "latency_requests": 10,
        "chat_models": "first",
        "evidence_dir": "",
    },
    "lookup": {
        "pkgs": ["python3-venv"],
        "python": "/usr/bin/python3",
        "nologin_shell": "/usr/sbin/nologin",
        "systemd_unit_dir": "/etc/systemd/system",
        "ca_certificates_dir": "/usr/local/share/ca-certificates",
    },
}
OS_FAMILY_DEFAULTS = {"Debian": {"lookup": {"pkgs": ["python3-venv"]}}}
NO_PILLAR_NOTE = (
    "no litellm pillar and no salt://litellm/map.jinja here: salt-ssh runs a custom "
    "module without pillar or the state tree; run 'state.sls litellm.preflight' with salt-ssh, "
    "or salt-call on the host"
)
_SETTINGS_NOTE = None  # set by _settings() when the settings are defaults only

# Python the runtime check runs in the target interpreter: one JSON line.
RUNTIME_PROBE = (
    "import importlib, json, os, platform, sys\n"
    "mods = {}\n"
    "for name in ('venv', 'ensurepip'):\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "        mods[name] = ''\n"
    "    except Exception as exc:\n"
    "        mods[name] = type(exc).__name__ + ': ' + str(exc)\n"
    "try:\n"
    "    libc = os.confstr('CS_GNU_LIBC_VERSION') or ''\n"
    "except (AttributeError, ValueError, OSError):\n"
    "    libc = ''\n"
    "if not libc:\n"
    "    libc = ' '.join(platform.libc_ver())\n"
    "print(json.dumps({'version': list(sys.version_info[:3]), 'modules': mods, 'libc': libc.strip()}))\n"
)


def __virtual__():
    if not sys.platform.startswith("linux"):
        return (False, "litellm_preflight reads /proc and only runs on Linux")
    return __virtualname__


# --- pure helpers ----------------------------------------------------------------


def _result(name, status, detail, duration_ms=0.0):
    """One check's result; ``detail`` is flattened to one bounded line."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    text = " ".join(str(detail).split())
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 3] + "..."
    return {"name": name, "status": status, "detail": text, "duration_ms": round(float(duration_ms), 1)}


def _worst(statuses):
    """The status of a check made of parts: fail > warn > pass > skip."""
    statuses = list(statuses)
    for status in ("fail", "warn", "pass"):
        if status in statuses:
            return status
    return "skip"


def _normalize_model(name):
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


def _missing_models(wanted, available):
    """The models of ``wanted`` (as configured) not among ``available`` (as listed)."""
    have = {_normalize_model(name) for name in available}
    return [name for name in wanted if _normalize_model(name) not in have]


def _tags_model_names(payload):
    """Model names from an ``/api/tags`` answer (``name`` and ``model`` keys)."""
    names = []
    for entry in (payload or {}).get("models") or []:
        if isinstance(entry, dict):
            for key in ("name", "model"):
                if isinstance(entry.get(key), str):
                    names.append(entry[key])
    return names


def _parse_version(text):
    """``'3.11.2'``, ``'glibc 2.36'`` or ``[3, 11, 2]`` -> ``(3, 11, 2)``; None when none."""
    if isinstance(text, (list, tuple)):
        try:
            return tuple(int(part) for part in text)
        except (TypeError, ValueError):
            return None
    match = re.search(r"(\d+(?:\.\d+)+)", str(text or ""))
    if not match:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def _version_in_range(version, minimum, below):
    """``minimum <= version < below``, on the parts that are given."""
    return tuple(minimum) <= tuple(version) < tuple(below)


def _format_version(version):
    return ".".join(str(part) for part in version)


def _hex_to_ip(text):
    """An address of /proc/net/tcp(6): 32-bit words, each in host byte order."""
    raw = b"".join(struct.pack("=I", int(text[i : i + 8], 16)) for i in range(0, len(text), 8))
    return str(ipaddress.ip_address(raw))


def _parse_proc_net_tcp(text):
    """
    Sockets of a ``/proc/net/tcp`` or ``/proc/net/tcp6`` text: a list of
    ``{"address", "port", "state", "uid", "inode"}`` (``state`` by name).
    """
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or ":" not in fields[1]:
            continue
        try:
            address, port = fields[1].rsplit(":", 1)
            sockets.append(
                {
                    "address": _hex_to_ip(address),
                    "port": int(port, 16),
                    "state": TCP_STATES.get(fields[3].upper(), fields[3]),
                    "uid": int(fields[7]),
                    "inode": int(fields[9]),
                }
            )
        except (ValueError, struct.error):
            continue
    return sockets


def _in_service_cgroup(cgroup_text, service):
    """Whether a ``/proc/<pid>/cgroup`` text puts the process in ``<service>.service``."""
    pattern = re.compile(r"/" + re.escape(service) + r"\.service(/|$)")
    return any(pattern.search(line.split(":", 2)[-1]) for line in cgroup_text.splitlines())


def _nameservers(text):
    """The ``nameserver`` addresses of a resolv.conf text, in order."""
    found = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return found


def _sudoers_group_forms(group):
    escaped = re.sub(r"([ ,:=\\])", r"\\\1", group)
    return {f"%{group}", f"%{escaped}", f'%"{group}"', f"%:{group}", f"%:{escaped}", f'%:"{group}"'}


def _sudoers_rules_for_group(text, group):
    """The sudoers lines of ``text`` that give ``%group`` a rule (comments skipped)."""
    forms = _sudoers_group_forms(group)
    rules = []
    joined = re.sub(r"\\\n", " ", text)  # continuation lines
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for form in forms:
            if line.startswith(form) and (len(line) == len(form) or line[len(form)] in " \t,"):
                rules.append(line)
                break
    return rules


def _sudoers_include_name_ok(name):
    """sudo skips files of an includedir whose name has a '.' or ends with '~'."""
    return "." not in name and not name.endswith("~")


def _redact_text(text, secrets=()):
    """``text`` without the given secrets, URL passwords or ``sk-`` keys."""
    for secret in sorted((s for s in secrets if isinstance(s, str) and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = URL_USERINFO_RE.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{REDACTED}@", text)
    return SK_RE.sub(REDACTED, text)


def _redact(value, secrets=()):
    """``value`` (any JSON-like structure) with every string redacted."""
    if isinstance(value, str):
        return _redact_text(value, secrets)
    if isinstance(value, dict):
        return {_redact(key, secrets): _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item, secrets) for item in value]
    return value


def _url_without_credentials(url):
    """``https://user:pw@host/x`` -> ``https://host/x`` (for messages)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _build_report(results, duration_ms):
    """The verdict over check results: NO-GO when any failed, warnings do not count."""
    failed = [r["name"] for r in results if r["status"] == "fail"]
    warnings = [r["name"] for r in results if r["status"] == "warn"]
    return {
        "result": "NO-GO" if failed else "GO",
        "checks": list(results),
        "failed": failed,
        "warnings": warnings,
        "duration_ms": round(float(duration_ms), 1),
        "evidence": None,
    }


def _format_summary(report, host="", generated=""):
    """A report as a readable fixed-width table (summary.txt)."""
    checks = report["checks"]
    width = max([len("CHECK")] + [len(c["name"]) for c in checks])
    lines = [
        f"LiteLLM preflight: {report['result']}",
        f"host: {host or '-'}   generated: {generated or '-'}   took: {report['duration_ms']:.0f} ms",
        "",
        f"{'CHECK':<{width}}  {'STATUS':<6}  {'MS':>7}  DETAIL",
        f"{'-' * width}  {'-' * 6}  {'-' * 7}  {'-' * 40}",
    ]
    for check in checks:
        lines.append(
            f"{check['name']:<{width}}  {check['status'].upper():<6}  {check['duration_ms']:>7.0f}  {check['detail']}"
        )
    lines.append("")
    lines.append(f"failed: {', '.join(report['failed']) or 'none'}")
    lines.append(f"warnings: {', '.join(report['warnings']) or 'none'}")
    return "\n".join(lines) + "\n"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _preflight_errors(settings):
    """Problems of ``litellm:preflight`` (naming the key); pure."""
    pf = settings.get("preflight", {}) if isinstance(settings, dict) else {}
    if pf in (None, ""):
        return []
    key = "litellm:preflight"
    if not isinstance(pf, dict):
        return [f"{key}: must be a mapping, got {type(pf).__name__}"]
    errors = []
    unknown = sorted(map(str, set(pf) - PREFLIGHT_KEYS))
    if unknown:
        errors.append(f"{key}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(PREFLIGHT_KEYS))}")
    for name in ("min_disk_gib", "min_memory_mib"):
        if name in pf and (not _is_number(pf[name]) or pf[name] < 0):
            errors.append(f"{key}:{name}: must be a number >= 0, got {pf[name]!r}")
    keep = pf.get("keep_evidence", DEFAULT_KEEP_EVIDENCE)
    if keep not in ("", None) and (not _is_int(keep) or keep < 1):
        errors.append(f"{key}:keep_evidence: must be an integer >= 1, got {keep!r}")
    evidence = pf.get("evidence_dir", "")
    if evidence not in ("", None) and (not isinstance(evidence, str) or not evidence.startswith("/")):
        errors.append(f"{key}:evidence_dir: must be an absolute path, got {evidence!r}")
    wheelhouse = pf.get("offline_wheelhouse", "")
    if wheelhouse not in ("", None) and not isinstance(wheelhouse, (str, bool)):
        errors.append(f"{key}:offline_wheelhouse: must be a path (or true), got {wheelhouse!r}")
    dns = pf.get("dns", {})
    if dns not in (None, ""):
        if not isinstance(dns, dict):
            errors.append(f"{key}:dns: must be a mapping with expected and ptr")
        else:
            unknown = sorted(map(str, set(dns) - {"expected", "ptr"}))
            if unknown:
                errors.append(f"{key}:dns: unknown key(s) {', '.join(unknown)}; allowed: expected, ptr")
            if not isinstance(dns.get("ptr", False), bool):
                errors.append(f"{key}:dns:ptr: must be true or false, got {dns.get('ptr')!r}")
            expected = dns.get("expected", {}) or {}
            if not isinstance(expected, dict):
                errors.append(f"{key}:dns:expected: must be a mapping of host: [addresses]")
            else:
                for host, addresses in expected.items():
                    if not isinstance(addresses, list) or not addresses:
                        errors.append(f"{key}:dns:expected:{host}: must be a non-empty list of IP addresses")
                        continue
                    for address in addresses:
                        try:
                            ipaddress.ip_address(str(address))
                        except ValueError:
                            errors.append(f"{key}:dns:expected:{host}: {address!r} is not an IP address")
    site = pf.get("site", {})
    if site not in (None, ""):
        if not isinstance(site, dict):
            errors.append(f"{key}:site: must be a mapping")
        else:
            for name, value in site.items():
                if name not in SITE_KEYS:
                    errors.append(f"{key}:site: unknown key {name!r}; allowed: {', '.join(SITE_KEYS)}")
                elif value not in (None, "", False) and not isinstance(value, SITE_KEYS[name]):
                    errors.append(f"{key}:site:{name}: must be a {SITE_KEYS[name].__name__}, got {value!r}")
    return errors


# --- settings accessors (pure) -----------------------------------------------------


def _pf(settings):
    pf = settings.get("preflight") if isinstance(settings, dict) else None
    return pf if isinstance(pf, dict) else {}


def _pf_get(settings, *path, default=None):
    node = _pf(settings)
    for part in path:
        if not isinstance(node, dict):
            return default
        node = node.get(part)
    return default if node in (None, "") else node


def _valid_url(value):
    if not isinstance(value, str):
        return False
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _backend_urls(settings):
    """The valid backend URLs (the pillar check reports the others)."""
    backends = settings.get("backends")
    return [url.rstrip("/") for url in backends if _valid_url(url)] if isinstance(backends, list) else []


def _configured_models(settings):
    models = settings.get("models")
    if not isinstance(models, list):
        return []
    names = []
    for entry in models:
        model = entry.get("model") if isinstance(entry, dict) else None
        if isinstance(model, str) and model.strip() and model not in names:
            names.append(model.strip())
    return names


def _index_urls(settings):
    """(main index URL, extra index URLs), the main one defaulting to PyPI."""
    index = settings.get("package_index")
    index = index if isinstance(index, dict) else {}
    url = index.get("url") or DEFAULT_INDEX_URL
    extra = index.get("extra_urls") if isinstance(index.get("extra_urls"), list) else []
    return url, [u for u in extra if _valid_url(u)]


def _host_port(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _service_name(settings):
    service = settings.get("service")
    name = service.get("name") if isinstance(service, dict) else None
    return name if isinstance(name, str) and name else "litellm"


def _secrets(settings):
    """Strings that must never be output: the master key, index passwords."""
    secrets = []
    if isinstance(settings, dict):
        key = settings.get("master_key")
        if isinstance(key, str) and key:
            secrets.append(key)
        index = settings.get("package_index")
        urls = []
        if isinstance(index, dict):
            urls = [index.get("url")] + list(index.get("extra_urls") or [])
        for url in urls:
            if isinstance(url, str) and "@" in url:
                try:
                    password = urllib.parse.urlsplit(url).password
                except ValueError:
                    password = None
                if password:
                    secrets.extend({password, urllib.parse.unquote(password)})
        redis = settings.get("redis")
        if isinstance(redis, dict) and isinstance(redis.get("password"), str) and redis["password"]:
            secrets.append(redis["password"])
    return secrets


def _resp_command(*args):
    """One Redis command in RESP (an array of bulk strings)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else bytes(arg)
        parts.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(parts)


def _resp_replies(data):
    """The simple replies (+OK, -ERR ..., :1) of a RESP byte string, as text lines."""
    return [line.decode("utf-8", "replace") for line in data.split(b"\r\n") if line[:1] in (b"+", b"-", b":")]


def _redis_verdict(replies, endpoint):
    """(status, detail) from the replies to AUTH then PING."""
    if len(replies) < 2:
        return "fail", f"{endpoint}: no answer to AUTH and PING (not a Redis server?): {replies!r}"
    auth, ping = replies[0], replies[1]
    if auth.startswith("-") and "without any password configured" in auth:
        return "fail", (
            f"{endpoint}: Redis has no password (requirepass) but litellm:redis:password is set; "
            "LiteLLM could not connect. Secure it (litellm.redis) or fix the pillar"
        )
    if auth.startswith("-"):
        return "fail", f"{endpoint}: AUTH refused ({auth.split(' ', 1)[0][1:]}): litellm:redis:password is wrong"
    if ping != "+PONG":
        return "fail", f"{endpoint}: PING after AUTH answered {ping!r}"
    return "pass", f"{endpoint}: AUTH ok, PING answered PONG"


# --- thin I/O wrappers ----------------------------------------------------------------


def _parallel(func, items, timeout):
    """
    ``func(item)`` for every item in daemon threads (a hung lookup cannot keep
    the process alive); ``[("ok", value) | ("error", exc) | ("timeout", None)]``.
    """
    answers = [None] * len(items)

    def work(index, item):
        try:
            answers[index] = ("ok", func(item))
        except Exception as exc:  # pylint: disable=broad-except
            answers[index] = ("error", exc)

    threads = [threading.Thread(target=work, args=(i, item), daemon=True) for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [answer if answer is not None else ("timeout", None) for answer in answers]


def _read(path, limit=1 << 20):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(limit)


def _resolve(host):
    """Addresses of ``host`` (A and AAAA), in getaddrinfo's order, unique."""
    seen = []
    for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
        address = info[4][0].split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


def _reverse(address):
    """Names of a reverse (PTR) lookup of ``address``."""
    name, aliases, _ = socket.gethostbyaddr(address)
    return [name] + list(aliases)


def _redis_exchange(host, port, password, timeout=CONNECT_TIMEOUT):
    """AUTH and PING over one socket (the password only goes to Redis); the replies."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_resp_command("AUTH", password) + _resp_command("PING"))
        data = b""
        deadline = time.monotonic() + timeout
        while len(_resp_replies(data)) < 2 and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return _resp_replies(data)


def _tcp_connect(host, port, timeout=CONNECT_TIMEOUT):
    with socket.create_connection((host, port), timeout=timeout):
        return True


def _http_get(url, context=None, timeout=HTTP_TIMEOUT, limit=1 << 20):
    """(status, body bytes) of one GET; no redirects, no credentials."""
    host, port = _host_port(url)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn = HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read(limit)
    finally:
        conn.close()


def _index_get(url, context, timeout=HTTP_TIMEOUT, limit=MAX_INDEX_BYTES):
    """
    (status, body bytes) of a GET of a package index page, following redirects
    and the proxy environment like pip; URL credentials go in a header that is
    not passed on to a redirect's host.
    """
    parts = urllib.parse.urlsplit(url)
    request = urllib.request.Request(_url_without_credentials(url), headers={"Accept": "text/html"})
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_unredirected_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(limit)
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _tls_context(ca_bundle, ca_certificates=None):
    """
    Verifying client context: the ca_bundle only when given, else the system
    store; plus the site CAs of pillar ``ca_certificates``, which the formula
    installs into the system store before it downloads anything.
    """
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    for pem in (ca_certificates or {}).values() if isinstance(ca_certificates, dict) else ():
        if isinstance(pem, str):
            context.load_verify_locations(cadata=pem)
    return context


def _site_cas(settings):
    cas = settings.get("ca_certificates")
    return cas if isinstance(cas, dict) else {}


def _site_store(settings):
    """What the formula's TLS clients trust, in words."""
    ca_bundle = settings.get("ca_bundle") or None
    store = f"ca_bundle {ca_bundle}" if ca_bundle else "the system trust store"
    if _site_cas(settings):
        store += f" + litellm:ca_certificates ({', '.join(sorted(map(str, _site_cas(settings))))})"
    return store


def _site_tls(settings):
    """(context, what it trusts, in words) for the formula's settings."""
    return _tls_context(settings.get("ca_bundle") or None, _site_cas(settings)), _site_store(settings)


UNTRUSTED_HINT = "; an internal CA goes in litellm:ca_certificates"


def _tls_handshake(host, port, context, timeout=CONNECT_TIMEOUT):
    """Handshake with verification; the peer's protocol, issuer and notAfter."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert() or {}
            issuer = dict(pair[0] for pair in cert.get("issuer", ()) if pair)
            return {
                "protocol": tls.version(),
                "issuer": issuer.get("commonName") or issuer.get("organizationName") or "?",
                "not_after": cert.get("notAfter"),
            }


def _try_bind(host, port):
    """None when ``host:port`` can be bound (SO_REUSEADDR off, closed at once), else the OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        sock.bind((host, port))
        return None
    except OSError as exc:
        return exc
    finally:
        sock.close()


def _tcp_sockets():
    sockets = []
    for name in ("tcp", "tcp6"):
        try:
            sockets.extend(_parse_proc_net_tcp(_read(os.path.join(PROC, "net", name), limit=64 << 20)))
        except OSError:
            continue
    return sockets


def _socket_holders(inodes):
    """``{inode: [pid, ...]}``: which processes hold the sockets (readable fds only)."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    holders = {inode: [] for inode in inodes}
    try:
        pids = [int(entry) for entry in os.listdir(PROC) if entry.isdigit()]
    except OSError:
        return holders
    for pid in sorted(pids):
        fd_dir = os.path.join(PROC, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None and pid not in holders[inode]:
                holders[inode].append(pid)
    return holders


def _process_command(pid):
    """``comm`` and the start of the command line of a process (for messages)."""
    try:
        cmdline = _read(os.path.join(PROC, str(pid), "cmdline"), limit=4096).replace("\0", " ").strip()
    except OSError:
        cmdline = ""
    if not cmdline:
        try:
            cmdline = "[" + _read(os.path.join(PROC, str(pid), "comm")).strip() + "]"
        except OSError:
            cmdline = "?"
    return cmdline if len(cmdline) <= 120 else cmdline[:117] + "..."


def _process_cgroup(pid):
    try:
        return _read(os.path.join(PROC, str(pid), "cgroup"))
    except OSError:
        return ""


def _pid1_name():
    try:
        return _read(os.path.join(PROC, "1", "comm")).strip()
    except OSError:
        return ""


def _run(argv, timeout=COMMAND_TIMEOUT):
    """A read-only command through cmd.run_all; its output is never logged."""
    return __salt__["cmd.run_all"](
        argv, python_shell=False, timeout=timeout, ignore_retcode=True, output_loglevel="quiet"
    )


def _systemd_main_pid(service):
    if _pid1_name() != "systemd" or not shutil.which("systemctl"):
        return None
    answer = _run(["systemctl", "show", "-p", "MainPID", "--value", f"{service}.service"], timeout=5)
    try:
        pid = int(str(answer.get("stdout", "")).strip())
    except ValueError:
        return None
    return pid or None


def _free_bytes(path):
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _meminfo():
    info = {}
    for line in _read(os.path.join(PROC, "meminfo")).splitlines():
        key, _, value = line.partition(":")
        fields = value.split()
        if fields and fields[0].isdigit():
            info[key.strip()] = int(fields[0])  # kB
    return info


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _merge(base, layer):
    """map.jinja's merge: mappings recursively, everything else (lists too) replaced."""
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _pillar_litellm():
    """Pillar ``litellm`` unmasked (Salt 3008 masks pillar values outside templates)."""
    try:
        return __salt__["pillar.get"]("litellm", {}, unmask=True)
    except TypeError:  # a Salt without unmask
        return __salt__["pillar.get"]("litellm", {})


def _fallback_settings():
    """
    Built-in defaults merged with pillar, as map.jinja would: for a target
    without the state tree (``salt-ssh <target> litellm_preflight.run`` ships
    the modules and the pillar, not ``salt://litellm/map.jinja``).
    """
    global _SETTINGS_NOTE  # pylint: disable=global-statement
    pillar = _pillar_litellm()
    if not isinstance(pillar, dict):
        return pillar
    if not pillar:
        _SETTINGS_NOTE = NO_PILLAR_NOTE
    settings = json.loads(json.dumps(FORMULA_DEFAULTS))
    if __grains__.get("os_family") in OS_FAMILY_DEFAULTS:
        settings = _merge(settings, OS_FAMILY_DEFAULTS[__grains__["os_family"]])
    return _merge(settings, pillar)


def _merged_settings(saltenv):
    """The formula's merged settings, through map.jinja (as litellm_config does)."""
    source = (
        "{%- from 'litellm/map.jinja' import litellm, pillar_is_mapping with context %}"
        "{{ {'settings': litellm, 'pillar_is_mapping': pillar_is_mapping} | json }}"
    )
    try:
        rendered = __salt__["slsutil.renderer"](string=source, default_renderer="jinja|json", saltenv=saltenv)
    except Exception as exc:  # pylint: disable=broad-except
        # SaltRenderError (TemplateNotFound) when the state tree is not on the target.
        if "TemplateNotFound: litellm/map.jinja" not in str(exc):
            raise  # a real error of map.jinja is not hidden
        log.info("litellm/map.jinja is not available here: built-in defaults merged with pillar")
        return _fallback_settings()
    if not rendered["pillar_is_mapping"]:
        return _pillar_litellm()
    return rendered["settings"]


def _settings(settings, saltenv):
    global _SETTINGS_NOTE  # pylint: disable=global-statement
    _SETTINGS_NOTE = None
    return _merged_settings(saltenv) if settings is None else settings


# --- the checks -------------------------------------------------------------------------


def _gateway_host(settings):
    base_url = settings.get("base_url")
    if isinstance(base_url, str) and base_url and _valid_url(base_url):
        return urllib.parse.urlsplit(base_url).hostname
    return __grains__.get("fqdn") or socket.getfqdn()


def _is_literal(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _same_name(host, names):
    host = host.lower().rstrip(".")
    for name in names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if "." not in host or "." not in name:  # one side unqualified: compare first labels
            if name.split(".", 1)[0] == host.split(".", 1)[0]:
                return True
    return False


def _lookup(host, ptr):
    addresses = _resolve(host)
    reverse = {}
    if ptr:
        for address in addresses:
            try:
                reverse[address] = _reverse(address)
            except OSError as exc:
                reverse[address] = exc
    return addresses, reverse


def _expected_matches(addresses, expected):
    """Compare on the address families the expectation lists."""
    want = {ipaddress.ip_address(str(a)) for a in expected}
    versions = {a.version for a in want}
    have = {ipaddress.ip_address(a) for a in addresses if ipaddress.ip_address(a).version in versions}
    return have == want


def _check_dns(settings):
    expected = _pf_get(settings, "dns", "expected", default={})
    expected = expected if isinstance(expected, dict) else {}
    ptr = _pf_get(settings, "dns", "ptr", default=False) is True
    hosts = [("gateway", _gateway_host(settings))]
    hosts += [("backend", _host_port(url)[0]) for url in _backend_urls(settings)]
    hosts += [("expected", str(host)) for host in expected]
    unique = []
    for role, host in hosts:
        if host and host not in [h for _, h in unique]:
            unique.append((role, host))
    if not unique:
        return "skip", "no host to resolve"
    names = [host for _, host in unique if not _is_literal(host)]
    answers = dict(zip(names, _parallel(lambda h: _lookup(h, ptr), names, DNS_TIMEOUT)))
    statuses, parts = [], []
    for role, host in unique:
        label = f"{host} ({role})"
        if _is_literal(host):
            statuses.append("pass")
            parts.append(f"{label}: literal")
            continue
        kind, value = answers[host]
        if kind == "timeout":
            statuses.append("fail")
            parts.append(f"{label}: no answer within {DNS_TIMEOUT:.0f} s")
            continue
        if kind == "error":
            statuses.append("fail")
            reason = value.strerror if isinstance(value, OSError) and value.strerror else str(value)
            parts.append(f"{label}: does not resolve ({reason})")
            continue
        addresses, reverse = value
        status, text = "pass", f"{label}: {', '.join(addresses)}"
        if host in expected and not _expected_matches(addresses, expected[host]):
            status = "fail"
            text += f" but expected {', '.join(map(str, expected[host]))}"
        for address, names_or_error in reverse.items():
            if isinstance(names_or_error, Exception):
                status = "fail"
                text += f"; PTR of {address} missing"
            elif not _same_name(host, names_or_error):
                status = "fail"
                text += f"; PTR of {address} is {names_or_error[0]}"
        if reverse and status == "pass":
            text += " (PTR ok)"
        statuses.append(status)
        parts.append(text)
    return _worst(statuses), "; ".join(parts)


def _probe_backend(url, models, context):
    host, port = _host_port(url)
    try:
        _tcp_connect(host, port)
    except OSError as exc:
        return "fail", f"{url}: TCP connect failed ({exc.strerror or exc})"
    try:
        status, body = _http_get(url + "/api/version", context=context)
        if status != 200:
            return "fail", f"{url}: GET /api/version answered HTTP {status}"
        version = json.loads(body or b"{}").get("version", "?")
        status, body = _http_get(url + "/api/tags", context=context, limit=16 << 20)
        if status != 200:
            return "fail", f"{url}: GET /api/tags answered HTTP {status}"
        available = _tags_model_names(json.loads(body or b"{}"))
    except ssl.SSLCertVerificationError as exc:
        return "fail", f"{url}: TLS verification failed ({exc.verify_message})"
    except (OSError, ValueError, AttributeError) as exc:
        return "fail", f"{url}: {type(exc).__name__}: {exc}"
    missing = _missing_models(models, available)
    if missing:
        return "fail", "; ".join(f"model {m!r} missing on {url}" for m in missing)
    return "pass", f"{url}: ollama {version}, {len(models)}/{len(models)} model(s)"


def _check_backends(settings):
    urls = _backend_urls(settings)
    if not urls:
        return "skip", "no valid backend URL (see the pillar check)"
    models = _configured_models(settings)
    context = None
    if any(url.startswith("https://") for url in urls):
        try:
            context, _ = _site_tls(settings)
        except (OSError, ssl.SSLError) as exc:
            return "fail", f"{_site_store(settings)} cannot be loaded: {exc}"
    answers = _parallel(lambda u: _probe_backend(u, models, context), urls, PROBE_DEADLINE)
    statuses, parts = [], []
    for url, (kind, value) in zip(urls, answers):
        if kind == "ok":
            statuses.append(value[0])
            parts.append(value[1])
        else:
            statuses.append("fail")
            parts.append(f"{url}: no answer within {PROBE_DEADLINE:.0f} s" if kind == "timeout" else f"{url}: {value}")
    return _worst(statuses), "; ".join(parts)


def _bind_address(bind_host):
    if bind_host in ("", None):
        return "0.0.0.0"
    if _is_literal(bind_host):
        return bind_host
    return _resolve(bind_host)[0]


def _port_users(port):
    """Sockets on ``port`` with an inode (TIME_WAIT ones have none), LISTEN first."""
    found = [s for s in _tcp_sockets() if s["port"] == port and s["inode"]]
    return sorted(found, key=lambda s: s["state"] != "LISTEN")


def _check_bind_port(settings):
    bind_host, port = settings.get("bind_host", "0.0.0.0"), settings.get("bind_port")
    if not _is_int(port) or not 1 <= port <= 65535 or not isinstance(bind_host, str):
        return "skip", "bind_host/bind_port invalid (see the pillar check)"
    try:
        address = _bind_address(bind_host)
    except OSError as exc:
        return "fail", f"bind_host {bind_host!r} does not resolve ({exc})"
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    error = _try_bind(address, port)
    if error is None:
        return "pass", f"{where} is free"
    if error.errno == 99:  # EADDRNOTAVAIL
        return "fail", f"{where}: {bind_host!r} is not an address of this host"
    if error.errno == 13:  # EACCES
        return "warn", f"{where}: a port below 1024 cannot be tried without privileges ({error.strerror})"
    if error.errno != 98:  # EADDRINUSE
        return "fail", f"{where}: cannot bind ({error.strerror or error})"
    users = _port_users(port)
    if not users:
        return "pass", f"{where}: only closing connections (TIME_WAIT) use the port; LiteLLM can bind"
    service = _service_name(settings)
    holders = _socket_holders([s["inode"] for s in users])
    pids = []
    for sock in users:
        pids.extend(pid for pid in holders.get(sock["inode"], []) if pid not in pids)
    if not pids:
        uids = sorted({s["uid"] for s in users})
        return "fail", (
            f"{where} is in use ({users[0]['state']}, uid {', '.join(map(str, uids))}) by a process "
            "this user cannot see (run as root); LiteLLM would silently move to a random port"
        )
    main_pid = _systemd_main_pid(service)
    own = [pid for pid in pids if pid == main_pid or _in_service_cgroup(_process_cgroup(pid), service)]
    if own:
        return "pass", f"{where} is held by the {service} service itself (PID {', '.join(map(str, own))})"
    owners = ", ".join(f"PID {pid} ({_process_command(pid)})" for pid in pids)
    return "fail", f"{where} is held by {owners}; LiteLLM would silently move to a random port"


def _check_runtime(settings):
    lookup = settings.get("lookup") if isinstance(settings.get("lookup"), dict) else {}
    python = lookup.get("python") or DEFAULT_PYTHON
    if not isinstance(python, str) or not os.path.isabs(python):
        return "fail", f"litellm:lookup:python {python!r} is not an absolute path"
    if not os.access(python, os.X_OK):
        return "fail", f"{python}: not found or not executable"
    answer = _run([python, "-I", "-c", RUNTIME_PROBE])
    if answer.get("retcode") != 0:
        error = (answer.get("stderr") or answer.get("stdout") or "").strip().splitlines()
        return "fail", f"{python} -c failed (rc {answer.get('retcode')}): {error[-1] if error else 'no output'}"
    try:
        probe = json.loads(str(answer.get("stdout", "")).strip().splitlines()[-1])
    except (ValueError, IndexError):
        return "fail", f"{python}: unexpected probe output"
    statuses, parts = [], []
    version = _parse_version(probe.get("version"))
    if version and _version_in_range(version, PYTHON_MIN, PYTHON_BELOW):
        statuses.append("pass")
        parts.append(f"{python} {_format_version(version)}")
    else:
        statuses.append("fail")
        parts.append(
            f"{python} {_format_version(version or ())} is outside "
            f">={_format_version(PYTHON_MIN)},<{_format_version(PYTHON_BELOW)}"
        )
    pkgs = lookup.get("pkgs") if isinstance(lookup.get("pkgs"), list) else []
    venv_pkg = next((p for p in pkgs if isinstance(p, str) and p.endswith("-venv")), None)
    for module, problem in (probe.get("modules") or {}).items():
        if not problem:
            parts.append(f"{module} ok")
        elif venv_pkg:
            # A fresh host: the formula installs the package before it makes the venv.
            statuses.append("warn")
            parts.append(f"{module} not importable yet (the formula installs {venv_pkg})")
        else:
            statuses.append("fail")
            parts.append(f"{module} not importable ({problem})")
    libc = str(probe.get("libc") or "")
    libc_version = _parse_version(libc)
    if not libc.lower().startswith("glibc") or libc_version is None:
        statuses.append("fail")
        parts.append(f"not glibc ({libc or 'unknown libc'}); LiteLLM's wheels need glibc >= 2.28")
    elif libc_version < GLIBC_MIN:
        statuses.append("fail")
        parts.append(f"glibc {_format_version(libc_version)} < {_format_version(GLIBC_MIN)}")
    else:
        statuses.append("pass")
        parts.append(f"glibc {_format_version(libc_version)}")
    return _worst(statuses), ", ".join(parts)


def _check_resources(settings):
    min_disk = _pf_get(settings, "min_disk_gib", default=DEFAULT_MIN_DISK_GIB)
    min_memory = _pf_get(settings, "min_memory_mib", default=DEFAULT_MIN_MEMORY_MIB)
    min_disk = min_disk if _is_number(min_disk) else DEFAULT_MIN_DISK_GIB
    min_memory = min_memory if _is_number(min_memory) else DEFAULT_MIN_MEMORY_MIB
    venv = settings.get("venv") if isinstance(settings.get("venv"), str) else "/opt/litellm/venv"
    statuses, parts = [], []
    where = _nearest_existing(venv)
    try:
        free_gib = _free_bytes(where) / 1024**3
    except OSError as exc:
        statuses.append("fail")
        parts.append(f"free disk at {where}: {exc}")
    else:
        ok = free_gib >= min_disk
        statuses.append("pass" if ok else "fail")
        parts.append(f"disk {free_gib:.1f} GiB free at {where} ({'>=' if ok else '<'} {min_disk} GiB)")
    try:
        available = _meminfo().get("MemAvailable")
    except OSError as exc:
        available, error = None, exc
    else:
        error = "no MemAvailable in /proc/meminfo"
    if available is None:
        statuses.append("warn")
        parts.append(f"memory unknown ({error})")
    else:
        mib = available / 1024
        ok = mib >= min_memory
        statuses.append("pass" if ok else "warn")
        parts.append(f"memory {mib:.0f} MiB available ({'>=' if ok else '<'} {min_memory} MiB)")
    return _worst(statuses), "; ".join(parts)


def _installed_version_matches(settings):
    """The venv already holds the pinned LiteLLM: this run installs nothing."""
    venv, version = settings.get("venv"), settings.get("version")
    if not isinstance(venv, str) or not isinstance(version, str) or not venv.startswith("/"):
        return False
    return bool(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", f"litellm-{version}.dist-info")))


def _https_endpoints(settings):
    """(label, host, port) of every https endpoint the deploy needs, unique."""
    endpoints = []
    urls = []
    # The index the install really uses (PyPI when package_index:url is empty),
    # unless it is not used at all: pinned version installed, or a wheelhouse.
    if not _installed_version_matches(settings) and not _pf_get(settings, "offline_wheelhouse"):
        url, extra = _index_urls(settings)
        urls.append(("package_index", url))
        urls += [("extra_index", u) for u in extra]
    urls += [("backend", u) for u in _backend_urls(settings)]
    for label, url in urls:
        if _valid_url(url) and url.startswith("https://"):
            host, port = _host_port(url)
            if (host, port) not in [(h, p) for _, h, p in endpoints]:
                endpoints.append((label, host, port))
    return endpoints


def _days_left(not_after):
    try:
        return (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400
    except (TypeError, ValueError):
        return None


def _check_trust(settings):
    endpoints = _https_endpoints(settings)
    if not endpoints:
        return "skip", "no https endpoint configured (package index or backends)"
    try:
        context, store = _site_tls(settings)
    except (OSError, ssl.SSLError) as exc:
        return "fail", f"{_site_store(settings)} cannot be loaded: {getattr(exc, 'strerror', None) or exc}"
    answers = _parallel(lambda e: _tls_handshake(e[1], e[2], context), endpoints, PROBE_DEADLINE)
    statuses, parts = [], []
    for (label, host, port), (kind, value) in zip(endpoints, answers):
        where = f"{host}:{port} ({label})"
        if kind == "ok":
            days = _days_left(value.get("not_after"))
            if days is not None and days < 14:
                statuses.append("warn")
                parts.append(f"{where}: verified, but the certificate expires in {days:.0f} day(s)")
            else:
                statuses.append("pass")
                parts.append(f"{where}: verified with {store} ({value['protocol']}, issuer {value['issuer']})")
        elif kind == "timeout":
            statuses.append("fail")
            parts.append(f"{where}: no TLS handshake within {PROBE_DEADLINE:.0f} s")
        elif isinstance(value, ssl.SSLCertVerificationError):
            statuses.append("fail")
            parts.append(f"{where}: not trusted by {store}: {value.verify_message}{UNTRUSTED_HINT}")
        else:
            statuses.append("fail")
            parts.append(f"{where}: TLS handshake failed ({getattr(value, 'strerror', None) or value})")
    return _worst(statuses), "; ".join(parts)


def _check_package_index(settings):
    wheelhouse = _pf_get(settings, "offline_wheelhouse")
    if wheelhouse:
        return "skip", f"offline wheelhouse set ({wheelhouse}); the index is not used"
    if _installed_version_matches(settings):
        # A re-apply installs nothing: it must not touch the network either.
        return "skip", f"litellm {settings.get('version')} is already installed in {settings.get('venv')}"
    url, _ = _index_urls(settings)
    if not _valid_url(url):
        return "skip", "package_index:url invalid (see the pillar check)"
    page = url.rstrip("/") + "/litellm/"
    shown = _url_without_credentials(page)
    context = None
    if url.startswith("https://"):
        try:
            context, _ = _site_tls(settings)
        except (OSError, ssl.SSLError) as exc:
            return "fail", f"{_site_store(settings)} cannot be loaded: {exc}"
    ((kind, value),) = _parallel(lambda u: _index_get(u, context), [page], PROBE_DEADLINE)
    if kind == "timeout":
        return "fail", f"GET {shown}: no answer within {PROBE_DEADLINE:.0f} s"
    if kind == "error":
        reason = getattr(value, "reason", None) or value
        if isinstance(reason, ssl.SSLCertVerificationError):
            reason = f"TLS verification failed: {reason.verify_message}{UNTRUSTED_HINT}"
        return "fail", f"GET {shown}: {reason}"
    status, body = value
    if status != 200:
        return "fail", f"GET {shown} answered HTTP {status} (expected 200)"
    version = settings.get("version")
    if isinstance(version, str) and version:
        pattern = re.compile(rb"litellm-" + re.escape(version.encode()) + rb"(-|\.tar|\.zip)", re.I)
        if len(body) < MAX_INDEX_BYTES and not pattern.search(body):
            return "fail", f"GET {shown} answered 200 but lists no file of litellm {version}"
        return "pass", f"GET {shown}: 200, litellm {version} listed"
    return "pass", f"GET {shown}: 200"


def _check_init(settings):  # pylint: disable=unused-argument
    pid1 = _pid1_name()
    if pid1 != "systemd":
        return "fail", f"PID 1 is {pid1 or 'unknown'!r}, not systemd (the formula runs LiteLLM as a systemd service)"
    if not shutil.which("systemctl"):
        return "fail", "PID 1 is systemd but systemctl is not found"
    answer = _run(["systemctl", "is-system-running"], timeout=5)
    state = (str(answer.get("stdout") or "").strip().splitlines() or ["unknown"])[0]
    if state in ("running", "degraded"):
        return "pass", f"systemd is PID 1, system {state}"
    if state in ("starting", "initializing"):
        return "warn", f"systemd is PID 1, system still {state}"
    return "fail", f"systemd is PID 1, but the system is {state}"


def _check_pillar(settings):
    if not isinstance(settings, dict):
        return "fail", f"litellm: must be a mapping of settings, got {type(settings).__name__}"
    # litellm:preflight is this module's; litellm_config does not know the key.
    core = {key: value for key, value in settings.items() if key != "preflight"}
    errors = list(__salt__["litellm_config.validate"](settings=core)["errors"]) + _preflight_errors(settings)
    if errors:
        note = f" ({_SETTINGS_NOTE})" if _SETTINGS_NOTE else ""
        return "fail", f"{len(errors)} error(s): " + "; ".join(errors) + note
    return "pass", "settings are valid"


def _site_option(settings, name):
    return _pf_get(settings, "site", name)


def _check_site_realm(settings):
    if _site_option(settings, "realm") is not True:
        return "skip", "not enabled (litellm:preflight:site:realm)"
    if shutil.which("realm"):
        answer = _run(["realm", "list", "--name-only"], timeout=10)
        if answer.get("retcode") == 0:
            realms = [line.strip() for line in str(answer.get("stdout") or "").splitlines() if line.strip()]
            if realms:
                return "pass", f"joined to {', '.join(realms)} (realm list)"
            return "fail", "realm list: not joined to any realm or domain"
    evidence, domains = [], []
    if os.path.exists(KRB5_CONF):
        try:
            match = re.search(r"^\s*default_realm\s*=\s*(\S+)", _read(KRB5_CONF), re.M)
            evidence.append(f"{KRB5_CONF} default_realm {match.group(1)}" if match else f"{KRB5_CONF} present")
        except OSError:
            evidence.append(f"{KRB5_CONF} present")
    if os.path.exists(SSSD_CONF):
        try:
            match = re.search(r"^\s*domains\s*=\s*(.+)$", _read(SSSD_CONF), re.M)
            domains = [d.strip() for d in match.group(1).split(",")] if match else []
        except OSError:
            domains = []
        evidence.append(f"{SSSD_CONF} domains {', '.join(domains)}" if domains else f"{SSSD_CONF} present")
    if os.path.exists(KRB5_KEYTAB):
        evidence.append(f"{KRB5_KEYTAB} present")
    if not evidence:
        return "skip", f"no realm tool, {KRB5_CONF} or {SSSD_CONF}: domain membership cannot be told"
    if domains or os.path.exists(KRB5_KEYTAB) or os.path.exists(SSSD_CONF):
        return "pass", "; ".join(evidence)
    return "warn", "; ".join(evidence) + " (Kerberos client config only: no host keytab, no sssd)"


def _check_site_sudo(settings):
    group = _site_option(settings, "admin_sudo_group")
    if not group:
        return "skip", "not enabled (litellm:preflight:site:admin_sudo_group)"
    files = [SUDOERS]
    try:
        files += sorted(
            os.path.join(SUDOERS_D, name) for name in os.listdir(SUDOERS_D) if _sudoers_include_name_ok(name)
        )
    except OSError:
        pass
    unreadable = []
    for path in files:
        try:
            rules = _sudoers_rules_for_group(_read(path), group)
        except PermissionError:
            unreadable.append(path)
            continue
        except OSError:
            continue
        if rules:
            return "pass", f"{path}: {rules[0]}"
    if unreadable:
        return "warn", f"no rule for %{group} found; cannot read {', '.join(unreadable)} (not root?)"
    return "fail", f"no sudoers rule for %{group} in {SUDOERS} or {SUDOERS_D}"


def _check_site_netplan(settings):
    if _site_option(settings, "netplan_single_file") is not True:
        return "skip", "not enabled (litellm:preflight:site:netplan_single_file)"
    if not os.path.isdir(NETPLAN_DIR):
        return "fail", f"{NETPLAN_DIR} does not exist"
    files = sorted(glob.glob(os.path.join(NETPLAN_DIR, "*.yaml")))
    if len(files) == 1:
        return "pass", f"one netplan file: {files[0]}"
    if not files:
        return "fail", f"no *.yaml in {NETPLAN_DIR}"
    return "fail", f"{len(files)} netplan files (one expected): {', '.join(files)}"


def _check_site_resolver(settings):
    if _site_option(settings, "resolver") is not True:
        return "skip", "not enabled (litellm:preflight:site:resolver)"
    try:
        servers = _nameservers(_read(RESOLV_CONF))
    except OSError as exc:
        return "fail", f"{RESOLV_CONF}: {exc.strerror or exc}"
    if not servers:
        return "fail", f"{RESOLV_CONF} lists no nameserver"
    if all(server in RESOLVED_STUBS for server in servers):
        try:
            upstream = _nameservers(_read(RESOLVED_UPSTREAM))
        except OSError:
            return "pass", f"systemd-resolved stub {', '.join(servers)} (upstream servers not readable)"
        if not upstream:
            return "fail", f"systemd-resolved stub {', '.join(servers)} with no upstream DNS server"
        return "pass", f"systemd-resolved stub {', '.join(servers)}; upstream {', '.join(upstream)}"
    return "pass", f"nameservers {', '.join(servers)}"


def _check_redis(settings):
    redis = settings.get("redis")
    if not isinstance(redis, dict) or not redis.get("host"):
        return "skip", "no shared state (litellm:redis:host is empty)"
    host, port, password = redis.get("host"), redis.get("port", 6379), redis.get("password")
    if not isinstance(host, str) or not _is_int(port) or not isinstance(password, str) or not password:
        return "skip", "litellm:redis invalid (see the pillar check)"
    endpoint = f"redis {host}:{port}"
    try:
        replies = _redis_exchange(host, port, password)
    except OSError as exc:
        return "fail", f"{endpoint}: {exc.strerror or exc} (gateways share their router state there)"
    return _redis_verdict(replies, endpoint)


CHECKS = {
    "pillar": _check_pillar,
    "dns": _check_dns,
    "backends": _check_backends,
    "bind_port": _check_bind_port,
    "runtime": _check_runtime,
    "resources": _check_resources,
    "trust": _check_trust,
    "package_index": _check_package_index,
    "init": _check_init,
    "redis": _check_redis,
    "site_realm": _check_site_realm,
    "site_sudo": _check_site_sudo,
    "site_netplan": _check_site_netplan,
    "site_resolver": _check_site_resolver,
}
SITE_CHECKS = {
    "site_realm": "realm",
    "site_sudo": "admin_sudo_group",
    "site_netplan": "netplan_single_file",
    "site_resolver": "resolver",
}


def _timed(name, settings):
    """One check, timed; never raises (an unexpected error is a fail naming it)."""
    start = time.monotonic()
    if name != "pillar" and not isinstance(settings, dict):
        status, detail = "skip", "settings are not a mapping (see the pillar check)"
    else:
        try:
            status, detail = CHECKS[name](settings)
        except Exception as exc:  # pylint: disable=broad-except
            # The exception's text is redacted below; never log a traceback (settings in frames).
            log.debug("preflight check %s raised %s", name, type(exc).__name__)
            status, detail = "fail", f"check raised {type(exc).__name__}: {exc}"
    elapsed = (time.monotonic() - start) * 1000
    return _redact(_result(name, status, detail, elapsed), _secrets(settings))


def _selected_checks(settings, checks=None):
    """The check names to run: the named ones, else the core ones plus enabled site checks (redis: with a host)."""
    if checks is None:
        redis = (settings or {}).get("redis")
        with_redis = isinstance(redis, dict) and bool(redis.get("host"))
        return [
            name
            for name in CHECKS
            if (name != "redis" or with_redis)
            and (name not in SITE_CHECKS or _pf_get(settings or {}, "site", SITE_CHECKS[name]) not in (None, False, ""))
        ]
    if isinstance(checks, str):
        checks = [part.strip() for part in checks.split(",") if part.strip()]
    unknown = [name for name in checks if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    return list(checks)


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _write_evidence(report, evidence_dir, host="", generated=None):
    """
    Write ``<evidence_dir>/preflight-<UTC timestamp>/report.json`` and
    ``summary.txt`` (directory 0700, files 0600); returns the bundle's path.
    """
    generated = generated or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    os.makedirs(evidence_dir, mode=0o700, exist_ok=True)
    base = os.path.join(evidence_dir, f"preflight-{generated}")
    path, number = base, 1
    while True:
        try:
            os.mkdir(path, 0o700)
            break
        except FileExistsError:
            number += 1
            path = f"{base}-{number}"
    os.chmod(path, 0o700)
    report = dict(report, evidence=path)
    document = dict(report, host=host, generated=generated)
    _write_private(os.path.join(path, "report.json"), json.dumps(document, indent=2, sort_keys=False) + "\n")
    _write_private(os.path.join(path, "summary.txt"), _format_summary(report, host=host, generated=generated))
    return path


def _bundle_key(name):
    match = BUNDLE_RE.match(name)
    return (match.group("stamp"), int(match.group("number") or 1)) if match else None


def _prune_evidence(evidence_dir, keep, current=None):
    """
    Remove all but the newest ``keep`` bundles of ``evidence_dir`` (by their
    timestamp); only ``preflight-<UTC>[-N]`` directories are touched, never
    ``current``. Returns the removed paths.
    """
    try:
        names = os.listdir(evidence_dir)
    except OSError:
        return []
    bundles = sorted(
        (name for name in names if _bundle_key(name) is not None),
        key=_bundle_key,
        reverse=True,
    )
    removed = []
    for name in bundles[max(int(keep), 1) :]:
        path = os.path.join(evidence_dir, name)
        if path == current or os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            shutil.rmtree(path)
            removed.append(path)
        except OSError as exc:
            log.warning("preflight evidence %s could not be pruned: %s", path, exc.strerror or exc)
    return removed


# --- public functions ------------------------------------------------------------------


def run(settings=None, evidence_dir=None, checks=None, saltenv="base"):
    """
    Run the preflight checks (all of them, or the named ``checks``) against
    ``settings`` (default: the formula's merged settings, map.jinja + pillar).
    Returns ``{"result": "GO"|"NO-GO", "checks", "failed", "warnings",
    "duration_ms", "evidence"}``; a failed check makes NO-GO, a warning does
    not. Read-only; with ``evidence_dir`` (default: pillar
    ``litellm:preflight:evidence_dir``) a bundle ``preflight-<UTC>/`` with
    ``report.json`` and ``summary.txt`` is written there (0700/0600), and
    only the newest ``litellm:preflight:keep_evidence`` bundles (default 20)
    are kept. Without the state tree on the target (``salt-ssh <target>
    litellm_preflight.run``) the settings are the built-in defaults merged
    with pillar, as map.jinja does.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.run
        salt-call litellm_preflight.run checks=dns,backends
        salt-ssh gateway litellm_preflight.run evidence_dir=/var/lib/litellm-preflight
    """
    start = time.monotonic()
    settings = _settings(settings, saltenv)
    names = _selected_checks(settings if isinstance(settings, dict) else {}, checks)
    results = [_timed(name, settings) for name in names]
    secrets = _secrets(settings)
    report = _redact(_build_report(results, (time.monotonic() - start) * 1000), secrets)
    if evidence_dir is None:
        evidence_dir = _pf_get(settings, "evidence_dir")
    if evidence_dir:
        host = str(__grains__.get("id") or __grains__.get("fqdn") or socket.gethostname())
        report["evidence"] = _write_evidence(report, evidence_dir, host=_redact_text(host, secrets))
        keep = _pf_get(settings, "keep_evidence", default=DEFAULT_KEEP_EVIDENCE)
        keep = keep if _is_int(keep) and keep >= 1 else DEFAULT_KEEP_EVIDENCE
        _prune_evidence(evidence_dir, keep, current=report["evidence"])
    return report


def _public(name, settings, saltenv):
    return _timed(name, _settings(settings, saltenv))


def dns(settings=None, saltenv="base"):
    """
    The gateway (``base_url`` host, else the fqdn grain) and every backend host
    resolve (A/AAAA); IP literals pass as literal. Compares with
    ``litellm:preflight:dns:expected`` and, with ``ptr: true``, the reverse
    lookups. All lookups together are bounded (5 s).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.dns
    """
    return _public("dns", settings, saltenv)


def backends(settings=None, saltenv="base"):
    """
    Every backend answers: TCP connect (3 s), ``GET /api/version``, ``GET
    /api/tags`` listing every configured model (``:latest`` when untagged).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.backends
    """
    return _public("backends", settings, saltenv)


def bind_port(settings=None, saltenv="base"):
    """
    ``bind_host:bind_port`` is free, or held by the litellm service itself;
    anything else holding it fails naming its PID and command.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.bind_port
    """
    return _public("bind_port", settings, saltenv)


def runtime(settings=None, saltenv="base"):
    """
    The target python (``litellm:lookup:python``) is >=3.9,<3.14 and imports
    ``venv`` and ``ensurepip``; glibc >= 2.28.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.runtime
    """
    return _public("runtime", settings, saltenv)


def resources(settings=None, saltenv="base"):
    """
    Free disk at the venv's nearest existing parent (``min_disk_gib``, fail)
    and MemAvailable (``min_memory_mib``, warn).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.resources
    """
    return _public("resources", settings, saltenv)


def trust(settings=None, saltenv="base"):
    """
    A verified TLS handshake with every https endpoint of the deploy (package
    indexes, https backends), with ``ca_bundle`` when set, else the system store.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.trust
    """
    return _public("trust", settings, saltenv)


def package_index(settings=None, saltenv="base"):
    """
    ``GET <index>/litellm/`` answers 200 and lists the pinned version (skipped
    with ``litellm:preflight:offline_wheelhouse``).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.package_index
    """
    return _public("package_index", settings, saltenv)


def init(settings=None, saltenv="base"):
    """
    systemd is PID 1 and ``systemctl is-system-running`` says running or
    degraded (starting: warn).

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.init
    """
    return _public("init", settings, saltenv)


def redis(settings=None, saltenv="base"):
    """
    With ``litellm:redis:host``: Redis answers at host:port, accepts
    ``litellm:redis:password`` (AUTH, sent over the socket only, never in a
    process argument) and PING. Skipped without a Redis host.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.redis
    """
    return _public("redis", settings, saltenv)


def pillar(settings=None, saltenv="base"):
    """
    The settings pass ``litellm_config.validate`` and the ``litellm:preflight``
    keys are well-formed; a fail lists every error.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.pillar
    """
    return _public("pillar", settings, saltenv)


def site(settings=None, saltenv="base"):
    """
    The site checks (realm membership, admin sudo rule, a single netplan
    file, resolver), each skipped unless enabled under
    ``litellm:preflight:site``.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_preflight.site
    """
    settings = _settings(settings, saltenv)
    return [_timed(name, settings) for name in SITE_CHECKS]

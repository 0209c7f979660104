# Managed by Salt (litellm formula). Local edits are overwritten.
"""
Client keys without a database: LiteLLM's ``general_settings.custom_auth``
hook of the litellm formula (``custom_auth_settings: {mode: auto}``).

The key table ``client-keys.json`` next to this file (root:litellm 0640,
rendered from pillar ``litellm:keys``) holds, per client, the SHA-256 of its
key, never the key: names, hashes, allowed model aliases, rpm/tpm/
max_parallel limits, expiry and a disabled flag. Every request's key is hashed
and compared with every entry (``hmac.compare_digest``, no early exit), so the
time taken does not depend on which entry matched, or on how close a wrong key
came.

- a client's key: a ``UserAPIKeyAuth`` with the client's name as
  ``key_alias`` (LiteLLM's logging metadata), its models and limits;
  ``api_key`` is the key's hash, so nothing LiteLLM logs holds the key;
- the master key, or no key at all: a plain exception, which ``auto`` mode
  hands to LiteLLM's own auth (the master key stays an admin key; public
  routes stay public; no key gets LiteLLM's 401);
- any other key, a disabled or an expired client: ``ProxyException`` 401
  (final in ``auto`` mode), which the openai SDK raises as
  ``AuthenticationError``; a client key on a route that is not LiteLLM's
  model API (``/health``, ``/model/info``, management): 403. Messages never
  contain a key.

The table is re-read when it changes (its inode, size, mtime and ctime are
looked at with one ``stat`` at most every ``CHECK_INTERVAL`` seconds, on a
request), in every worker, with no restart. A table that cannot be read or
parsed leaves the last good one in force (logged once per version of the
file); a table that is gone means no client key is valid. After each load a
worker writes what it has in force (names, models, limits, the table's
SHA-256; no hash of a key) to ``$RUNTIME_DIRECTORY/client-keys.<pid>.json``,
for the smoke test. Under systemd (``$RUNTIME_DIRECTORY`` set) a thread of
each worker also looks every ``CHECK_INTERVAL``, so an idle worker is as
current as a busy one, and its status file says so.
"""

import datetime
import functools
import hashlib
import hmac
import json
import logging
import os
import threading
import time

try:  # LiteLLM's types when loaded by the proxy; the formula's unit tests inject stand-ins
    from litellm.proxy._types import ProxyException, UserAPIKeyAuth
    from litellm.proxy.auth.auth_utils import get_request_route
    from litellm.proxy.auth.route_checks import RouteChecks

    is_llm_api_route = RouteChecks.is_llm_api_route
except ImportError:  # pragma: no cover - only without LiteLLM
    ProxyException = UserAPIKeyAuth = get_request_route = is_llm_api_route = None

log = logging.getLogger("litellm_client_keys")

TABLE_NAME = "client-keys.json"
TABLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), TABLE_NAME)
TABLE_FORMAT = 1
# Seconds between two looks at the table: a change is in force after at most
# this (plus the time of one request) in every worker.
CHECK_INTERVAL = 0.5
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
# Set by systemd (RuntimeDirectory=): where each worker says what it has in force.
RUNTIME_DIR_ENV = "RUNTIME_DIRECTORY"
# A digest no key hashes to in practice: compared against when the master key is unknown.
_NO_DIGEST = b"\x00" * 32


class FallThrough(Exception):
    """Not a client key: LiteLLM's own auth decides (``auto`` mode)."""


def key_digest(key):
    """SHA-256 of a key (bytes): what the table stores, as hex."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def _parse_expiry(value):
    if value in (None, ""):
        return None
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


class Entry:
    __slots__ = ("name", "digest", "hash", "models", "rpm", "tpm", "max_parallel", "expires", "disabled")

    def __init__(self, name, spec):
        if not isinstance(spec, dict):
            raise ValueError(f"client {name!r}: not a mapping")
        self.name = str(name)
        self.hash = str(spec["hash"]).lower()
        self.digest = bytes.fromhex(self.hash)
        if len(self.digest) != 32:
            raise ValueError(f"client {self.name!r}: hash is not a SHA-256")
        self.models = [str(m) for m in spec.get("models") or []]
        self.rpm = spec.get("rpm")
        self.tpm = spec.get("tpm")
        self.max_parallel = spec.get("max_parallel")
        self.expires = _parse_expiry(spec.get("expires"))
        self.disabled = bool(spec.get("disabled", False))


def parse_table(text):
    """The entries of a key table's text (raises ValueError on a bad table)."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
        raise ValueError(f"not a key table of format {TABLE_FORMAT}")
    clients = data.get("clients")
    if not isinstance(clients, dict):
        raise ValueError("clients: not a mapping")
    return tuple(Entry(name, spec) for name, spec in sorted(clients.items()))


def find(entries, digest):
    """
    The entry whose hash is ``digest``, or None: every entry is compared, in
    constant time each, whatever matches (no early exit).
    """
    found = None
    for entry in entries:
        if hmac.compare_digest(entry.digest, digest):
            found = entry
    return found


class KeyTable:
    """The key table of one worker: parsed once, re-read when the file changes."""

    def __init__(self, path=TABLE_PATH, interval=CHECK_INTERVAL, clock=time.monotonic):
        self.path = path
        self.interval = interval
        self.clock = clock
        self.entries = ()
        self.signature = None  # of the file the entries came from
        self.failed = None  # signature of a file that could not be loaded (logged once)
        self.next_check = float("-inf")
        self.lock = threading.Lock()

    def _stat_signature(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "absent"
        return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def current(self):
        """The entries in force, re-read first when the file changed."""
        now = self.clock()
        if now < self.next_check:
            return self.entries
        with self.lock:
            if now < self.next_check:
                return self.entries
            self.refresh()
            self.next_check = now + self.interval
        return self.entries

    def refresh(self):
        try:
            signature = self._stat_signature()
        except OSError as exc:
            self._failed(("stat", exc.errno), f"cannot stat: {exc.strerror}")
            return
        if signature == self.signature:
            return
        if signature == "absent":
            if self.entries:
                log.warning("%s is gone: no client key is valid until it is back", self.path)
            self.entries, self.signature, self.failed = (), signature, None
            self.report(None)
            return
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
            entries = parse_table(raw.decode("utf-8"))
        except OSError as exc:
            self._failed(signature, f"cannot read: {exc.strerror}")
            return
        except (ValueError, KeyError, TypeError) as exc:
            self._failed(signature, f"not a valid key table ({type(exc).__name__}); the last good one stays")
            return
        self.entries, self.signature, self.failed = entries, signature, None
        log.info("%s: %d client(s) loaded", self.path, len(entries))
        self.report(hashlib.sha256(raw).hexdigest())

    def report(self, table_sha256):
        """
        What this worker has in force, for the smoke test: <RUNTIME_DIRECTORY>/client-keys.<pid>.json
        (names, models, limits, the table's SHA-256; no key hash). Only when systemd gives a runtime directory.
        """
        directory = os.environ.get(RUNTIME_DIR_ENV)
        if not directory:
            return
        status = {
            "pid": os.getpid(),
            "table": self.path,
            "table_sha256": table_sha256,
            "loaded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "clients": {
                e.name: {"models": e.models, "rpm": e.rpm, "tpm": e.tpm, "max_parallel": e.max_parallel,
                         "expires": e.expires.isoformat() if e.expires else None, "disabled": e.disabled}
                for e in self.entries
            },
        }
        path = os.path.join(directory.split(":")[0], f"client-keys.{os.getpid()}.json")
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                json.dump(status, handle, sort_keys=True)
            os.replace(path + ".tmp", path)
        except OSError as exc:
            log.warning("%s: cannot write the worker's key status: %s", path, exc.strerror)

    def _failed(self, signature, why):
        if signature != self.failed:
            log.error("%s: %s", self.path, why)
            self.failed = signature


TABLE = KeyTable()
_watcher = {"pid": None}


def _watch(table):
    while True:
        time.sleep(table.interval)
        try:
            table.current()
        except Exception:  # noqa: BLE001 - the watcher must not die; the next request looks again
            log.exception("%s: the look at the key table failed", table.path)


def start_watcher(table=None):
    """One daemon thread per process that keeps ``table`` current (again in a forked child)."""
    if _watcher["pid"] == os.getpid():
        return False
    _watcher["pid"] = os.getpid()
    table = TABLE if table is None else table
    table.current()
    threading.Thread(target=_watch, args=(table,), name="litellm-client-keys", daemon=True).start()
    return True


if os.environ.get(RUNTIME_DIR_ENV):
    start_watcher()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=start_watcher)
_master = {"key": None, "digest": _NO_DIGEST}


def _master_digest():
    """SHA-256 of the proxy's master key (hashed once per value)."""
    key = None
    try:
        from litellm.proxy import proxy_server

        key = proxy_server.master_key
    except Exception:  # noqa: BLE001 - outside the proxy (tests)
        key = None
    if not key:
        key = os.environ.get(MASTER_KEY_ENV) or None
    if key is not _master["key"]:
        _master["key"] = key
        _master["digest"] = key_digest(key) if key else _NO_DIGEST
    return _master["digest"]


def _strip_bearer(api_key):
    if api_key[:7].lower() == "bearer ":
        return api_key[7:].strip()
    return api_key.strip()


def _denied(message, kind="auth_error", code=401):
    return ProxyException(message=message, type=kind, param="api_key", code=code)


@functools.lru_cache(maxsize=4096)
def route_allowed(route):
    """
    Whether a client key may use ``route``: LiteLLM's model API routes only
    (chat, completions, embeddings, /v1/models, ...). LiteLLM itself keeps
    non-admin keys off its management routes but lets them use its info
    routes, among them /health (a generation on every model x backend, the
    backends' URLs in the answer) and /model/info: those are the master key's.
    """
    return bool(is_llm_api_route(route))


def lookup(api_key, table=None, master_digest=None, now=None):
    """
    What the hook decides for a presented key, without LiteLLM's types:
    ``("client", entry)``, ``("fall_through", reason)`` or ``("denied", message)``.
    """
    table = TABLE if table is None else table
    key = _strip_bearer(api_key or "")
    if not key:
        return "fall_through", "no key"
    digest = key_digest(key)
    entry = find(table.current(), digest)
    master = _master_digest() if master_digest is None else master_digest
    is_master = hmac.compare_digest(master, digest)
    if entry is None:
        if is_master:
            return "fall_through", "master key"
        return "denied", "Authentication Error: invalid API key"
    if entry.disabled:
        return "denied", f"Authentication Error: the key of client {entry.name} is disabled"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if entry.expires is not None and entry.expires <= now:
        return "denied", f"Authentication Error: the key of client {entry.name} expired at {entry.expires.isoformat()}"
    return "client", entry


def user_api_key_auth_for(entry):
    """LiteLLM's view of a client: the name as key_alias, the hash as api_key, its models and limits."""
    fields = {
        # Not the key: UserAPIKeyAuth keeps an api_key without the sk- prefix
        # as it is (limiter messages, logs, callbacks), so give it the hash.
        "api_key": entry.hash,
        "key_alias": entry.name,
        "models": list(entry.models),
        "rpm_limit": entry.rpm,
        "tpm_limit": entry.tpm,
        "max_parallel_requests": entry.max_parallel,
        "metadata": {"client": entry.name},
    }
    if entry.expires is not None:
        fields["expires"] = entry.expires.isoformat()
    return UserAPIKeyAuth(**fields)


async def authenticate(request, api_key):
    """LiteLLM's custom_auth hook (general_settings.custom_auth: litellm_client_keys.authenticate)."""
    verdict, detail = lookup(api_key)
    if verdict == "client":
        route = get_request_route(request)
        if not route_allowed(route):
            shown = "".join(ch if ch.isprintable() else "?" for ch in route[:80])
            raise _denied(f"Client keys may use the model API only; {shown} needs the master key", "auth_error", 403)
        return user_api_key_auth_for(detail)
    if verdict == "fall_through":
        raise FallThrough(detail)
    raise _denied(detail, "expired_key" if "expired" in detail else "auth_error")

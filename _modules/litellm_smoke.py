"""
Smoke-test a running LiteLLM proxy end to end: is it up, does it enforce its
key (and, with client keys, the formula's own smoke key on every worker),
does it list exactly the configured aliases, does every alias answer (plain
and streamed), do requests spread over every healthy backend, are bad
requests refused, how fast is it, and what does its own ``/health`` say.

This module is the face: it resolves the arguments (pillar, else the gateway
deployed here) and redacts what it returns; the checks live in ``_utils/``
(``litellm_smoke_probes``, ``_keys``, ``_workers``, ``_chat``, ``_fanout``;
the run in ``litellm_smoke_run``, the pure logic in ``litellm_smoke_parse``),
reached through ``__utils__``. Every check returns ``{"name", "status":
pass|fail|warn|skip, "detail", "duration_ms", ...}``; ``run`` returns
``{"result": PASS|FAIL, "checks": [...], ...}``. Requests are tiny ("ping"),
every one has a timeout, every loop a bound; nothing goes anywhere but the
gateway's URL. No key (master or smoke) appears in a return value, a detail,
an evidence file or a log line. Prefer the key from pillar (or
``$LITELLM_MASTER_KEY``) over ``master_key=`` on a command line.
"""

import logging
import os

from salt.loader.context import NamedLoaderContext

log = logging.getLogger(__name__)

__virtualname__ = "litellm_smoke"

# The formula's unit: where a run without pillar finds the deployed gateway.
DEPLOYED_UNIT = "/etc/systemd/system/litellm.service"
PROBE_TIMEOUT = 5  # listening / liveliness / readiness answer at once or not at all


def __virtual__():
    if "litellm_smoke_run.run" not in __utils__:
        return (False, "litellm_smoke needs the formula's _utils (saltutil.sync_utils, or utils_dirs)")
    return __virtualname__


def _loaded(dunder):
    """The object behind a loader dunder: Salt's proxies resolve only in this module's own context."""
    return dunder.value() if isinstance(dunder, NamedLoaderContext) else dunder


def _salt():
    """The loader's ``__salt__``; empty when the module is imported directly."""
    funcs = globals().get("__salt__")
    return {} if funcs is None else _loaded(funcs)


def _finish(result, master_key):
    """Every public return value leaves through here: redacted."""
    return __utils__["litellm_redact.redact_secret"](result, master_key)


def _read(path):
    return __utils__["litellm_files.read_bytes"](path)


def _resolve(url=None, master_key=None, models=None, backends=None):
    """The arguments left None filled in (see ``litellm_smoke_run.resolve``)."""
    return _utils_call("litellm_smoke_run.resolve", _salt(), DEPLOYED_UNIT, url, master_key, models, backends)


def _utils_call(name, *args):
    return __utils__[name](_loaded(__utils__), *args)


# --- the checks ---------------------------------------------------------------------


def _no_key(name):
    return __utils__["litellm_smoke_parse.no_key"](name)


def _keyed(name, util, master_key, *args):
    """A check that needs the master key: skipped without one, redacted with one."""
    if not master_key:
        return _no_key(name)
    return _finish(_utils_call(util, *args), master_key)


def listening(url=None, timeout=PROBE_TIMEOUT):
    """
    TCP connect to the gateway's host:port.

    CLI Example: ``salt-call litellm_smoke.listening url=http://127.0.0.1:4000``
    """
    url, _, _, _ = _resolve(url, "", [], [])
    return _utils_call("litellm_smoke_probes.listening", url, timeout)


def liveliness(url=None, timeout=PROBE_TIMEOUT):
    """
    ``GET /health/liveliness`` answers 200 (no key needed).

    CLI Example: ``salt-call litellm_smoke.liveliness url=http://127.0.0.1:4000``
    """
    url, _, _, _ = _resolve(url, "", [], [])
    return _utils_call("litellm_smoke_probes.probe", "liveliness", "/health/liveliness", url, timeout)


def readiness(url=None, timeout=PROBE_TIMEOUT):
    """
    ``GET /health/readiness`` answers 200 (no key needed; it stays 200 when
    every backend is down, see ``health``).

    CLI Example: ``salt-call litellm_smoke.readiness url=http://127.0.0.1:4000``
    """
    url, _, _, _ = _resolve(url, "", [], [])
    return _utils_call("litellm_smoke_probes.probe", "readiness", "/health/readiness", url, timeout)


def models_auth(url=None, master_key=None, models=None, timeout=30):
    """
    ``GET /v1/models``: without a key 401; with a wrong key 400, 401 or 403
    (LiteLLM without a database: 400 "No connected db."); with the master key
    200 and exactly the configured aliases (a missing or extra alias fails).

    CLI Example: ``salt-call litellm_smoke.models_auth url=http://gw:4000 models=chat-small,chat-large``
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    return _finish(_utils_call("litellm_smoke_probes.models_auth", url, master_key, aliases, timeout), master_key)


def client_key(url=None, models=None, config_dir=None, service=None, timeout=30):
    """
    The client-key hook, with the formula's smoke key (``<config_dir>/smoke-key``,
    read as root, never returned): its alias 200, another alias 403, a wrong
    key 401, ``/v1/models`` exactly its alias; and every live worker of
    ``service`` has the key table in force (by client name and limits).
    Skipped when the gateway here loads no hook (no ``litellm:keys``).

    CLI Example: ``salt-call litellm_smoke.client_key``
    """
    url, _, aliases, _ = _resolve(url, "", models, [])
    options = _utils_call("litellm_smoke_run.key_options", _salt(), DEPLOYED_UNIT, url, aliases, config_dir, service)
    return __utils__["litellm_smoke_run.client_key"](_loaded(__utils__), url, dict(options, timeout=timeout))


def chat(url=None, master_key=None, models=None, chat_models="first", timeout=30):
    """
    A small non-streaming chat completion ("ping", max_tokens 8) for the
    first alias (``chat_models=first``), every alias (``all``) or the named
    ones: 200 and non-empty content each.

    CLI Example: ``salt-call litellm_smoke.chat url=http://gw:4000 chat_models=all``
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    return _keyed("chat", "litellm_smoke_chat.chat", master_key, url, master_key, aliases, chat_models, timeout)


def stream(url=None, master_key=None, models=None, model=None, timeout=30):
    """
    A streamed chat completion: 200, SSE ``data:`` chunks with non-empty
    concatenated content, ending with ``data: [DONE]``.

    CLI Example: ``salt-call litellm_smoke.stream url=http://gw:4000 model=chat-small``
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    return _keyed("stream", "litellm_smoke_chat.stream", master_key, url, master_key, aliases, model, timeout)


def fanout(url=None, master_key=None, models=None, backends=None, model=None, concurrency=10, timeout=30):
    """
    ``concurrency`` (default 10, at most 50) concurrent chat completions to
    one alias; the share of each backend comes from the
    ``x-litellm-model-api-base`` header. Fails when a request fails or when a
    backend that ``/health`` reports healthy for the alias got none (after a
    second round, so a fair shuffle does not fail by chance); unhealthy
    backends are a warning (the router should have avoided them).

    CLI Example: ``salt-call litellm_smoke.fanout url=http://gw:4000 model=chat-small concurrency=20``
    """
    url, master_key, aliases, configured = _resolve(url, master_key, models, backends)
    args = (url, master_key, aliases, configured, model, concurrency, timeout)
    return _keyed("fanout", "litellm_smoke_fanout.fanout", master_key, *args)


def errors(url=None, master_key=None, models=None, model=None, timeout=30):
    """
    Bad requests are refused with 400: an unknown model, malformed JSON and
    a chat without ``messages``. Records each status code.

    CLI Example: ``salt-call litellm_smoke.errors url=http://gw:4000``
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    return _keyed("errors", "litellm_smoke_chat.errors", master_key, url, master_key, aliases, model, timeout)


def latency(url=None, master_key=None, models=None, model=None, requests=10, timeout=30):
    """
    ``requests`` (default 10, at most 100) sequential small chat completions:
    p50/p95 end to end and of LiteLLM's own ``x-litellm-overhead-duration-ms``.
    Stops at the first failed request (which fails the check).

    CLI Example: ``salt-call litellm_smoke.latency requests=20``
    """
    url, master_key, aliases, _ = _resolve(url, master_key, models, [])
    args = (url, master_key, aliases, model, requests, timeout)
    return _keyed("latency", "litellm_smoke_chat.latency", master_key, *args)


def health(url=None, master_key=None, backends=None, timeout=30):
    """
    The authenticated ``/health``: healthy and unhealthy endpoints per
    backend (``api_base``). Fails when any endpoint is unhealthy, naming the
    backend and the deployment. With ``background_health_checks`` LiteLLM
    answers from its last background run (at most ``health_check_interval``
    old); without, every call asks every deployment once.

    CLI Example: ``salt-call litellm_smoke.health url=http://gw:4000``
    """
    url, master_key, _, configured = _resolve(url, master_key, [], backends)
    return _keyed("health", "litellm_smoke_fanout.health", master_key, url, master_key, configured, timeout)


# --- the smoke key ------------------------------------------------------------------


def smoke_key(config_dir="/etc/litellm", test=False):
    """
    Make the formula's smoke key ``<config_dir>/smoke-key`` (root:root 0600)
    unless a valid one is there (``test``: only say whether it would).
    Returns ``{"path", "created", "reason"}``, never the key.

    CLI Example: ``salt-call litellm_smoke.smoke_key``
    """
    return __utils__["litellm_smoke_keys.ensure_key"](__utils__["litellm_smoke_keys.key_path"](config_dir), test)


def smoke_key_entry(config_dir="/etc/litellm", alias=None, limits=None):
    """
    The key table's entry of the smoke key (its SHA-256, ``alias`` only, the
    ``limits`` rpm/tpm/max_parallel), or None when there is no smoke key or no
    alias. Used by the key table's template.

    CLI Example: ``salt-call litellm_smoke.smoke_key_entry alias=chat-small limits='{rpm: 6}'``
    """
    keys = __utils__.litellm_smoke_keys
    key = keys.read_key(keys.key_path(config_dir))
    return keys.table_entry(key, alias, dict(limits or {})) if key and alias else None


# --- the run ------------------------------------------------------------------------


def plan(url=None, models=None, backends=None, chat_models="first", concurrency=10, latency_requests=10):
    """
    What ``run`` would do, without sending anything: the URL, the checks,
    the aliases and backends it expects, whether a master key is known (never
    the key itself).

    CLI Example: ``salt-call litellm_smoke.plan``
    """
    url, master_key, aliases, configured = _resolve(url, None, models, backends)
    parse = __utils__.litellm_smoke_parse
    return _finish(
        {
            "url": url,
            "checks": __utils__["litellm_smoke_run.check_names"](),
            "models": aliases or [],
            "chat_models": parse.chat_targets(chat_models, aliases) if aliases else chat_models,
            "backends": configured or [],
            "concurrency": parse.bounded_int(concurrency, 10, 1, 50),
            "latency_requests": parse.bounded_int(latency_requests, 10, 1, 100),
            "has_master_key": bool(master_key),
        },
        master_key,
    )


def run(
    url=None, master_key=None, models=None, backends=None, concurrency=10, latency_requests=10, chat_models="first",
    evidence_dir=None, timeout=30, config_dir=None, service=None, metrics_url=None,
):
    """
    Run every smoke check against the gateway at ``url`` and return
    ``{"result": "PASS"|"FAIL", "checks": [...], "summary", "url", "started",
    "duration_ms", "evidence"}``. Arguments left None come from pillar
    ``litellm:`` (``bind_host``/``bind_port`` give the URL, ``master_key``,
    ``models``, ``backends``, ``config_dir``, ``service:name``); the key also
    from ``$LITELLM_MASTER_KEY``. Without any ``litellm`` pillar
    (``salt-ssh <target> litellm_smoke.run``: salt-ssh gives custom modules
    no pillar) they come from the gateway deployed on the host: its unit
    (host, port), ``config.yaml`` (aliases, backends) and env file (the key,
    read as root, never returned). The smoke key's check (``client_key``)
    uses the deployed ``config_dir``. When the gateway does not even accept
    connections the HTTP checks are skipped. With ``evidence_dir`` the
    report is also written to ``<evidence_dir>/smoke-<UTC time>/``
    (report.json, summary.txt; 0700/0600). No key is in the result or files. With
    ``metrics_url`` (litellm:metrics) the ``metrics`` check also runs.

    CLI Example:

    .. code-block:: bash

        salt-call litellm_smoke.run
        salt-call litellm_smoke.run chat_models=all evidence_dir=/var/lib/litellm-smoke
        salt-call --local litellm_smoke.run url=http://gw.example.internal:4000 models=chat-small,chat-large
    """
    url, master_key, aliases, configured = _resolve(url, master_key, models, backends)
    options = {"concurrency": concurrency, "latency_requests": latency_requests, "chat_models": chat_models,
               "timeout": timeout, "metrics_url": metrics_url}
    options.update(_utils_call("litellm_smoke_run.key_options", _salt(), DEPLOYED_UNIT, url, aliases, config_dir,
                               service))
    return _utils_call("litellm_smoke_run.run", url, master_key, aliases, configured, options, evidence_dir)


def run_as_deployed(
    url=None, config_dir="/etc/litellm", env_file=None, concurrency=10, latency_requests=10, chat_models="first",
    timeout=30,
):
    """
    Run the smoke test expecting what the live ``config.yaml`` in
    ``config_dir`` serves (aliases, backends), with the master key of the
    live env file (``env_file``, default ``<config_dir>/litellm.env``), not
    what pillar says now: the check after a rollback.

    CLI Example: ``salt-call litellm_smoke.run_as_deployed``
    """
    aliases, backends = config_expectations(_read(os.path.join(config_dir, "config.yaml")) or b"")
    key = env_master_key(_read(env_file or os.path.join(config_dir, "litellm.env")) or b"")
    return run(url=url, master_key=key or None, models=aliases, backends=backends, concurrency=concurrency,
               latency_requests=latency_requests, chat_models=chat_models, timeout=timeout, config_dir=config_dir)


def settle(
    report, config_dir="/etc/litellm", service="litellm", group="litellm", rollback=True, ready_timeout=180,
    run_kwargs=None, venv="/opt/litellm/venv", keep=5, keep_venvs=1,
):
    """
    The bookkeeping after a smoke run (``report``, as ``run`` returns it), for
    the ``litellm_smoke.passed`` state. PASS: keep the live config, env and
    venv as the newest known-good release unless it already is (``action``
    ``saved``/``kept``; ``litellm_release.save`` prunes). FAIL with
    ``rollback`` on and a live state that differs from the newest release:
    restore it, restart ``service``, wait for readiness and run smoke again
    with ``run_kwargs`` and what the restored files say (``rolled_back``).
    Otherwise ``none`` and ``reason`` says why. Returns ``{"action",
    "reason", "release", "saved", "restored", "ready", "smoke_after_rollback",
    "after"}``, names and summaries only, redacted.

    CLI Example: ``salt-call litellm_smoke.settle "$(salt-call --out=json litellm_smoke.run)"``
    """
    run_kwargs = dict(run_kwargs or {})
    where = {"config_dir": config_dir, "venv": venv, "service": service, "group": group, "rollback": rollback,
             "ready_timeout": ready_timeout, "keep": keep, "keep_venvs": keep_venvs}
    rerun = {key: run_kwargs[key] for key in __utils__["litellm_smoke_run.rerun_keys"]() if key in run_kwargs}
    url = run_kwargs.get("url") or report.get("url")
    utils = _loaded(__utils__)
    out = __utils__["litellm_smoke_run.settle"](utils, _salt(), report, where, url)
    if out["action"] == "rolled_back" and out["smoke_after_rollback"] is None:
        try:
            after = run_as_deployed(url=url, config_dir=config_dir, **rerun)
            out = __utils__["litellm_smoke_run.after_rollback"](out, after)
        except Exception as exc:  # pylint: disable=broad-except
            out = __utils__["litellm_smoke_run.failed"](utils, out, exc)
    return _finish(out, run_kwargs.get("master_key"))


# --- the pure parts, public for other modules and for the command line ---------------


def percentile(values, pct):
    """
    The ``pct`` percentile (0-100) of ``values``, interpolated between the closest ranks (numpy's default);
    None for no values.

    CLI Example: ``salt-call litellm_smoke.percentile '[120, 80, 95]' 95``
    """
    return __utils__["litellm_smoke_parse.percentile"](values, pct)


def parse_sse(text):
    """
    An OpenAI-style server-sent-event stream (``data: {...}`` lines, then ``data: [DONE]``): ``{"chunks",
    "content", "done", "done_last", "errors"}`` (``done_last``: ``[DONE]`` is the last data line; ``errors``:
    undecodable and ``{"error": ...}`` chunks).

    CLI Example: ``salt-call litellm_smoke.parse_sse "$(curl -sN ... /v1/chat/completions)"``
    """
    return __utils__["litellm_smoke_parse.parse_sse"](text)


def compare_aliases(expected, listed):
    """
    The configured aliases against the listed ones: ``{"missing": [...], "extra": [...], "match": bool}``.

    CLI Example: ``salt-call litellm_smoke.compare_aliases '[chat-small]' '[chat-small, chat-large]'``
    """
    return __utils__["litellm_smoke_parse.compare_aliases"](expected, listed)


def normalize_aliases(models):
    """
    Aliases from pillar-style ``models`` (``[{name, ...}]``), names, or a comma-separated string; None stays None.

    CLI Example: ``salt-call litellm_smoke.normalize_aliases chat-small,chat-large``
    """
    return __utils__["litellm_smoke_parse.normalize_aliases"](models)


def normalize_backends(backends):
    """
    Backend URLs without a trailing slash (list or comma-separated string).

    CLI Example: ``salt-call litellm_smoke.normalize_backends http://llm01:11434/,http://llm02:11434``
    """
    return __utils__["litellm_smoke_parse.normalize_backends"](backends)


def chat_targets(chat_models, aliases):
    """
    The aliases the chat check asks: ``"first"``, ``"all"``, one alias, or a list (at most MAX_CHAT_MODELS).

    CLI Example: ``salt-call litellm_smoke.chat_targets first '[chat-small, chat-large]'``
    """
    return __utils__["litellm_smoke_parse.chat_targets"](chat_models, aliases)


def health_by_backend(health):
    """
    A ``/health`` answer by ``api_base``: ``{api_base: {"healthy", "unhealthy", "failing": [...], "errors"}}``.

    CLI Example: ``salt-call litellm_smoke.health_by_backend "$(curl -s -H 'Authorization: ...' gw:4000/health)"``
    """
    return __utils__["litellm_smoke_parse.health_by_backend"](health)


def fanout_verdict(shares, healthy, unhealthy, failures, configured=None):
    """
    ``(status, detail)`` of a fan-out: ``shares`` {api_base: answered}, the ``healthy``/``unhealthy`` backends
    of ``/health``, the failed requests, the ``configured`` backends (or None).

    CLI Example: ``salt-call litellm_smoke.fanout_verdict '{http://a: 6, http://b: 4}' '[http://a, http://b]' '[]' 0``
    """
    return __utils__["litellm_smoke_parse.fanout_verdict"](shares, healthy, unhealthy, failures, configured)


def format_summary(report):
    """
    The report as a text table: check, status, detail, duration.

    CLI Example: ``salt-call litellm_smoke.format_summary "$(salt-call --out=json litellm_smoke.run)"``
    """
    return __utils__["litellm_smoke_parse.format_summary"](report)


def summarize(checks):
    """
    Overall ``(result, summary)`` of a list of check results.

    CLI Example: ``salt-call litellm_smoke.summarize '[{name: chat, status: pass}]'``
    """
    return __utils__["litellm_smoke_parse.summarize"](checks)


def env_master_key(text):
    """
    The ``LITELLM_MASTER_KEY`` value of an env file's text, or None. Pure.

    CLI Example: ``salt-call litellm_smoke.env_master_key "$(cat /etc/litellm/litellm.env)"``
    """
    return __utils__["litellm_smoke_parse.env_master_key"](text)


def config_expectations(text):
    """
    ``(aliases, backends)`` a LiteLLM config serves (``api_base``), each None when the text cannot be read.

    CLI Example: ``salt-call litellm_smoke.config_expectations "$(cat /etc/litellm/config.yaml)"``
    """
    return __utils__["litellm_smoke_parse.config_expectations"](text)


def unit_settings(text):
    """
    What the formula's unit says: ``{"config", "env_file", "bind_host", "bind_port", "venv", "group"}`` (found).

    CLI Example: ``salt-call litellm_smoke.unit_settings "$(cat /etc/systemd/system/litellm.service)"``
    """
    return __utils__["litellm_systemd.unit_settings"](text)


def write_evidence(report, evidence_dir, stamp):
    """
    Write ``<evidence_dir>/smoke-<stamp>/report.json`` and ``summary.txt`` (0700, 0600) for an already
    redacted ``report``; returns the run directory.

    CLI Example: ``salt-call litellm_smoke.write_evidence "$(...)" /var/lib/litellm-smoke 20260101T000000Z``
    """
    return _utils_call("litellm_smoke_run.write_evidence", report, evidence_dir, stamp)

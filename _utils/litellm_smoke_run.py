"""
The smoke run: every check in order (the HTTP ones skipped at once when the
gateway does not answer), the report and its evidence bundle, and the
bookkeeping after it (keep a known-good release after a PASS, roll back to
one after a FAIL). ``utils`` is ``__utils__``; the report leaves redacted.
"""

import datetime
import logging
import os
import time

log = logging.getLogger(__name__)

CHECKS = (
    "listening",
    "liveliness",
    "readiness",
    "models_auth",
    "client_key",
    "chat",
    "stream",
    "fanout",
    "errors",
    "latency",
    "health",
)
PROBES = ("listening", "liveliness", "readiness")
KEYLESS_CHECKS = ("listening", "liveliness", "readiness", "models_auth", "client_key")
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
DEFAULT_CONFIG_DIR, DEFAULT_SERVICE = "/etc/litellm", "litellm"  # where a gateway not deployed by Salt has none
#: the run() arguments a smoke run after a rollback keeps (the rest comes from the restored files)
RERUN_KEYS = ("concurrency", "latency_requests", "chat_models", "timeout")


def check_names():
    return list(CHECKS)


def rerun_keys():
    return list(RERUN_KEYS)


def _probes(utils, url, timeout):
    probes = utils.litellm_smoke_probes
    return [
        probes.listening(utils, url, timeout),
        probes.probe(utils, "liveliness", "/health/liveliness", url, timeout),
        probes.probe(utils, "readiness", "/health/readiness", url, timeout),
    ]


def _keyed(utils, url, master_key, aliases, configured, options):
    """The checks that need the master key, in order."""
    chat, fanout = utils.litellm_smoke_chat, utils.litellm_smoke_fanout
    timeout = options["timeout"]
    try:
        aliases = chat.aliases_for(utils, utils.litellm_http.target(url), master_key, aliases, timeout)
    except ValueError:
        pass
    first = aliases[0] if aliases else None
    return [
        chat.chat(utils, url, master_key, aliases, options["chat_models"], timeout),
        chat.stream(utils, url, master_key, aliases, first, timeout),
        fanout.fanout(utils, url, master_key, aliases, configured, first, options["concurrency"], timeout),
        chat.errors(utils, url, master_key, aliases, first, timeout),
        chat.latency(utils, url, master_key, aliases, first, options["latency_requests"], timeout),
        fanout.health(utils, url, master_key, configured, timeout),
    ] + ([utils.litellm_smoke_metrics.metrics(utils, url, master_key, first, options["metrics_url"], timeout)]
         if options.get("metrics_url") else [])


def client_key(utils, url, options):
    """The smoke key's check (``options["client_key"]``: ``litellm_smoke_keys.context``), else skipped."""
    found = options.get("client_key")
    if not found:
        return utils.litellm_smoke_parse.skip("client_key", options.get("client_key_why") or "not asked")

    def workers():
        return utils.litellm_smoke_workers.in_force(found["table"], found["runtime_dir"], found["pids"])

    keys = utils.litellm_smoke_keys
    return keys.client_key(utils, url, found["key"], found["alias"], found["other"], workers, options["timeout"])


def run_checks(utils, url, master_key, aliases, configured, options):
    """Every check's result, in order; ``options``: concurrency, latency_requests, chat_models, timeout."""
    parse = utils.litellm_smoke_parse
    checks = _probes(utils, url, options["timeout"])
    if checks[0]["status"] == "fail" or checks[1].get("http_status", 0) is None:
        # Nothing to talk to: say so at once instead of waiting out every timeout.
        why = (
            "gateway does not accept connections (see listening)"
            if checks[0]["status"] == "fail"
            else "gateway does not answer HTTP (see liveliness)"
        )
        return checks + [parse.skip(name, why) for name in CHECKS if name not in PROBES]
    checks.append(utils.litellm_smoke_probes.models_auth(utils, url, master_key, aliases, options["timeout"]))
    checks.append(client_key(utils, url, options))
    if not master_key:
        return checks + [parse.no_key(name) for name in CHECKS if name not in KEYLESS_CHECKS]
    return checks + _keyed(utils, url, master_key, aliases, configured, options)


def write_evidence(utils, report, evidence_dir, stamp):
    """
    Write ``<evidence_dir>/smoke-<stamp>/report.json`` and ``summary.txt``
    (directory 0700, files 0600) for an already redacted ``report``. Returns
    the run directory.
    """
    files = utils.litellm_files
    path = files.new_private_dir(os.path.join(evidence_dir, f"smoke-{stamp}"), first_suffix=1, tries=99)
    report = dict(report, evidence=path)
    files.write_bundle(path, report, utils.litellm_smoke_parse.format_summary(report))
    return path


def run(utils, url, master_key, aliases, configured, options, evidence_dir=None):
    """The whole run: the report, redacted, and its evidence bundle when ``evidence_dir`` is given."""
    parse = utils.litellm_smoke_parse
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()
    options = dict(options, timeout=parse.clamp_timeout(options.get("timeout")))
    checks = run_checks(utils, url, master_key, aliases, configured, options)
    result, summary = parse.summarize(checks)
    report = {
        "result": result,
        "summary": summary,
        "url": url,
        "started": started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "duration_ms": parse.ms(time.monotonic() - started),
        "checks": checks,
        "evidence": None,
    }
    report = utils.litellm_redact.redact_secret(report, master_key)
    if evidence_dir:
        report["evidence"] = write_evidence(utils, report, evidence_dir, started_at.strftime("%Y%m%dT%H%M%SZ"))
    log.info("litellm smoke test of %s: %s", report["url"], report["summary"])
    for check in report["checks"]:
        if check["status"] in ("fail", "warn"):
            log.debug("litellm smoke check %s %s: %s", check["name"], check["status"], check["detail"])
    return report


def deployed(utils, unit, need_key=True):
    """
    The settings of the gateway deployed on this host, read from the
    formula's files (``unit``, its config.yaml, and for the key its env file,
    which only root reads): for a run without ``litellm`` pillar, like
    ``salt-ssh <target> litellm_smoke.run`` (salt-ssh gives custom modules no
    pillar). Empty when nothing is deployed here; never raises.
    """
    parse, read = utils.litellm_smoke_parse, utils.litellm_files.read_bytes
    try:
        found = utils.litellm_systemd.unit_settings((read(unit) or b"").decode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}
    settings = {key: found[key] for key in ("bind_host", "bind_port") if key in found}
    aliases, backends = None, None
    if found.get("config"):
        try:
            aliases, backends = parse.config_expectations(read(found["config"]) or b"")
        except OSError:
            pass
    settings.update({key: value for key, value in (("models", aliases), ("backends", backends)) if value})
    if need_key and found.get("env_file"):
        try:
            key = parse.env_master_key(read(found["env_file"]) or b"")
        except OSError:
            key = None
        if key:
            settings["master_key"] = key
    if settings:
        log.info("litellm smoke: no litellm pillar here, settings of the gateway deployed by %s", unit)
    return settings


def key_options(utils, salt, unit, url, aliases, config_dir=None, service=None):
    """
    The ``client_key`` check's part of the run options: the deployed
    gateway's config directory and service (arguments, else pillar, else the
    deployed ``unit``, else the defaults), its smoke key, table and workers.
    """
    pillar = utils.litellm_settings.pillar(salt)
    pillar = pillar if isinstance(pillar, dict) else {}
    if config_dir is None:
        config_dir = pillar.get("config_dir")
    if config_dir is None:
        unit_text = (utils.litellm_files.read_bytes(unit) or b"").decode("utf-8", "replace")
        config = utils.litellm_systemd.unit_settings(unit_text).get("config")
        config_dir = os.path.dirname(config) if config else DEFAULT_CONFIG_DIR
    if service is None:
        service = (pillar.get("service") or {}).get("name") or DEFAULT_SERVICE
    try:
        port = utils.litellm_http.target(url).port
    except ValueError:
        return {"client_key": None, "client_key_why": "no gateway URL"}

    def pids():
        main = utils.litellm_systemd.main_pid(salt["cmd.run_all"], service) if "cmd.run_all" in salt else None
        return utils.litellm_smoke_workers.live_workers(utils, service, port, main)

    found, why = utils.litellm_smoke_keys.context(utils, config_dir, f"/run/{service}", aliases, pids)
    return {"client_key": found, "client_key_why": why}


def _gateway_url(utils, salt, known):
    """The gateway's URL from ``bind_host``/``bind_port`` of ``known``, else of the merged map (defaults.yaml)."""
    if "bind_host" not in known or "bind_port" not in known:
        merged = utils.litellm_settings.merged(salt, "base", without_map={})
        known = dict(merged if isinstance(merged, dict) else {}, **known)
    if known.get("bind_host") is None or known.get("bind_port") is None:
        return None  # no pillar, no state tree, nothing deployed: the run says so
    return utils.litellm_settings.local_url(known["bind_host"], known["bind_port"])


def resolve(utils, salt, unit, url=None, master_key=None, models=None, backends=None):
    """
    Fill the arguments left None from pillar ``litellm:`` (the formula's
    settings; the URL from map.jinja when pillar has no bind address); the
    master key also from ``$LITELLM_MASTER_KEY``. Without any ``litellm``
    pillar (salt-ssh runs custom modules without pillar), from the gateway
    deployed on this host (``unit``, its config.yaml and env file).
    Returns ``(url, master_key, aliases, backends)``.
    """
    pillar = None
    if url is None or master_key is None or models is None or backends is None:
        pillar = utils.litellm_settings.pillar(salt)
        pillar = pillar if isinstance(pillar, dict) else {}
    found = {}
    if pillar is not None and not pillar:
        found = deployed(utils, unit, need_key=master_key is None)
        pillar = {key: value for key, value in found.items() if key != "master_key"}
    if url is None:
        url = _gateway_url(utils, salt, pillar)
    if master_key is None:
        master_key = pillar.get("master_key") or os.environ.get(MASTER_KEY_ENV) or found.get("master_key") or None
    if master_key is not None and not isinstance(master_key, str):
        master_key = str(master_key)
    parse = utils.litellm_smoke_parse
    models = parse.normalize_aliases(pillar.get("models") if models is None else models)
    return url, master_key, models, parse.normalize_backends(pillar.get("backends") if backends is None else backends)


# --- after the run: keep a known-good release, or roll back to one -------------------
#
# After a PASS the live config, env and venv are kept as a known-good release
# (litellm_release.save); after a FAIL that follows a change, the newest
# known-good release is restored, the service restarted and smoke run again.


def _saved(salt, out, where):
    saved = salt["litellm_release.save"](where["config_dir"], where["venv"], keep=where["keep"],
                                         keep_venvs=where["keep_venvs"])
    out.update(action=saved["action"], release=saved["release"])
    out["saved"] = [saved["release"]] if saved["action"] == "saved" else []
    if saved["pruned"] or saved["pruned_venvs"]:
        out["reason"] = f"pruned {len(saved['pruned'])} old release(s), {len(saved['pruned_venvs'])} venv(s)"


def _rolled_back(salt, out, where, url):
    recovered = salt["litellm_release.recover"](
        where["config_dir"], where["venv"], where["service"], where["group"], url, where["ready_timeout"],
        force_restart=True,
    )
    out["reason"] = recovered["reason"]
    if recovered["action"] != "rolled_back":
        return
    out.update(action="rolled_back", release=recovered["release"], ready=recovered["ready"])
    out["restored"] = recovered["restored"] + [f"not restored: {item}" for item in recovered["skipped"]]


def after_rollback(out, after):
    """``out`` of ``settle`` with the smoke run after the rollback (``after``, a report)."""
    out = dict(out, smoke_after_rollback=after["result"])
    out["after"] = {
        "summary": after["summary"],
        "failed": [
            {"name": check["name"], "detail": check["detail"]} for check in after["checks"] if check["status"] == "fail"
        ],
    }
    return out


def failed(utils, out, exc):
    """``out`` of ``settle`` when the bookkeeping raised ``exc``."""
    out = dict(out)
    out["action"] = "error" if out["action"] != "rolled_back" else "rolled_back"
    out["reason"] = f"{out['reason']}; " if out["reason"] else ""
    out["reason"] += f"known-good bookkeeping failed: {utils.litellm_smoke_parse.error_text(exc)}"
    if out["action"] == "rolled_back" and out["smoke_after_rollback"] is None:
        out["smoke_after_rollback"] = "FAIL"
    log.error("litellm smoke: %s", out["reason"])
    return out


def settle(utils, salt, report, where, url):
    """
    The bookkeeping after a smoke run (see ``litellm_smoke.settle``), up to
    the smoke run after a rollback, which the caller makes (``after_rollback``):
    ``where`` holds config_dir, venv, service, group, rollback, ready_timeout,
    keep and keep_venvs.
    """
    out = {
        "action": "none",
        "reason": "",
        "release": None,
        "saved": [],
        "restored": [],
        "ready": None,
        "smoke_after_rollback": None,
        "after": None,
    }
    try:
        if report.get("result") == "PASS":
            _saved(salt, out, where)
        elif not where["rollback"]:
            out["reason"] = "rollback is off (litellm:rollback:enabled)"
        else:
            _rolled_back(salt, out, where, url)
    except Exception as exc:  # pylint: disable=broad-except
        return failed(utils, out, exc)
    return out

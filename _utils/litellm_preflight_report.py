"""
The preflight's results and report: one check's result, the worst of
several, the GO/NO-GO verdict, the summary table, and the evidence bundles
(``<evidence_dir>/preflight-<UTC>/``, 0700/0600) with their pruning.
"""

import logging
import os
import re
import shutil
import time

log = logging.getLogger(__name__)

STATUSES = ("pass", "fail", "warn", "skip")
MAX_DETAIL = 1500
BUNDLE_RE = re.compile(r"^preflight-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<number>\d+))?$")


def result(name, status, detail, duration_ms=0.0):
    """One check's result; ``detail`` is flattened to one bounded line."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    text = " ".join(str(detail).split())
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 3] + "..."
    return {"name": name, "status": status, "detail": text, "duration_ms": round(float(duration_ms), 1)}


def worst(statuses):
    """The status of a check made of parts: fail > warn > pass > skip."""
    statuses = list(statuses)
    for status in ("fail", "warn", "pass"):
        if status in statuses:
            return status
    return "skip"


def build_report(results, duration_ms):
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


def format_summary(report, host="", generated=""):
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


def write_evidence(utils, report, evidence_dir, host="", generated=None):
    """
    Write ``<evidence_dir>/preflight-<UTC timestamp>/report.json`` and
    ``summary.txt`` (directory 0700, files 0600); returns the bundle's path.
    """
    generated = generated or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    files = utils.litellm_files
    path = files.new_private_dir(os.path.join(evidence_dir, f"preflight-{generated}"), first_suffix=2)
    report = dict(report, evidence=path)
    files.write_bundle(path, dict(report, host=host, generated=generated), format_summary(report, host, generated))
    return path


def _bundle_key(name):
    match = BUNDLE_RE.match(name)
    return (match.group("stamp"), int(match.group("number") or 1)) if match else None


def prune_evidence(evidence_dir, keep, current=None):
    """
    Remove all but the newest ``keep`` bundles of ``evidence_dir`` (by their
    timestamp); only ``preflight-<UTC>[-N]`` directories are touched, never
    ``current``. Returns the removed paths.
    """
    try:
        names = os.listdir(evidence_dir)
    except OSError:
        return []
    bundles = sorted((name for name in names if _bundle_key(name) is not None), key=_bundle_key, reverse=True)
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

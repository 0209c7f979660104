"""
The files of a hashed lock for a test host, for the offline mirror
(``mirror.py`` serves them): ``parse_lock`` and ``applies`` read the lock and
its markers; ``wheelhouse(lock_file)`` picks each requirement's file for the
host's platform, downloads it once (checked against the lock's hashes) and
caches it under /var/cache/litellm-salt (LITELLM_HARNESS_CACHE);
``verify`` re-checks a wheelhouse against the lock.

Stdlib only; ``packaging`` comes from the venv or, failing that, from pip's
vendored copy.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import json
import os
import re
import shutil
import ssl
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.tags import Tag, compatible_tags, cpython_tags
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
except ImportError:  # pragma: no cover - only without packaging in the venv
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.tags import Tag, compatible_tags, cpython_tags
    from pip._vendor.packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from .rootfs import DEFAULT_CACHE_DIR

CACHE_ROOT = DEFAULT_CACHE_DIR  # LITELLM_HARNESS_CACHE, as the rootfs cache
UPSTREAM = "https://pypi.org/simple/"
# The oldest glibc of the test hosts' suites (bookworm 2.36; trixie has 2.41): wheels for both.
DEFAULT_PLATFORM = "manylinux_2_36_x86_64"
MANIFEST = "manifest.json"


# --- the lock -------------------------------------------------------------------------


@dataclass
class Requirement:
    """One pinned requirement of a hashed lock."""

    name: str  # PEP 503 normalized
    version: str
    marker: str | None
    hashes: frozenset[str]  # sha256 hex digests


def parse_lock(text: str) -> list[Requirement]:
    """
    The requirements of a ``uv pip compile --generate-hashes`` lock: one
    ``name==version [; marker] \\`` line followed by its ``--hash=sha256:`` lines.
    """
    reqs: list[Requirement] = []
    # Join continuation lines, drop comments: one logical line per requirement.
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        head, *hash_opts = re.split(r"\s+(?=--hash=)", line)
        spec, _, marker = head.partition(";")
        name, sep, version = spec.strip().partition("==")
        if not sep:
            raise ValueError(f"not an exact pin in the lock: {line!r}")
        digests = set()
        for opt in hash_opts:
            algo, _, digest = opt.strip().removeprefix("--hash=").partition(":")
            if algo != "sha256":
                raise ValueError(f"only sha256 hashes are supported: {opt!r}")
            digests.add(digest.lower())
        if not digests:
            raise ValueError(f"no hashes for {name!r} in the lock")
        name = canonicalize_name(name.split("[", 1)[0].strip())
        reqs.append(Requirement(name, version.strip(), marker.strip() or None, frozenset(digests)))
    return reqs


def _marker_env(python_full_version: str, machine: str) -> dict[str, str]:
    return {
        "implementation_name": "cpython",
        "implementation_version": python_full_version,
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python_full_version,
        "python_version": ".".join(python_full_version.split(".")[:2]),
        "sys_platform": "linux",
        "extra": "",
    }


def applies(req: Requirement, python_version: str = "3.11", machine: str = "x86_64") -> bool:
    """
    Whether ``req`` is needed on Linux/CPython ``python_version`` on ``machine``.
    A two-part version is checked at patch level 0 and 99, and the requirement
    kept when either needs it: the lock has ``python_full_version < '3.11.3'``
    markers, and bookworm's 3.11.2 and a host's 3.11.7 disagree on them.
    """
    if not req.marker:
        return True
    marker = Marker(req.marker)
    if python_version.count(".") >= 2:
        versions = [python_version]
    else:
        versions = [f"{python_version}.0", f"{python_version}.99"]
    return any(marker.evaluate(_marker_env(v, machine)) for v in versions)


def _parse_platform(platform: str) -> tuple[int, int, str]:
    """``manylinux_2_36_x86_64`` -> (2, 36, "x86_64")."""
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", platform)
    if not match:
        raise ValueError(f"platform must look like manylinux_2_36_x86_64, not {platform!r}")
    return int(match[1]), int(match[2]), match[3]


def supported_tags(python_version: str = "3.11", platform: str = DEFAULT_PLATFORM) -> dict[Tag, int]:
    """
    Wheel tags an installer on ``platform`` (``manylinux_<glibc major>_<minor>_<arch>``)
    with CPython ``python_version`` accepts, best first, as tag -> rank.
    """
    glibc_major, glibc_minor, arch = _parse_platform(platform)
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = []
    for minor in range(glibc_minor, 4, -1):
        platforms.append(f"manylinux_{glibc_major}_{minor}_{arch}")
        if glibc_major == 2 and minor in legacy:
            platforms.append(f"{legacy[minor]}_{arch}")
    platforms.append(f"linux_{arch}")
    pyver = tuple(int(part) for part in python_version.split(".")[:2])
    interpreter = f"cp{pyver[0]}{pyver[1]}"
    ordered = list(cpython_tags(pyver, abis=[interpreter], platforms=platforms))
    ordered += list(compatible_tags(pyver, interpreter, platforms))
    ranks: dict[Tag, int] = {}
    for tag in ordered:
        ranks.setdefault(tag, len(ranks))
    return ranks


# --- the wheelhouse -------------------------------------------------------------------


def _upstream_files(name: str, index: str, context: ssl.SSLContext) -> list[dict]:
    """A project's files on ``index`` (PEP 691 JSON: filename, url, hashes, requires-python)."""
    url = urllib.parse.urljoin(index, f"{name}/")
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60, context=context) as response:
        page = json.load(response)
    for entry in page["files"]:
        entry["url"] = urllib.parse.urljoin(url, entry["url"])
    return page["files"]


def choose_file(req: Requirement, files: list[dict], ranks: dict[Tag, int]) -> dict:
    """
    The one file to mirror for ``req``: among the upstream files whose sha256 is
    in the lock, the wheel an installer on the target would prefer; an sdist
    only when no wheel fits.
    """
    best, best_rank, sdist = None, None, None
    for entry in files:
        if entry.get("hashes", {}).get("sha256", "").lower() not in req.hashes:
            continue
        filename = entry["filename"]
        if filename.endswith(".whl"):
            _, _, _, tags = parse_wheel_filename(filename)
            rank = min((ranks[tag] for tag in tags if tag in ranks), default=None)
            if rank is not None and (best_rank is None or rank < best_rank):
                best, best_rank = entry, rank
        elif filename.endswith((".tar.gz", ".zip")):
            sdist = entry
    chosen = best or sdist
    if chosen is None:
        raise LookupError(f"no file of {req.name}=={req.version} in the lock fits the target platform")
    return chosen


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(entry: dict, dest: Path, context: ssl.SSLContext, attempts: int = 3) -> None:
    """Fetch one file into ``dest``, checking its sha256 as it streams; retried."""
    want = entry["hashes"]["sha256"].lower()
    for attempt in range(1, attempts + 1):
        try:
            digest = hashlib.sha256()
            with urllib.request.urlopen(entry["url"], timeout=120, context=context) as response:
                with open(dest, "wb") as handle:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                        handle.write(block)
            if digest.hexdigest() != want:
                raise ValueError(f"{entry['filename']}: sha256 {digest.hexdigest()} is not the lock's {want}")
            return
        except (OSError, ValueError):
            if attempt == attempts:
                raise
            time.sleep(2 * attempt)


def _manifest_ok(path: Path) -> bool:
    """A finished wheelhouse: its manifest is there and every file has its size."""
    try:
        entries = json.loads((path / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return False
    return all(
        (path / e["filename"]).is_file() and (path / e["filename"]).stat().st_size == e["size"] for e in entries
    )


def wheelhouse(
    lock_file,
    python_version: str = "3.11",
    platform: str = DEFAULT_PLATFORM,
    index: str = UPSTREAM,
    cache_root=CACHE_ROOT,
    workers: int = 6,
) -> Path:
    """
    A directory with one file per requirement of ``lock_file`` that applies on
    Linux/CPython ``python_version``/``platform`` (``uv`` included: the
    formula's pip installs it from the lock), plus ``manifest.json``.

    Downloaded once from ``index`` (PEP 691 JSON, through the machine's CA
    bundle), each file checked against the lock's hashes, into a temporary
    directory renamed into place; a file lock keeps two runs from racing.
    The directory name carries the lock's digest and the target, so a new
    lock or platform gets its own wheelhouse. Picking files by hash from the
    index, rather than with ``pip download``, keeps this machine's pip
    configuration (find-links, constraints) out of it.
    """
    lock_text = Path(lock_file).read_text(encoding="utf-8")
    digest = hashlib.sha256(lock_text.encode()).hexdigest()[:16]
    arch = _parse_platform(platform)[2]
    tag = f"cp{''.join(python_version.split('.')[:2])}-{platform}"
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_root / f"wheelhouse-{digest}-{tag}"
    with open(cache_root / f"wheelhouse-{digest}-{tag}.lock", "w") as lock_handle:
        fcntl.flock(lock_handle, fcntl.LOCK_EX)
        if _manifest_ok(final):
            return final
        if final.exists():  # a broken wheelhouse (files lost): start again
            shutil.rmtree(final)
        reqs = [r for r in parse_lock(lock_text) if applies(r, python_version, arch)]
        ranks = supported_tags(python_version, platform)
        context = ssl.create_default_context()
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache_root))
        try:
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                listings = pool.map(lambda r: _upstream_files(r.name, index, context), reqs)
                chosen = [(r, choose_file(r, files, ranks)) for r, files in zip(reqs, listings)]
                list(pool.map(lambda rc: _download(rc[1], tmp / rc[1]["filename"], context), chosen))
            manifest = _manifest(lock_text, python_version, platform, chosen, tmp)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            os.chmod(tmp, 0o755)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _manifest(lock_text: str, python_version: str, platform: str, chosen, directory: Path) -> dict:
    """What a wheelhouse holds: the lock's digest, the target, each file with its size and hash."""
    return {
        "lock_sha256": hashlib.sha256(lock_text.encode()).hexdigest(),
        "python_version": python_version,
        "platform": platform,
        "files": [
            {
                "name": r.name,
                "version": r.version,
                "filename": e["filename"],
                "sha256": e["hashes"]["sha256"].lower(),
                "size": (directory / e["filename"]).stat().st_size,
                "requires_python": e.get("requires-python") or "",
            }
            for r, e in chosen
        ],
    }


def verify(wheelhouse_dir, lock_file) -> list[str]:
    """
    Problems of a wheelhouse against a lock (empty when none): a file whose
    sha256 is none of its requirement's hashes, or a file not in the lock.
    Re-reads every file.
    """
    # By name and version: a universal lock can pin two versions (numpy < / >= 3.12).
    pins = {(r.name, r.version): r for r in parse_lock(Path(lock_file).read_text(encoding="utf-8"))}
    problems = []
    for entry in json.loads((Path(wheelhouse_dir) / MANIFEST).read_text())["files"]:
        req = pins.get((entry["name"], entry["version"]))
        actual = sha256_of(Path(wheelhouse_dir) / entry["filename"])
        if req is None:
            problems.append(f"{entry['filename']}: {entry['name']}=={entry['version']} is not in the lock")
        elif actual not in req.hashes:
            problems.append(f"{entry['filename']}: sha256 {actual} is none of the lock's hashes")
    return problems


def project_of(filename: str) -> str:
    """The project name in a wheel's or an sdist's file name."""
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)[0]
    return parse_sdist_filename(filename)[0]

"""
An offline package mirror over TLS with a test CA, for the "mirror + internal
CA" end-to-end test (issue 6).

Sites behind a package mirror and an internal CA are what the formula's
``package_index:url`` and ``ca_bundle`` pillar keys are for; this module lets a
test stand one up on the machine that runs it:

- ``make_ca(dir)`` / ``CA.issue(dir, hosts)`` (from ``pki.py``): a throw-away
  root CA and a server certificate for the mirror's addresses;
- ``wheelhouse(lock_file)``: every file the hashed lock needs on the test
  host's platform, downloaded once, checked against the lock's hashes and
  cached under /var/cache/litellm-salt;
- ``PackageIndex(wheelhouse, bind, cert, key)``: a PEP 503 "simple" index of
  that wheelhouse over HTTPS, which records every request path, so a test can
  tell the install really went through it.

Stdlib and ``cryptography`` (which Salt brings) only; ``packaging`` comes from
the venv or, failing that, from pip's vendored copy.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import html
import json
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


try:
    from packaging.markers import Marker
    from packaging.tags import Tag, compatible_tags, cpython_tags
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
except ImportError:  # pragma: no cover - only without packaging in the venv
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.tags import Tag, compatible_tags, cpython_tags
    from pip._vendor.packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from .pki import CA, make_ca  # noqa: F401 - the mirror's CA (test_offline: mirror.make_ca)
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


def _sha256(path: Path) -> str:
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
        actual = _sha256(Path(wheelhouse_dir) / entry["filename"])
        if req is None:
            problems.append(f"{entry['filename']}: {entry['name']}=={entry['version']} is not in the lock")
        elif actual not in req.hashes:
            problems.append(f"{entry['filename']}: sha256 {actual} is none of the lock's hashes")
    return problems


# --- the index ------------------------------------------------------------------------


def _project_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)[0]
    return parse_sdist_filename(filename)[0]


class _Handler(BaseHTTPRequestHandler):
    """GET/HEAD of /simple/, /simple/<project>/ and /files/<file>; nothing else."""

    protocol_version = "HTTP/1.1"  # keep-alive: uv and pip fetch ~100 files
    server: _TLSServer

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        pass  # the index keeps request paths itself; nothing on stderr

    def do_HEAD(self):
        self.do_GET(body=False)

    def do_GET(self, body=True):
        index = self.server.index
        path = urllib.parse.urlsplit(self.path).path
        index.requests.append(path)
        if path == "/simple/":
            links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(index.projects))
            return self._page(links, body)
        match = re.fullmatch(r"/simple/([^/]+)(/?)", path)
        if match:
            name, slash = match[1], match[2]
            wanted = canonicalize_name(name)
            if wanted not in index.projects:
                return self.send_error(404, f"no project {name}")
            if name != wanted or not slash:
                return self._redirect(f"/simple/{wanted}/")
            links = "".join(
                f'<a href="../../files/{urllib.parse.quote(e["filename"])}#sha256={e["sha256"]}"'
                + (f' data-requires-python="{html.escape(e["requires_python"])}"' if e["requires_python"] else "")
                + f'>{html.escape(e["filename"])}</a>\n'
                for e in index.projects[wanted]
            )
            return self._page(links, body)
        match = re.fullmatch(r"/files/([^/]+)", path)
        if match:
            entry = index.files.get(urllib.parse.unquote(match[1]))
            if entry is None:
                return self.send_error(404, "no such file")
            file_path = index.wheelhouse / entry["filename"]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(file_path.stat().st_size))
            self.end_headers()
            if body:
                with open(file_path, "rb") as handle:
                    shutil.copyfileobj(handle, self.wfile, 1 << 20)
            return None
        return self.send_error(404, "not an index path")

    def _page(self, links: str, body: bool):
        data = (
            '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
            f"<title>litellm-salt test mirror</title></head><body>\n{links}</body></html>\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _redirect(self, location: str):
        self.send_response(301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _TLSServer(ThreadingHTTPServer):
    """
    The TLS handshake happens in each request's thread (not in accept()), so
    a client that stalls or refuses the certificate holds up no one else;
    its failure lands in ``index.errors``.
    """

    daemon_threads = True
    index: PackageIndex

    def finish_request(self, request, client_address):
        request.settimeout(120)
        tls = self.index.context.wrap_socket(request, server_side=True)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request, client_address):
        self.index.errors.append(f"{client_address[0]}:{client_address[1]}: {sys.exc_info()[1]!r}")


class PackageIndex:
    """
    A PEP 503 simple index of a wheelhouse over HTTPS (TLS 1.2+), served from
    a background thread of this process. ``requests`` lists every request
    path in order, ``errors`` every failed connection (a refused certificate
    shows up here as the client's TLS alert).

        with PackageIndex(wheelhouse(lock), ("10.231.0.1", 0), cert, key) as index:
            ... install with index.url ...
            assert "/files/litellm-1.108.7-py3-none-any.whl" in index.requests
    """

    def __init__(self, wheelhouse, bind=("127.0.0.1", 0), cert=None, key=None):
        if not cert or not key:
            raise ValueError("PackageIndex serves HTTPS only: give cert and key")
        self.wheelhouse = Path(wheelhouse)
        self.bind = bind
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(str(cert), str(key))
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.files = {e["filename"]: e for e in self._entries()}
        self.projects: dict[str, list[dict]] = {}
        for entry in self.files.values():
            self.projects.setdefault(entry["name"], []).append(entry)
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None

    def _entries(self) -> list[dict]:
        """The manifest's files; without one, every distribution file in the directory."""
        manifest = self.wheelhouse / MANIFEST
        if manifest.exists():
            return json.loads(manifest.read_text())["files"]
        return [
            {"name": canonicalize_name(_project_of(p.name)), "filename": p.name, "sha256": _sha256(p),
             "requires_python": ""}
            for p in sorted(self.wheelhouse.iterdir())
            if p.name.endswith((".whl", ".tar.gz", ".zip"))
        ]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the index is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self.bind[0]
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}/simple/"

    def file_requests(self) -> list[str]:
        """Names of the files fetched so far (each time it was fetched)."""
        return [p.rsplit("/", 1)[1] for p in self.requests if p.startswith("/files/")]

    def start(self) -> PackageIndex:
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.bind[0] else socket.AF_INET
        server_class = type("_Server", (_TLSServer,), {"address_family": family})
        self._server = server_class(tuple(self.bind), _Handler)
        self._server.index = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="package-index", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> PackageIndex:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""
uv's wheel from the package index: the lock pins uv with its hashes, and a
release takes the executable out of the wheel itself (a download, a hash
check, one file out of a zip) instead of running pip for it. pip, run from
the OS's wheel, spends ~2 s of CPU importing itself from the zip on every
release (issue 17); it stays the fallback (``install`` returns False).

Pure functions (the index's page, which wheel fits), then
``install``, the one that fetches and writes. Only glibc Linux wheels are
chosen (``manylinux*``: Debian and every target the formula supports).
"""

import hashlib
import html.parser
import io
import json
import logging
import os
import re
import shutil
import ssl
import urllib.parse
import urllib.request
import zipfile

log = logging.getLogger(__name__)

LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


def _platform_ok(tag, machine, glibc):
    legacy = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", tag)
    if legacy:
        return legacy.group(2) == machine and LEGACY_MANYLINUX[legacy.group(1)] <= glibc
    modern = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", tag)
    return bool(modern) and modern.group(3) == machine and (int(modern.group(1)), int(modern.group(2))) <= glibc


def wheel_fits(filename, package, version, machine, glibc):
    """Whether ``filename`` is ``package``'s wheel of ``version`` for this glibc Linux (uv's is py3-none)."""
    parts = filename[:-4].split("-") if filename.endswith(".whl") else []
    if len(parts) not in (5, 6) or parts[0].lower().replace("_", "-") != package or parts[1] != version:
        return False
    python, abi, platforms = parts[-3:]
    return python.startswith("py3") and abi == "none" and any(
        _platform_ok(tag, machine, glibc) for tag in platforms.split("."))


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self._href = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None and data.strip():
            self.links.append((data.strip(), self._href))
            self._href = None


def index_files(body, content_type, page_url):
    """``[(filename, absolute url, sha256 or None)]`` of a PEP 503 (HTML) or PEP 691 (JSON) project page."""
    if "json" in content_type:
        files = json.loads(body).get("files", [])
        pairs = [(entry.get("filename", ""), entry.get("url", ""), (entry.get("hashes") or {}).get("sha256"))
                 for entry in files]
    else:
        parser = _Links()
        parser.feed(body)
        pairs = []
        for filename, href in parser.links:
            url, _, fragment = href.partition("#")
            pairs.append((filename, url, fragment[len("sha256="):] if fragment.startswith("sha256=") else None))
    return [(name, urllib.parse.urljoin(page_url, url), digest) for name, url, digest in pairs if name and url]


def choose(files, package, version, hashes, machine, glibc):
    """The first wheel of ``files`` that fits this machine and whose listed hash (if any) the lock pins."""
    for filename, url, digest in files:
        if wheel_fits(filename, package, version, machine, glibc) and (digest is None or digest in hashes):
            return filename, url
    return None


def project_url(index_url, package="uv"):
    return index_url.rstrip("/") + f"/{package}/"


def has_credentials(url):
    """Whether the index URL carries user:password (such an index is left to pip)."""
    return urllib.parse.urlsplit(url).username is not None


def binary_member(names, version):
    """The uv executable's path inside its wheel."""
    wanted = f"uv-{version}.data/scripts/uv"
    return wanted if wanted in names else None


def _glibc():
    """(major, minor) of the C library when it is glibc, else None."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        return (int(version.split(".")[0]), int(version.split(".")[1])) if name == "glibc" else None
    except (AttributeError, OSError, ValueError, IndexError):
        return None


def _fetch(url, context, accept=None):
    headers = {"Accept": accept} if accept else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60, context=context) as answer:
        return answer.read(), answer.headers.get("Content-Type", ""), answer.geturl()


def _uv_wheel(index, wheel, context):
    """(filename, bytes) of the pinned uv wheel that fits this machine on ``index``, or None."""
    body, content_type, page = _fetch(project_url(index), context, JSON_ACCEPT)
    files = index_files(body.decode("utf-8", "replace"), content_type, page)
    chosen = choose(files, "uv", wheel[0], wheel[1], os.uname().machine, _glibc())
    return None if chosen is None else (chosen[0], _fetch(chosen[1], context)[0])


def install(release, wheel, index_urls, ca_bundle=""):
    """
    uv's executable out of its wheel, fetched from the index and checked
    against the lock's hashes (``wheel``: ``litellm_lock.pinned`` of the
    lock's uv, a (version, sha256s) pair): True when installed so. False (pip's turn)
    when that is not possible here: an index URL with credentials (pip keeps
    them to their host), no glibc, no fitting wheel, the index unreachable.
    """
    if wheel is None or _glibc() is None or any(has_credentials(url) for url in index_urls):
        return False
    context = ssl.create_default_context(cafile=ca_bundle or None)
    for index in index_urls:
        try:
            found = _uv_wheel(index, wheel, context)
        except (OSError, ValueError) as exc:
            log.info("uv's wheel from %s: %s; pip installs uv", index, exc)
            return False
        if found is None:
            continue
        if hashlib.sha256(found[1]).hexdigest() not in wheel[1]:
            raise RuntimeError(f"{found[0]} from {index} does not match the lock's hashes of uv")
        with zipfile.ZipFile(io.BytesIO(found[1])) as archive:
            member = binary_member(archive.namelist(), wheel[0])
            if member is None:
                raise RuntimeError(f"{found[0]} from {index} has no uv executable")
            target = os.path.join(release, "bin", "uv")
            with archive.open(member) as source, open(target + ".part", "wb") as out:
                shutil.copyfileobj(source, out)
        os.chmod(target + ".part", 0o755)
        os.replace(target + ".part", target)
        return True
    return False

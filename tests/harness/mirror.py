"""
An offline package mirror over TLS with a test CA, for the "mirror + internal
CA" end-to-end test (issue 6).

Sites behind a package mirror and an internal CA are what the formula's
``package_index:url`` and ``ca_bundle`` pillar keys are for; this module lets a
test stand one up on the machine that runs it:

- ``make_ca(dir)`` / ``CA.issue(dir, hosts)`` (from ``pki.py``): a throw-away
  root CA and a server certificate for the mirror's addresses;
- ``wheelhouse(lock_file)`` (from ``lock_wheels.py``): every file the hashed
  lock needs on the test host's platform, downloaded once, checked against
  the lock's hashes and cached under /var/cache/litellm-salt;
- ``PackageIndex(wheelhouse, bind, cert, key)``: a PEP 503 "simple" index of
  that wheelhouse over HTTPS, which records every request path, so a test can
  tell the install really went through it.

Stdlib and ``cryptography`` (which Salt brings) only.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import shutil
import socket
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# the wheelhouse side, under the names the tests use (mirror.wheelhouse, mirror.MANIFEST, ...)
from .lock_wheels import (  # noqa: F401
    MANIFEST,
    applies,
    canonicalize_name,
    parse_lock,
    project_of,
    sha256_of,
    verify,
    wheelhouse,
)
from .pki import CA, make_ca  # noqa: F401 - the mirror's CA (test_offline: mirror.make_ca)


# --- the index ------------------------------------------------------------------------


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
        index.served.add(self.client_address)
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
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionResetError) and client_address in self.index.served:
            return  # a client that exits with a kept-alive connection open resets it: not a failed request
        self.index.errors.append(f"{client_address[0]}:{client_address[1]}: {error!r}")


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

    def __init__(self, house, bind=("127.0.0.1", 0), cert=None, key=None):
        if not cert or not key:
            raise ValueError("PackageIndex serves HTTPS only: give cert and key")
        self.wheelhouse = Path(house)
        self.bind = bind
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(str(cert), str(key))
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.served: set[tuple] = set()  # client (address, port) pairs answered at least once
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
            {"name": canonicalize_name(project_of(p.name)), "filename": p.name, "sha256": sha256_of(p),
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

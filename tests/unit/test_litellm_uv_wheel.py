"""Unit tests of uv's wheel out of the index (_utils/litellm_uv_wheel.py): which wheel fits, the index's
pages (PEP 503 HTML, PEP 691 JSON), and ``install`` against a real HTTP index on loopback."""

import hashlib
import http.server
import io
import json
import os
import threading
import zipfile

import pytest

from tests.conftest import SALT_UTILS

wheels = SALT_UTILS.litellm_uv_wheel
VERSION = "0.13.9"
WHEEL = f"uv-{VERSION}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
GLIBC = (2, 36)


@pytest.mark.parametrize(
    "filename, machine, glibc, fits",
    [
        (WHEEL, "x86_64", GLIBC, True),
        (WHEEL, "x86_64", (2, 12), False),  # older glibc than the wheel needs
        (WHEEL, "aarch64", GLIBC, False),
        (f"uv-{VERSION}-py3-none-manylinux_2_28_aarch64.whl", "aarch64", GLIBC, True),
        (f"uv-{VERSION}-py3-none-musllinux_1_1_x86_64.whl", "x86_64", GLIBC, False),
        ("uv-0.13.8-py3-none-manylinux_2_17_x86_64.whl", "x86_64", GLIBC, False),
        (f"uv-{VERSION}.tar.gz", "x86_64", GLIBC, False),
        (f"uv-{VERSION}-py3-none-manylinux1_x86_64.whl", "x86_64", GLIBC, True),
    ],
)
def test_only_the_pinned_glibc_wheel_of_this_machine_fits(filename, machine, glibc, fits):
    assert wheels.wheel_fits(filename, "uv", VERSION, machine, glibc) is fits


def test_both_kinds_of_index_page_give_absolute_urls_and_hashes():
    page = "https://mirror.example/simple/uv/"
    html_page = f'<a href="../../files/{WHEEL}#sha256={"a" * 64}">{WHEEL}</a><a href="/x.tar.gz">uv.tar.gz</a>'
    assert wheels.index_files(html_page, "text/html", page)[0] == (
        WHEEL, f"https://mirror.example/files/{WHEEL}", "a" * 64)
    json_page = json.dumps({"files": [{"filename": WHEEL, "url": f"https://files.example/{WHEEL}",
                                       "hashes": {"sha256": "b" * 64}}]})
    assert wheels.index_files(json_page, "application/vnd.pypi.simple.v1+json", page) == [
        (WHEEL, f"https://files.example/{WHEEL}", "b" * 64)]


def test_credentials_in_an_index_url_are_seen():
    assert wheels.has_credentials("https://u:p%40x@mirror.example:8443/simple") is True
    assert wheels.has_credentials("https://token@mirror.example/simple") is True
    assert wheels.has_credentials("https://mirror.example/simple") is False


def _wheel_bytes(executable=b"#!uv\n"):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"uv-{VERSION}.data/scripts/uv", executable)
        archive.writestr(f"uv-{VERSION}.dist-info/METADATA", "Name: uv\n")
    return buffer.getvalue()


@pytest.fixture
def index(monkeypatch):
    """A PEP 503 index of one uv wheel on loopback, which records the paths asked for."""
    served = {"wheel": _wheel_bytes(), "requests": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 -- the stdlib's name
            served["requests"].append(self.path)
            if self.path == "/simple/uv/":
                digest = hashlib.sha256(served["wheel"]).hexdigest()
                body, kind = f'<a href="../../files/{WHEEL}#sha256={digest}">{WHEEL}</a>'.encode(), "text/html"
            elif self.path == f"/files/{WHEEL}":
                body, kind = served["wheel"], "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(wheels, "_glibc", lambda: GLIBC)
    monkeypatch.setattr(wheels.os, "uname", lambda: os.uname_result(("Linux", "h", "6", "#1", "x86_64")))
    served["url"] = f"http://127.0.0.1:{server.server_address[1]}/simple"
    yield served
    server.shutdown()
    server.server_close()


def _pin(*wheel_bytes):
    """(version, sha256s) as litellm_lock.pinned gives them for the lock's uv."""
    return VERSION, {hashlib.sha256(data).hexdigest() for data in wheel_bytes}


def test_install_takes_the_executable_out_of_the_hashed_wheel(tmp_path, index):
    (tmp_path / "bin").mkdir()
    assert wheels.install(str(tmp_path), _pin(index["wheel"]), [index["url"]]) is True
    uv = tmp_path / "bin" / "uv"
    assert uv.read_bytes() == b"#!uv\n" and os.access(uv, os.X_OK)
    assert index["requests"] == ["/simple/uv/", f"/files/{WHEEL}"]


def test_a_wheel_that_does_not_match_the_lock_is_refused(tmp_path, index):
    (tmp_path / "bin").mkdir()
    pin = _pin(index["wheel"])
    index["wheel"] = _wheel_bytes(b"#!tampered\n")  # the page lists the new digest; the lock does not
    assert wheels.install(str(tmp_path), pin, [index["url"]]) is False, "no wheel with a pinned hash on the page"
    # a page that lists no digest: the download itself is checked
    index_page_without_hash = [(WHEEL, f"{index['url'][:-len('/simple')]}/files/{WHEEL}", None)]
    original = wheels.index_files
    wheels.index_files = lambda *args: index_page_without_hash
    try:
        with pytest.raises(RuntimeError, match="does not match the lock's hashes of uv"):
            wheels.install(str(tmp_path), pin, [index["url"]])
    finally:
        wheels.index_files = original
    assert not (tmp_path / "bin" / "uv").exists()


def test_pip_installs_uv_when_the_index_has_credentials_or_is_unreachable(tmp_path, index):
    (tmp_path / "bin").mkdir()
    pin = _pin(index["wheel"])
    with_credentials = index["url"].replace("http://", "http://user:secret@")
    assert wheels.install(str(tmp_path), pin, [with_credentials]) is False
    assert index["requests"] == [], "an index with credentials is left to pip, untouched"
    assert wheels.install(str(tmp_path), pin, ["http://127.0.0.1:9/simple"]) is False
    assert not (tmp_path / "bin" / "uv").exists()

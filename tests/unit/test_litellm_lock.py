"""The lock's one parser (_utils/litellm_lock.py): blocks, pins, versions, digest."""

import hashlib

from tests.conftest import REPO, load_salt_module

lock = load_salt_module("utils", "litellm_lock")
SHIPPED = (REPO / "salt/litellm/files/locks/litellm-1.108.7.txt").read_text()


def test_the_pin_of_uv_comes_from_the_shipped_lock():
    version, hashes = lock.pinned(lock.requirement_block(SHIPPED, "uv"))
    assert version == "0.13.9" and len(hashes) > 5 and all(len(h) == 64 for h in hashes)
    assert lock.pinned("uv==0.13.9\n") is None, "no hashes: no pin to check a download against"
    assert lock.pinned(None) is None


def test_a_version_stops_at_an_environment_marker_or_a_line_break():
    block = "numpy==2.5.5 ; python_full_version >= '3.12' \\\n    --hash=sha256:" + "a" * 64 + "\n"
    assert lock.pinned(block) == ("2.5.5", {"a" * 64})
    assert lock.pinned_version("uvicorn==0.54.0 \\\n    --hash=sha256:eee\n") == "0.54.0"
    assert lock.pinned_version("# a comment\n") is None


def test_the_locked_version_and_the_digest():
    assert lock.locked_version(SHIPPED) == "1.108.7"
    assert lock.locked_version(SHIPPED, "uv") == "0.13.9"
    assert lock.locked_version(SHIPPED, "no-such-package") is None
    assert lock.digest(SHIPPED) == hashlib.sha256(SHIPPED.encode()).hexdigest()

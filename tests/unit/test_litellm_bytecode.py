"""Unit tests of the compile list (_utils/litellm_bytecode.py) and of the lists shipped beside the locks."""

import hashlib

import pytest

from tests.conftest import REPO, SALT_UTILS

bytecode = SALT_UTILS.litellm_bytecode
LOCKS = sorted((REPO / "salt" / "litellm" / "files" / "locks").glob("litellm-*[0-9].txt"))
DIGEST = "ab" * 32


def test_a_list_round_trips_sorted_and_without_duplicates():
    text = bytecode.list_text("litellm-1.0.txt", DIGEST, ["b/x.py", "a.py", "b/x.py"])
    assert bytecode.parse_list(text, DIGEST) == ["a.py", "b/x.py"]
    assert "litellm-1.0.txt" in text.splitlines()[0]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("a.py\n", "names no lock digest"),
        (f"{bytecode.DIGEST_PREFIX}{'cd' * 32}\na.py\n", "was made for the lock cdcdcdcdcdcd, not abababababab"),
        (f"{bytecode.DIGEST_PREFIX}{DIGEST}\n/etc/passwd.py\n", "'/etc/passwd.py'"),
        (f"{bytecode.DIGEST_PREFIX}{DIGEST}\nlitellm/../../x.py\n", "'litellm/../../x.py'"),
        (f"{bytecode.DIGEST_PREFIX}{DIGEST}\nlitellm/data.json\n", "not a .py file"),
    ],
)
def test_a_list_for_another_lock_or_outside_site_packages_is_refused(text, problem):
    with pytest.raises(ValueError, match=None) as raised:
        bytecode.parse_list(text, DIGEST)
    assert problem in str(raised.value)


@pytest.mark.parametrize("lock", LOCKS, ids=[lock.name for lock in LOCKS])
def test_every_shipped_lock_has_its_compile_list(lock):
    """make lock writes both; a lock regenerated without its list would compile every file again."""
    listed = lock.with_name(lock.stem + bytecode.LIST_SUFFIX)
    assert listed.exists(), f"{listed.name} is missing: run make lock VERSION=..."
    paths = bytecode.parse_list(listed.read_text(), hashlib.sha256(lock.read_text().encode()).hexdigest())
    # what the supervisor, a worker and a request need, and far from every file of the lock
    for needed in ("litellm/proxy/proxy_server.py", "uvicorn/protocols/http/h11_impl.py",
                   "fastapi/routing.py", "prometheus_client/multiprocess.py"):
        assert needed in paths, needed
    assert 2000 < len(paths) < 6000

"""tests/harness/rootfs.py: the rootfs flavours and their cache keys (issue 17: the demo's host needs no Salt)."""

import json

from tests.harness import rootfs


def test_the_flavour_without_salt_has_a_key_and_name_of_its_own(tmp_path):
    tested = rootfs.rootfs_path(tmp_path, "trixie")
    bare = rootfs.rootfs_path(tmp_path, "trixie", with_salt=False)
    # the test rootfs keeps its name (CI's cached build stays valid)
    assert tested.name == f"rootfs-trixie-{rootfs.rootfs_key('trixie')}"
    assert bare.name.startswith("rootfs-trixie-nosalt-")
    assert bare.name.removeprefix("rootfs-trixie-nosalt-") != rootfs.rootfs_key("trixie")
    # without Salt, the Salt version is no part of the recipe
    assert rootfs.rootfs_key("trixie", salt="3007.1", with_salt=False) == rootfs.rootfs_key("trixie", with_salt=False)
    assert rootfs.rootfs_key("trixie", salt="3007.1") != rootfs.rootfs_key("trixie")


def test_salt_ssh_hosts_use_the_cached_test_rootfs_else_build_the_one_without_salt(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(rootfs, "build_rootfs", lambda cache_dir, suite, **kw: built.append(kw) or "built")
    assert rootfs.salt_ssh_rootfs(tmp_path, "trixie") == "built"
    assert built == [{"with_salt": False}]
    tested = rootfs.rootfs_path(tmp_path, "trixie")
    (tested / rootfs.ROOTFS_META).parent.mkdir(parents=True)
    (tested / rootfs.ROOTFS_META).write_text("{}")
    assert rootfs.salt_ssh_rootfs(tmp_path, "trixie") == tested
    assert len(built) == 1


def _fake_rootfs(cache_dir, name, suite, salt):
    meta = cache_dir / name / rootfs.ROOTFS_META
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"suite": suite, "salt": salt}))
    return cache_dir / name


def test_a_test_rootfs_build_removes_the_suites_flavour_without_salt_and_nothing_else(tmp_path, monkeypatch):
    removed = []
    monkeypatch.setattr(rootfs, "remove_tree", removed.append)
    keep = _fake_rootfs(tmp_path, "rootfs-trixie-new", "trixie", "3008.4")
    older = _fake_rootfs(tmp_path, "rootfs-trixie-old", "trixie", "3008.4")
    bare = _fake_rootfs(tmp_path, "rootfs-trixie-nosalt-x", "trixie", None)
    _fake_rootfs(tmp_path, "rootfs-trixie-salt3007", "trixie", "3007.1")
    _fake_rootfs(tmp_path, "rootfs-bookworm-nosalt-y", "bookworm", None)
    rootfs._gc_rootfs(tmp_path, keep)
    assert sorted(removed) == sorted([older, bare])


def test_a_build_without_salt_leaves_the_test_rootfs(tmp_path, monkeypatch):
    removed = []
    monkeypatch.setattr(rootfs, "remove_tree", removed.append)
    keep = _fake_rootfs(tmp_path, "rootfs-trixie-nosalt-new", "trixie", None)
    older = _fake_rootfs(tmp_path, "rootfs-trixie-nosalt-old", "trixie", None)
    _fake_rootfs(tmp_path, "rootfs-trixie-full", "trixie", "3008.4")
    rootfs._gc_rootfs(tmp_path, keep)
    assert removed == [older]

"""tests/harness/rootfs.py: the rootfs flavours and their cache keys (issue 17: the demo's host needs no Salt)."""

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

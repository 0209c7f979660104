"""Mounts of the harness: a throw-away writable tree on top of a cached rootfs
(overlayfs, or a copy), and removing trees that may still have mounts in them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .common import HarnessError, log, run_cmd, tool

ROOTFS_MODES = ("auto", "overlay", "copy")


def mounts_under(path: Path) -> list[str]:
    """Mount points (in this mount namespace) at or below path, deepest first."""
    prefix = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                mp = line.split()[4]
                mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp)  # \040
                if mp == prefix or mp.startswith(prefix.rstrip("/") + "/"):
                    found.append(mp)
    except OSError:
        pass
    return sorted(set(found), key=lambda m: m.count("/"), reverse=True)


def unmount_all(path: Path) -> None:
    for mp in mounts_under(path):
        res = run_cmd([tool("umount"), mp], check=False, timeout=60)
        if res.returncode != 0:
            log.warning("umount %s failed (%s); detaching lazily", mp, res.stderr.strip())
            run_cmd([tool("umount"), "-l", mp], check=False, timeout=60)
    left = mounts_under(path)
    if left:
        raise HarnessError(f"could not unmount {left} under {path}")


def remove_tree(path: Path) -> None:
    """rm -rf that refuses to cross into anything still mounted below path."""
    if not os.path.lexists(path):
        return
    unmount_all(path)
    run_cmd(["rm", "-rf", "--one-file-system", "--", str(path)], timeout=600)


def writable_tree(lower: Path, workspace: Path, mode: str = "auto") -> tuple[Path, str]:
    """A writable view of lower at workspace/rootfs, lower itself untouched.

    ``overlay`` mounts an overlayfs (upper and work dirs in workspace, instant);
    ``copy`` does ``cp -a --reflink=auto``; ``auto`` tries overlay, then copies.
    Returns (the tree, the mode used).  remove_tree(workspace) undoes it."""
    if mode not in ROOTFS_MODES:
        raise ValueError(f"mode must be auto, overlay or copy, not {mode!r}")
    root = workspace / "rootfs"
    root.mkdir()
    if mode in ("auto", "overlay"):
        upper, work = workspace / "upper", workspace / "work"
        upper.mkdir()
        work.mkdir()
        res = run_cmd(
            [tool("mount"), "-t", "overlay", "overlay",
             "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", root],
            check=False,
            timeout=60,
        )
        if res.returncode == 0:
            return root, "overlay"
        if mode == "overlay":
            raise HarnessError(f"overlay mount failed: {res.stderr.strip()}")
        log.info("overlay mount failed (%s); copying the rootfs", res.stderr.strip())
        upper.rmdir()
        work.rmdir()
    root.rmdir()
    run_cmd(["cp", "-a", "--reflink=auto", str(lower), str(root)], timeout=900)
    return root, "copy"

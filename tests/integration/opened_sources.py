#!/usr/bin/env python3
"""
Run inside a test host with its own python3 (stdlib only; the venv's
interpreter is the same one):

    opened_sources.py watch SITE_PACKAGES OUT   until SIGTERM: every .py file opened
                                                under SITE_PACKAGES, a line each in OUT
                                                (OUT.ready once every directory is watched)
    opened_sources.py uncompiled PATH...        those of PATH without current bytecode

Python opens a module's source only to compile it (its bytecode is missing or
stale) or to show a line of it (a traceback, a warning): an opened source with
current bytecode was not compiled. So the sources a service opened that have
no current bytecode are the ones it compiled.
"""

import ctypes
import importlib.util
import os
import signal
import struct
import sys

IN_OPEN = 0x00000020
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


def watch(site_packages, out_path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    directories = {}
    for root, dirs, _ in os.walk(site_packages):
        dirs[:] = [name for name in dirs if name != "__pycache__"]
        wd = libc.inotify_add_watch(fd, root.encode(), IN_OPEN)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {root}")
        directories[wd] = root
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with open(out_path, "a", buffering=1) as out:
        with open(out_path + ".ready", "w") as ready:
            ready.write(f"{len(directories)}\n")
        while True:
            data = os.read(fd, 65536)
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, length = EVENT.unpack_from(data, offset)
                name = data[offset + EVENT.size:offset + EVENT.size + length].rstrip(b"\0").decode()
                offset += EVENT.size + length
                if name.endswith(".py") and wd in directories:
                    out.write(os.path.join(directories[wd], name) + "\n")


def has_current_bytecode(source):
    """Its __pycache__ file is this interpreter's, for this source's mtime and size (or hash-based)."""
    try:
        with open(importlib.util.cache_from_source(source), "rb") as handle:
            header = handle.read(16)
        stat = os.stat(source)
    except OSError:
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags, mtime, size = struct.unpack("<III", header[4:16])
    if flags & 1:
        return True
    return mtime == int(stat.st_mtime) & 0xFFFFFFFF and size == stat.st_size & 0xFFFFFFFF


def main(argv):
    if argv[:1] == ["watch"] and len(argv) == 3:
        watch(argv[1], argv[2])
        return 0
    if argv[:1] == ["uncompiled"]:
        for path in sorted(set(argv[1:])):
            if not has_current_bytecode(path):
                print(path)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

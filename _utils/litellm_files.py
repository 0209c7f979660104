"""
Small file readers and private writers: what the formula's modules read from
the host, and the 0700/0600 evidence bundles they write.
"""

import json
import os


def read_text(path, limit=1 << 20):
    """The text of ``path`` (at most ``limit`` characters, bad bytes replaced); raises OSError."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(limit)


def read_bytes(path):
    """The bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_private(path, text):
    """Create ``path`` (it must not exist) with mode 0600 and ``text``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def new_private_dir(base, first_suffix=2, tries=None):
    """
    Make the directory ``base`` (0700), or ``base-<n>`` from ``first_suffix``
    on when it exists (at most ``tries`` of them); returns its path.
    """
    os.makedirs(os.path.dirname(base), mode=0o700, exist_ok=True)
    path, number = base, first_suffix
    while True:
        try:
            os.mkdir(path, 0o700)
            break
        except FileExistsError:
            if tries is not None and number >= first_suffix + tries:
                raise FileExistsError(f"{base}: too many runs in the same second") from None
            path = f"{base}-{number}"
            number += 1
    os.chmod(path, 0o700)
    return path


def write_bundle(path, document, summary):
    """``report.json`` (the ``document``) and ``summary.txt`` in the bundle directory ``path``, 0600 each."""
    write_private(os.path.join(path, "report.json"), json.dumps(document, indent=2, sort_keys=False) + "\n")
    write_private(os.path.join(path, "summary.txt"), summary)

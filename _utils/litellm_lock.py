"""
The hashed lock's text (``make lock``): its digest, one package's
requirement block, and what a block pins. Pure functions; the one parser
of the lock for the venv builder and uv's wheel.
"""

import hashlib
import re

_PIN = re.compile(r"\s*[\w.-]+==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def digest(lock_text):
    """sha256 of a lock file's text."""
    return hashlib.sha256(lock_text.encode()).hexdigest()


def requirement_block(lock_text, package):
    """
    The lines of one package (``name==version`` and its ``--hash`` lines) in
    a hashed lock, as a requirements text; None when it is not there.
    """
    block = []
    for line in lock_text.splitlines():
        stripped = line.strip()
        if block:
            if stripped.startswith("--hash"):
                block.append(stripped.rstrip("\\").strip())
                continue
            break
        name = stripped.split("==", 1)[0].split("[", 1)[0].strip().lower()
        if "==" in stripped and name == package:
            block.append(stripped.rstrip("\\").strip())
    if not block:
        return None
    return " \\\n    ".join(block) + "\n"


def pinned_version(block):
    """The version a requirement block pins (``name==version``), or None."""
    found = _PIN.match(block or "")
    return found.group(1) if found else None


def pinned(block):
    """(version, {sha256, ...}) of a requirement block, or None without a version or a hash."""
    version, hashes = pinned_version(block), set(_HASH.findall(block or ""))
    return (version, hashes) if version and hashes else None


def locked_version(lock_text, package="litellm"):
    """The version a hashed lock pins for ``package``, or None."""
    return pinned_version(requirement_block(lock_text, package))

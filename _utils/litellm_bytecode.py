"""
The bytecode a release compiles, as pure functions: the lock's compile list
(``locks/litellm-<version>.compile.txt``, written by ``make lock``) names the
files the proxy compiles from source at start and at its first requests
(``scripts/compile_list.py`` records them from a real run of the unit's
launcher). A release compiles those, in parallel, instead of the lock's every
file: the service, which runs read-only with PYTHONDONTWRITEBYTECODE, still
finds the bytecode of everything it imports, and the install compiles ~1/3
of the source (issue 17).

A list that does not name the lock's digest is not used: the release then
compiles every file, as before.
"""

LIST_SUFFIX = ".compile.txt"
DIGEST_PREFIX = "# lock sha256: "  # then the lock's digest, as litellm_lock.digest


def list_text(lock_name, digest, relative_paths):
    """A compile list: its header (lock, digest, how to regenerate) and the paths, sorted, one a line."""
    header = [
        f"# The files the proxy of {lock_name} compiles at start and at its first requests,",
        "# relative to the venv's site-packages; a release compiles these (not every file).",
        "# Written by scripts/compile_list.py (make lock). Regenerate with the lock.",
        f"{DIGEST_PREFIX}{digest}",
    ]
    return "\n".join(header + sorted(set(relative_paths))) + "\n"


def parse_list(text, digest):
    """
    The relative paths of a compile list made for the lock of ``digest``.
    Raises ValueError naming the problem: another lock's list, no digest, or
    a path that leaves site-packages.
    """
    named = [line[len(DIGEST_PREFIX):].strip() for line in text.splitlines() if line.startswith(DIGEST_PREFIX)]
    if not named:
        raise ValueError("names no lock digest")
    if named[0] != digest:
        raise ValueError(f"was made for the lock {named[0][:12]}, not {digest[:12]}")
    paths = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for path in paths:
        if path.startswith("/") or ".." in path.split("/") or not path.endswith(".py"):
            raise ValueError(f"has {path!r}, which is not a .py file inside site-packages")
    return paths


"""Disposable systemd hosts for integration tests (stdlib only): the public face.

A *host* is a Debian rootfs booted with ``systemd-nspawn -b`` that runs a real
systemd as PID 1 and an sshd, on the machine's network (``127.0.0.1:<port>``)
or in a network namespace of its own (``network="veth"``).  Tests deploy the
formula to it (``salt-call --local`` inside, or salt-ssh from outside) and
inspect the result.

One concern a module (import from here; the modules are the implementation):

* ``rootfs.py``     :func:`build_rootfs` debootstraps a minbase rootfs of a suite
  (default trixie, Debian 13; bookworm on demand) with systemd, sshd, python3 and
  Salt in ``/opt/salt`` once, cached under ``cache_dir`` by suite and recipe hash;
  ``wheelhouse.py`` builds its Salt wheels; :func:`salt_ssh_rootfs` is the one for
  hosts only salt-ssh deploys to (the demo): no Salt needed, unless already cached.
* ``instance.py``   :class:`SystemdHost` boots a throw-away instance of it (overlay
  on top of the cached tree, or a copy; ``mounts.py``), runs commands in it with
  nsenter, stops it; ``cleanup.py`` tears instances down, :func:`reap_stale`
  also those a crashed run left behind.
* ``network.py``    the veth network namespace, NAT, cutting and restoring the link.
* ``ssh.py``        sshd in the host, keys, ssh argv, the salt-ssh roster.
* ``cli.py``        ``python -m tests.harness.systemd_host build|up|down|reap``.

Requirements: root, ``debootstrap``, ``systemd-nspawn`` (systemd-container),
``nsenter``/``unshare`` (util-linux), ``ssh``/``ssh-keygen`` (openssh-client),
``ip`` (iproute2), ``nft`` (nftables).

Environment knobs:

``LITELLM_SALT_VERSION``         Salt version installed in the rootfs (3008.4).
``LITELLM_DEBIAN_MIRROR``        Debian mirror (default: the host's apt config).
``LITELLM_HARNESS_CACHE``        default cache dir (/var/cache/litellm-salt).
``LITELLM_HARNESS_WORKROOT``     default parent of instance workdirs.
``LITELLM_HARNESS_ROOTFS_MODE``  ``overlay`` | ``copy`` | ``auto`` (default).
``LITELLM_HARNESS_CA_BUNDLE``    host CA bundle bind-mounted into hosts.
``LITELLM_HARNESS_PYTHON``       host CPython of the tools venv; the salt
                                 wheelhouse is built with it when it matches the
                                 rootfs's python3 X.Y, else inside the rootfs.
"""

from __future__ import annotations

import sys

from .cleanup import DEFAULT_WORKROOT, reap_stale
from .cli import main
from .common import CONTAINER_PATH, HOST_CA_BUNDLE, CommandError, HarnessError, check_prerequisites, log
from .instance import CONTAINER_CA_BUNDLE, SystemdHost
from .network import NET_PREFIX, net_addresses
from .rootfs import (
    DEFAULT_CACHE_DIR,
    DEFAULT_SALT_VERSION,
    DEFAULT_SUITE,
    MASKED_UNITS,
    ROOTFS_PACKAGES,
    build_rootfs,
    debian_mirror,
    rootfs_key,
    rootfs_meta,
    salt_ssh_rootfs,
    salt_version,
)

__all__ = [
    "CONTAINER_CA_BUNDLE",
    "CONTAINER_PATH",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_SALT_VERSION",
    "DEFAULT_SUITE",
    "DEFAULT_WORKROOT",
    "HOST_CA_BUNDLE",
    "MASKED_UNITS",
    "NET_PREFIX",
    "ROOTFS_PACKAGES",
    "CommandError",
    "HarnessError",
    "SystemdHost",
    "build_rootfs",
    "check_prerequisites",
    "debian_mirror",
    "log",
    "main",
    "net_addresses",
    "reap_stale",
    "rootfs_key",
    "rootfs_meta",
    "salt_ssh_rootfs",
    "salt_version",
]

if __name__ == "__main__":
    sys.exit(main())

"""
The controller keeps no job cache (etc/salt/master: ``master_job_cache:
litellm_no_job_cache``): salt-ssh's default cache writes every return, the
decrypted pillar of ``pillar.items`` among them, to files 0644. The real
salt-ssh, with the shipped controller config, against a target that refuses
the connection (salt-ssh caches that return as any other).
"""

import os
import subprocess
import sys
from pathlib import Path

import salt.utils.yaml

from tests.conftest import REPO

SALT_SSH = str(Path(sys.executable).parent / "salt-ssh")


def _controller(root, config_dir, **overrides):
    """The repository root as salt-ssh sees it (the returner, the state tree), with the shipped master config."""
    (root / config_dir).mkdir(parents=True)
    master = salt.utils.yaml.safe_load((REPO / "etc/salt/master").read_text())
    master.update(overrides)
    (root / config_dir / "master").write_text(salt.utils.yaml.safe_dump(master))
    for name in ("_returners", "_wrapper", "salt"):
        if not (root / name).exists():
            (root / name).symlink_to(REPO / name)
    (root / "pillar").mkdir(exist_ok=True)
    (root / "roster").write_text("refusing:\n  host: 127.0.0.1\n  port: 1\n  user: root\n")


def _salt_ssh(root, config_dir):
    run = subprocess.run([SALT_SSH, "-c", config_dir, "--roster-file", "roster", "-i", "refusing", "test.ping"],
                         cwd=root, capture_output=True, text=True, timeout=120, check=False,
                         preexec_fn=lambda: os.umask(0o022))  # an operator's usual umask
    assert "Connection refused" in run.stdout + run.stderr, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    return [os.path.join(d, f) for d, _dirs, files in os.walk(root / ".salt-ssh") if "jobs" in d for f in files]


def test_salt_ssh_keeps_no_job_on_the_controller(tmp_path):
    _controller(tmp_path, "etc/salt")
    assert _salt_ssh(tmp_path, "etc/salt") == []
    # the control, same cachedir: Salt's default job cache keeps each return, world-readable
    _controller(tmp_path, "etc/salt-default", master_job_cache="local_cache")
    cached = _salt_ssh(tmp_path, "etc/salt-default")
    assert cached, "local_cache wrote no job"
    assert any(os.stat(path).st_mode & 0o004 for path in cached), [oct(os.stat(p).st_mode) for p in cached]

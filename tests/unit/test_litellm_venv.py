"""Unit tests of litellm_venv: the lock helpers and the install steps (commands mocked)."""

import os
from unittest.mock import MagicMock

import pytest

from tests.conftest import REPO, load_salt_module

litellm_venv = load_salt_module("modules", "litellm_venv")

LOCK = """# a lock
anyio==4.9.0 \\
    --hash=sha256:aaa \\
    --hash=sha256:bbb
    # via httpx
uv==0.13.9 \\
    --hash=sha256:ccc \\
    --hash=sha256:ddd
    # via -r requirements.in
uvicorn==0.54.0 \\
    --hash=sha256:eee
"""


@pytest.fixture
def run_all():
    return MagicMock(return_value={"retcode": 0, "stdout": "", "stderr": ""})


@pytest.fixture
def configure_loader_modules(run_all):
    return {litellm_venv: {"__salt__": {"cmd.run_all": run_all}, "__opts__": {"test": False}}}


def test_requirement_block_takes_one_package_with_its_hashes():
    assert litellm_venv.requirement_block(LOCK, "uv") == (
        "uv==0.13.9 \\\n    --hash=sha256:ccc \\\n    --hash=sha256:ddd\n"
    )
    assert litellm_venv.requirement_block(LOCK, "uvicorn") == "uvicorn==0.54.0 \\\n    --hash=sha256:eee\n"
    assert litellm_venv.requirement_block(LOCK, "pip") is None


def test_shipped_lock_pins_uv_and_litellm_with_hashes():
    text = (REPO / "salt/litellm/files/locks/litellm-1.108.7.txt").read_text()
    assert litellm_venv.requirement_block(text, "uv").count("--hash=sha256:") >= 1
    assert litellm_venv.requirement_block(text, "litellm").startswith("litellm==1.108.7")
    assert litellm_venv.requirement_block(text, "prisma") is not None


def test_installer_env_keeps_credentials_out_of_argv():
    env = litellm_venv.installer_env("https://u:p@mirror/simple", ["https://extra/simple"], "/etc/ca.pem")
    assert env["UV_INDEX_URL"] == env["PIP_INDEX_URL"] == "https://u:p@mirror/simple"
    assert env["UV_EXTRA_INDEX_URL"] == "https://extra/simple"
    assert env["SSL_CERT_FILE"] == env["PIP_CERT"] == "/etc/ca.pem"
    assert env["UV_NATIVE_TLS"] == "1"
    assert "UV_INDEX_URL" not in litellm_venv.installer_env()


def test_status_compares_the_recorded_digest(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    assert litellm_venv.status(str(venv), str(lock))["installed"] is False
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "litellm").write_text("")
    (venv / litellm_venv.MARKER).write_text(litellm_venv.lock_digest(LOCK) + "\n")
    assert litellm_venv.status(str(venv), str(lock))["installed"] is True
    lock.write_text(LOCK + "extra==1.0\n")
    assert litellm_venv.status(str(venv), str(lock))["installed"] is False


@pytest.mark.parametrize("bundled_wheel", [True, False], ids=["pip-wheel-of-the-os", "ensurepip"])
def test_install_creates_bootstraps_syncs_then_records(tmp_path, run_all, monkeypatch, bundled_wheel):
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    wheel = tmp_path / "python-wheels" / "pip-23.0.1-py3-none-any.whl"
    if bundled_wheel:
        wheel.parent.mkdir()
        wheel.write_text("")
    monkeypatch.setattr(litellm_venv, "PIP_WHEEL_GLOB", str(tmp_path / "python-wheels" / "pip-*.whl"))

    def fake(argv, **kwargs):
        if argv[1:3] == ["-m", "venv"]:
            (venv / "bin").mkdir(parents=True)
            (venv / "bin" / "python").write_text("")
        if "--require-hashes" in argv and "install" in argv and "sync" not in argv:
            (venv / "bin" / "uv").write_text("")
        if "sync" in argv:
            (venv / "bin" / "litellm").write_text("")
        assert all("u:p@" not in part for part in argv)
        return {"retcode": 0, "stdout": "", "stderr": ""}

    run_all.side_effect = fake
    result = litellm_venv.install(str(venv), str(lock), index_url="https://u:p@mirror/simple")
    steps = [call.args[0] for call in run_all.call_args_list]
    assert steps.pop(0)[1:] == ["-m", "venv", "--without-pip", str(venv)]
    if bundled_wheel:
        assert steps[0][1:6] == [f"{wheel}/pip", "install", "-q", "--require-hashes", "--no-deps"]
    else:
        assert steps.pop(0)[1:] == ["-m", "ensurepip", "--default-pip"]
        assert steps[0][1:7] == ["-m", "pip", "install", "-q", "--require-hashes", "--no-deps"]
    assert steps[1][:3] == [str(venv / "bin" / "uv"), "pip", "sync"]
    assert "--compile-bytecode" in steps[1] and "--require-hashes" in steps[1]
    assert run_all.call_args_list[-1].kwargs["env"]["UV_INDEX_URL"] == "https://u:p@mirror/simple"
    assert result["installed"] is True


def test_failed_install_records_nothing_and_says_why(tmp_path, run_all):
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "uv"):
        (venv / "bin" / name).write_text("")
    run_all.return_value = {"retcode": 2, "stdout": "", "stderr": "error: hash mismatch for anyio"}
    with pytest.raises(RuntimeError, match="hash mismatch for anyio"):
        litellm_venv.install(str(venv), str(lock))
    assert not os.path.exists(venv / litellm_venv.MARKER)

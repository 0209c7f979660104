"""Unit tests of litellm_venv: the lock helpers and the install steps (commands mocked)."""

import os
import subprocess
import sys
from unittest.mock import MagicMock

import pytest

from tests.conftest import REPO, SALT_UTILS, load_salt_module

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


@pytest.fixture(autouse=True)
def uv_wheel(monkeypatch):
    """uv out of its wheel (litellm_uv_wheel.install, tested on its own): not reached here, pip's turn."""
    calls = []

    def install(release, wheel, index_urls, ca_bundle=""):
        calls.append((release, wheel, index_urls, ca_bundle))
        return False

    monkeypatch.setattr(SALT_UTILS.litellm_uv_wheel, "install", install)
    return calls


@pytest.fixture
def configure_loader_modules(run_all):
    return {litellm_venv: {"__salt__": {"cmd.run_all": run_all}, "__opts__": {"test": False}, "__utils__": SALT_UTILS}}


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


def test_pip_trusts_the_system_store_where_a_site_ca_is_installed():
    assert litellm_venv.installer_env()["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"


def test_release_name_is_the_version_and_the_lock_digest():
    lock = "litellm==1.108.7 \\\n    --hash=sha256:00\n" + LOCK
    assert litellm_venv.locked_version(lock) == "1.108.7"
    assert litellm_venv.release_name(lock) == "1.108.7-" + litellm_venv.lock_digest(lock)[:12]
    assert litellm_venv.release_name(LOCK).startswith("unknown-")
    assert litellm_venv.releases_dir("/opt/litellm/venv/") == "/opt/litellm/venv-releases"


def _fake_release(path, digest):
    (path / "bin").mkdir(parents=True)
    for name in ("python", "litellm"):
        (path / "bin" / name).write_text("")
    (path / litellm_venv.MARKER).write_text(digest + "\n")


def test_status_compares_the_digest_of_the_active_release(tmp_path):
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    assert litellm_venv.status(str(venv), str(lock))["installed"] is False
    release = tmp_path / "venv-releases" / litellm_venv.release_name(LOCK)
    _fake_release(release, litellm_venv.lock_digest(LOCK))
    venv.symlink_to(release)
    status = litellm_venv.status(str(venv), str(lock))
    assert status["installed"] is True
    assert status["active"] == status["release"] == str(release)
    lock.write_text(LOCK + "extra==1.0\n")
    status = litellm_venv.status(str(venv), str(lock))
    assert status["installed"] is False
    assert status["release"] != str(release)


def test_a_venv_installed_in_place_still_counts_as_installed(tmp_path):
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    _fake_release(tmp_path / "venv", litellm_venv.lock_digest(LOCK))
    assert litellm_venv.status(str(tmp_path / "venv"), str(lock))["installed"] is True


def _fake_installer(release):
    def fake(argv, **kwargs):
        if argv[1:3] == ["-m", "venv"]:
            (release / "bin").mkdir(parents=True)
            (release / "bin" / "python").write_text("")
        if "--require-hashes" in argv and "install" in argv and "sync" not in argv:
            (release / "bin" / "uv").write_text("")
        if "sync" in argv:
            (release / "bin" / "litellm").write_text("")
        assert all("u:p@" not in part for part in argv)
        return {"retcode": 0, "stdout": "", "stderr": ""}

    return fake


@pytest.mark.parametrize("bundled_wheel", [True, False], ids=["pip-wheel-of-the-os", "ensurepip"])
def test_install_builds_a_release_checks_it_then_switches_the_symlink(tmp_path, run_all, monkeypatch, bundled_wheel):
    wheel = tmp_path / "python-wheels" / "pip-23.0.1-py3-none-any.whl"
    if bundled_wheel:
        wheel.parent.mkdir()
        wheel.write_text("")
    monkeypatch.setattr(litellm_venv, "PIP_WHEEL_GLOB", str(tmp_path / "python-wheels" / "pip-*.whl"))
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    old = tmp_path / "venv-releases" / "old"
    _fake_release(old, "0" * 64)
    venv.symlink_to(old)
    release = tmp_path / "venv-releases" / litellm_venv.release_name(LOCK)
    run_all.side_effect = _fake_installer(release)
    result = litellm_venv.install(str(venv), str(lock), index_url="https://u:p@mirror/simple")
    steps = [call.args[0] for call in run_all.call_args_list]
    assert steps.pop(0)[1:] == ["-m", "venv", "--without-pip", str(release)]
    if bundled_wheel:
        assert steps[0][1:6] == [f"{wheel}/pip", "install", "-q", "--require-hashes", "--no-deps"]
    else:
        assert steps.pop(0)[1:] == ["-m", "ensurepip", "--default-pip"]
        assert steps[0][1:7] == ["-m", "pip", "install", "-q", "--require-hashes", "--no-deps"]
    assert steps[1][:3] == [str(release / "bin" / "uv"), "pip", "sync"]
    assert "--compile-bytecode" in steps[1] and "--require-hashes" in steps[1]
    assert steps[2][1:] == ["-c", litellm_venv.VERIFY_IMPORT]
    # offline, as the service imports it: no fetch of the cost map from GitHub, no ~7 s of retries
    assert run_all.call_args_list[-1].kwargs["env"]["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert run_all.call_args_list[-1].kwargs["env"]["UV_INDEX_URL"] == "https://u:p@mirror/simple"
    assert result["installed"] is True and result["built"] is True
    # each step timed, for the state's comment and bench/deploy.py
    assert set(result["seconds"]) == {"venv and uv", "packages and bytecode", "import check"}
    assert result["uv_from"] == "pip"
    assert result["previous"] == str(old)
    assert os.readlink(venv) == str(release)
    assert (release / "requirements.lock").read_text() == LOCK
    assert old.exists(), "the previous release is kept for a rollback"
    # the same lock again: nothing is built, nothing run
    run_all.reset_mock()
    assert litellm_venv.install(str(venv), str(lock))["built"] is False
    assert run_all.call_count == 0


def test_a_first_install_leaves_the_import_check_to_the_config_check(tmp_path, run_all, monkeypatch):
    """Nothing serves yet: the config check that follows imports the proxy from the new release."""
    monkeypatch.setattr(litellm_venv, "PIP_WHEEL_GLOB", str(tmp_path / "none" / "pip-*.whl"))
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    release = tmp_path / "venv-releases" / litellm_venv.release_name(LOCK)
    run_all.side_effect = _fake_installer(release)
    result = litellm_venv.install(str(tmp_path / "venv"), str(lock))
    steps = [call.args[0] for call in run_all.call_args_list]
    assert not any(litellm_venv.VERIFY_IMPORT in step for step in steps)
    assert set(result["seconds"]) == {"venv and uv", "packages and bytecode"}
    assert result["installed"] is True and result["previous"] is None


def _listing_installer(release, compiled):
    """The fake installer, whose sync also lays out a site-packages, and which keeps the compile step's list."""
    fake = _fake_installer(release)

    def run(argv, **kwargs):
        if "sync" in argv:
            site_packages = release / "lib" / "python3.13" / "site-packages"
            (site_packages / "pkg").mkdir(parents=True)
            for name in ("pkg/__init__.py", "pkg/used.py", "pkg/unused.py"):
                (site_packages / name).write_text("")
        if argv[1:3] == ["-c", litellm_venv.COMPILE_LISTED]:
            compiled.extend(open(argv[3]).read().split())
        return fake(argv, **kwargs)

    return run


@pytest.mark.parametrize("made_for_this_lock", [True, False])
def test_a_compile_list_of_the_lock_compiles_only_its_files(tmp_path, run_all, made_for_this_lock, caplog):
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    digest = litellm_venv.lock_digest(LOCK) if made_for_this_lock else "0" * 64
    listed = tmp_path / "litellm.compile.txt"
    # pkg/gone.py: a file this Python's release does not have (another platform's, say)
    listed.write_text(SALT_UTILS.litellm_bytecode.list_text("litellm.lock", digest,
                                                            ["pkg/__init__.py", "pkg/used.py", "pkg/gone.py"]))
    release = tmp_path / "venv-releases" / litellm_venv.release_name(LOCK)
    compiled = []
    run_all.side_effect = _listing_installer(release, compiled)
    result = litellm_venv.install(str(tmp_path / "venv"), str(lock), compile_list=str(listed))
    sync = next(call.args[0] for call in run_all.call_args_list if "sync" in call.args[0])
    site_packages = release / "lib" / "python3.13" / "site-packages"
    if made_for_this_lock:
        assert "--compile-bytecode" not in sync
        assert compiled == [str(site_packages / "pkg/__init__.py"), str(site_packages / "pkg/used.py")]
        assert set(result["seconds"]) == {"venv and uv", "packages", "bytecode"}
    else:
        assert "--compile-bytecode" in sync and compiled == []
        assert set(result["seconds"]) == {"venv and uv", "packages and bytecode"}
        assert "was made for the lock 000000000000" in caplog.text
    assert result["installed"] is True


def test_the_compile_step_compiles_the_listed_files_and_fails_on_a_bad_one(tmp_path):
    """COMPILE_LISTED with this Python: bytecode for the listed files only, exit 1 when one does not compile."""
    for name, source in (("listed.py", "X = 1\n"), ("other.py", "Y = 2\n"), ("broken.py", "def (:\n")):
        (tmp_path / name).write_text(source)
    paths = tmp_path / "paths.txt"
    paths.write_text(f"{tmp_path / 'listed.py'}\n")
    done = subprocess.run([sys.executable, "-c", litellm_venv.COMPILE_LISTED, str(paths)], capture_output=True)
    assert done.returncode == 0, done.stderr
    cached = sorted(path.name.split(".")[0] for path in (tmp_path / "__pycache__").iterdir())
    assert cached == ["listed"]
    paths.write_text(f"{tmp_path / 'listed.py'}\n{tmp_path / 'broken.py'}\n")
    done = subprocess.run([sys.executable, "-c", litellm_venv.COMPILE_LISTED, str(paths)], capture_output=True,
                          text=True)
    assert done.returncode == 1 and "broken.py" in done.stdout


def test_uv_out_of_its_wheel_runs_no_pip(tmp_path, run_all, uv_wheel, monkeypatch):
    text = LOCK.replace("sha256:ccc", "sha256:" + "c" * 64).replace("sha256:ddd", "sha256:" + "d" * 64)
    lock = tmp_path / "litellm.lock"
    lock.write_text(text)
    release = tmp_path / "venv-releases" / litellm_venv.release_name(text)
    fake = _fake_installer(release)

    def installed_by_wheel(release_dir, wheel, index_urls, ca_bundle=""):
        uv_wheel.append((release_dir, wheel, index_urls, ca_bundle))
        (release / "bin" / "uv").write_text("")
        return True

    monkeypatch.setattr(SALT_UTILS.litellm_uv_wheel, "install", installed_by_wheel)
    run_all.side_effect = fake
    result = litellm_venv.install(str(tmp_path / "venv"), str(lock), index_url="https://mirror/simple",
                                  ca_bundle="/ca.pem")
    assert result["uv_from"] == "its wheel"
    steps = [call.args[0] for call in run_all.call_args_list]
    assert not any("pip" in str(part) and "install" in step for step in steps for part in step[:2])
    assert [step[1:3] for step in steps[:1]] == [["-m", "venv"]] and "sync" in steps[1]
    # the lock's pin of uv, as its one parser (litellm_lock) reads it
    assert uv_wheel == [(str(release), ("0.13.9", {"c" * 64, "d" * 64}), ["https://mirror/simple"], "/ca.pem")]


def test_without_an_index_in_the_pillar_uv_comes_from_pypi(tmp_path, run_all, uv_wheel):
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    run_all.side_effect = _fake_installer(tmp_path / "venv-releases" / litellm_venv.release_name(LOCK))
    litellm_venv.install(str(tmp_path / "venv"), str(lock))
    assert uv_wheel[0][2] == [litellm_venv.DEFAULT_INDEX]


def test_a_release_already_on_disk_is_switched_to_without_a_build(tmp_path, run_all):
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    kept = tmp_path / "venv-releases" / litellm_venv.release_name(LOCK)
    _fake_release(kept, litellm_venv.lock_digest(LOCK))
    other = tmp_path / "venv-releases" / "other"
    _fake_release(other, "1" * 64)
    venv.symlink_to(other)
    result = litellm_venv.install(str(venv), str(lock))
    assert run_all.call_count == 0
    assert result["built"] is False and os.readlink(venv) == str(kept)


def test_a_failed_check_leaves_the_symlink_where_it_was(tmp_path, run_all):
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    old = tmp_path / "venv-releases" / "old"
    _fake_release(old, "0" * 64)
    venv.symlink_to(old)
    release = tmp_path / "venv-releases" / litellm_venv.release_name(LOCK)
    installer = _fake_installer(release)

    def fail_the_import(argv, **kwargs):
        if argv[1:] == ["-c", litellm_venv.VERIFY_IMPORT]:
            return {"retcode": 1, "stdout": "", "stderr": "ModuleNotFoundError: No module named 'fastapi'"}
        return installer(argv, **kwargs)

    run_all.side_effect = fail_the_import
    with pytest.raises(RuntimeError, match="No module named 'fastapi'"):
        litellm_venv.install(str(venv), str(lock))
    assert os.readlink(venv) == str(old)
    assert not (release / litellm_venv.MARKER).exists()


def test_a_venv_in_place_moves_into_the_releases_when_replaced(tmp_path, run_all):
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    _fake_release(venv, "2" * 64)
    release = tmp_path / "venv-releases" / litellm_venv.release_name(LOCK)
    run_all.side_effect = _fake_installer(release)
    result = litellm_venv.install(str(venv), str(lock))
    assert os.readlink(venv) == str(release)
    assert result["previous"] == str(tmp_path / "venv-releases" / ("in-place-" + "2" * 31))
    assert os.path.exists(os.path.join(result["previous"], "bin", "litellm"))


def test_prune_keeps_the_active_release_and_those_asked_for(tmp_path):
    venv = tmp_path / "venv"
    root = tmp_path / "venv-releases"
    for name in ("a", "b", "c"):
        _fake_release(root / name, name * 64)
    venv.symlink_to(root / "c")
    assert litellm_venv.prune(str(venv), keep=[str(root / "a")]) == [str(root / "b")]
    assert sorted(os.listdir(root)) == ["a", "c"]


def test_failed_install_records_nothing_and_says_why(tmp_path, run_all):
    lock = tmp_path / "litellm.lock"
    lock.write_text(LOCK)
    venv = tmp_path / "venv"
    run_all.return_value = {"retcode": 2, "stdout": "", "stderr": "error: hash mismatch for anyio"}
    with pytest.raises(RuntimeError, match="hash mismatch for anyio"):
        litellm_venv.install(str(venv), str(lock))
    assert not os.path.lexists(venv)


@pytest.mark.parametrize(
    ("wheel", "urls", "legacy"),
    [
        ("/usr/share/python-wheels/pip-25.1.1-py3-none-any.whl", ["https://10.231.0.1:8443/simple"], True),
        ("/usr/share/python-wheels/pip-25.1.1-py3-none-any.whl", ["", "https://[fd00::1]/simple"], True),
        ("/usr/share/python-wheels/pip-25.1.1-py3-none-any.whl", ["https://mirror.internal/simple"], False),
        ("/usr/share/python-wheels/pip-25.1.1-py3-none-any.whl", ["http://10.0.0.1/simple"], False),
        ("/usr/share/python-wheels/pip-25.1.1-py3-none-any.whl", [""], False),  # PyPI
        ("/usr/share/python-wheels/pip-24.2-py3-none-any.whl", ["https://10.0.0.1/simple"], True),
        ("/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl", ["https://10.0.0.1/simple"], False),  # bookworm
        ("/somewhere/pip.whl", ["https://10.0.0.1/simple"], False),
    ],
)
def test_pip_from_24_2_verifies_an_index_at_an_ip_address_the_legacy_way(wheel, urls, legacy):
    version = litellm_venv._pip_wheel_version(wheel)
    assert litellm_venv._pip_legacy_certs(version, urls) is legacy

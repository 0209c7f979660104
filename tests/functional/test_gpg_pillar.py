"""
How the secret pillar is made and read: scripts/encrypt-secret.sh encrypts the
master key for the controller's GPG key; Salt's gpg renderer decrypts it.
"""

import subprocess

import pytest
from saltfactories.utils.functional import Loaders

from tests.conftest import REPO, merged, reference_pillar
from tests.harness import site


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory):
    return site.make_gpg_home(tmp_path_factory.mktemp("gpg") / "keys")


@pytest.fixture(scope="module")
def gpg_loaders(minion_opts, gpg_home):
    opts = dict(minion_opts, gpg_keydir=str(gpg_home), gpg_decrypt_must_succeed=True)
    return Loaders(opts)


def _encrypt_secret(gpg_home, key):
    return subprocess.run(
        [str(REPO / "scripts/encrypt-secret.sh"), "--homedir", str(gpg_home), "--recipient", site.GPG_UID, "--stdin"],
        input=key + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_encrypted_secret_file_decrypts_with_the_gpg_renderer(gpg_loaders, gpg_home, tmp_path):
    key = site.new_master_key()
    text = _encrypt_secret(gpg_home, key)
    assert text.startswith("#!yaml|gpg\n")
    assert key not in text and "-----BEGIN PGP MESSAGE-----" in text
    path = tmp_path / "litellm_secrets.sls"
    path.write_text(text)
    rendered = gpg_loaders.modules.slsutil.renderer(path=str(path))
    assert rendered == {"litellm": {"master_key": key}}


def test_generated_key_is_random_and_valid(gpg_loaders, gpg_home, tmp_path):
    texts = [
        subprocess.run(
            [str(REPO / "scripts/encrypt-secret.sh"), "--homedir", str(gpg_home), "--recipient", site.GPG_UID],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    keys = []
    for index, text in enumerate(texts):
        path = tmp_path / f"secrets{index}.sls"
        path.write_text(text)
        keys.append(gpg_loaders.modules.slsutil.renderer(path=str(path))["litellm"]["master_key"])
    assert keys[0] != keys[1]
    for key in keys:
        assert key.startswith("sk-") and len(key) == 51
        settings = merged(reference_pillar(), {"master_key": key})
        assert gpg_loaders.modules.litellm_config.validate(settings=settings) == {"valid": True, "errors": []}


def test_undecryptable_secret_fails_instead_of_passing_ciphertext(gpg_loaders, tmp_path):
    other_home = site.make_gpg_home(tmp_path / "other")
    path = tmp_path / "litellm_secrets.sls"
    path.write_text(_encrypt_secret(other_home, site.new_master_key()))
    with pytest.raises(Exception, match="(?i)decrypt"):
        gpg_loaders.modules.slsutil.renderer(path=str(path))


def test_encrypt_secret_refuses_a_key_without_the_prefix(gpg_home):
    proc = subprocess.run(
        [str(REPO / "scripts/encrypt-secret.sh"), "--homedir", str(gpg_home), "--recipient", site.GPG_UID, "--stdin"],
        input="not-a-key\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "starts with sk-" in proc.stderr
    assert "not-a-key" not in proc.stdout

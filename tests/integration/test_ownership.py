"""
Ownership on the real systemd host: the formula never takes over, changes or
removes what it did not create. The container has what every Debian host has
(ssh.service, the www-data user, /etc/ssh); a pillar that would take one of
them over is refused before anything changes, and litellm.clean removes what
the formula's record lists, whatever pillar says at clean time.
"""

import copy
import json

import pytest

from .conftest import settings_with

pytestmark = pytest.mark.integration

RECORD = "/var/lib/litellm-salt/owned.json"
# What a takeover could touch: every path of these trees (owner, mode, size),
# the units, the accounts. Not the backups useradd and userdel keep of the
# account files (/etc/passwd- ...): their content is compared itself.
SNAPSHOT = r"""
find /etc /usr /opt /var/lib /srv -xdev \( -path /var/lib/systemd -o -path /var/lib/private \) -prune \
     -o \! -regex '/etc/\(passwd\|group\|shadow\|gshadow\|subuid\|subgid\)-' -printf '%p %u:%g %m %s\n' \
     | LC_ALL=C sort
systemctl list-unit-files --no-legend --no-pager | LC_ALL=C sort
sha256sum /etc/passwd /etc/group /etc/shadow /etc/gshadow
"""


def _snapshot(host):
    return host.run(["sh", "-c", SNAPSHOT]).stdout


def _changed(before, after):
    """The snapshot lines that differ, for the failure message."""
    import difflib

    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]




@pytest.fixture(scope="module")
def bare(apply, host, test_site):
    """The host as earlier modules left it, bare; at the end the pillar is back and the host bare again."""
    original = copy.deepcopy(test_site.settings)
    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()
    assert host.run(["test", "-e", RECORD], check=False).returncode != 0
    yield
    test_site.write(original)
    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()


def test_clean_on_a_host_that_never_had_the_formula_changes_nothing(bare, apply, host):
    before = _snapshot(host)
    run = apply.salt_ssh("state.apply", "litellm.clean").assert_ok()
    assert run.changed() == []
    assert "No record of the formula on this host" in run.states["litellm-service-clean-owned-removed"]["comment"]
    after = _snapshot(host)
    assert after == before, _changed(before, after)


# (pillar changes, where it is refused, words of the refusal)
TAKEOVERS = [
    ({"config_dir": "/etc"}, "litellm-validate-pillar-validated", "litellm:config_dir: /etc is a system directory"),
    ({"venv": "/usr"}, "litellm-validate-pillar-validated", "litellm:venv: /usr is a system directory"),
    ({"venv": "/etc/ssh"}, "litellm-validate-pillar-validated", "litellm:venv: /etc/ssh is a system directory"),
    ({"config_dir": "/etc/ssh"}, "litellm-validate-pillar-validated", "litellm:config_dir: /etc/ssh is a system"),
    ({"service__group": "root"}, "litellm-validate-pillar-validated", "litellm:service:group: 'root' is a system"),
    ({"service__name": "ssh"}, "litellm-owner-record-checked",
     "litellm:service:name: ssh.service already exists on this host"),
    ({"service__user": "www-data"}, "litellm-owner-record-checked",
     "litellm:service:user: user 'www-data' already exists on this host (uid 33, a system account)"),
    ({"config_dir": "/etc/default"}, "litellm-validate-pillar-validated", "/etc/default is a system directory"),
    ({"config_dir": "/etc/site-app"}, "litellm-owner-record-checked",
     "litellm:config_dir: /etc/site-app already exists on this host (a directory)"),
]


def test_every_takeover_pillar_is_refused_and_nothing_on_the_host_changes(bare, apply, host, test_site):
    host.run(["mkdir", "/etc/site-app"])  # a directory of another program, unknown to the formula
    before = _snapshot(host)
    original = copy.deepcopy(test_site.settings)
    for changes, where, words in TAKEOVERS:
        test_site.write(settings_with(original, **changes))
        run = apply.salt_ssh("state.apply", "litellm")
        assert run.returncode != 0, changes
        failed = run.failed()
        assert where in failed and words in failed[where], (changes, failed)
        assert run.changed() == [], (changes, run.changed())
        # clean runs the same gate; with no record it would remove nothing
        clean = apply.salt_ssh("state.apply", "litellm.clean", "test=True")
        if where == "litellm-validate-pillar-validated":
            assert words in clean.failed().get(where, ""), (changes, clean.failed())
        else:
            assert clean.changed() == [] and "No record of the formula" in clean.text, changes
    test_site.write(original)
    after = _snapshot(host)
    assert after == before, _changed(before, after)
    host.run(["rmdir", "/etc/site-app"])


def _show(apply):
    run = apply.salt_ssh("litellm_owner.show")
    assert isinstance(run.data, dict), run.text[-2000:]
    return run.data


def test_clean_removes_what_the_record_lists_not_what_pillar_says_now(bare, apply, host, test_site):
    original = copy.deepcopy(test_site.settings)
    # Directories of the site's own at the paths the pillar will name at clean time.
    for path in ("/etc/litellm-next", "/opt/next/venv"):
        host.run(["sh", "-c", f"mkdir -p {path} && echo mine > {path}/sentinel"])
    before = _snapshot(host)
    run = apply.salt_ssh("state.apply", "litellm").assert_ok()
    recorded = run.states["litellm-owner-record-claimed"]["changes"]["recorded"]
    for label in ("/etc/litellm", "/opt/litellm/venv", "/opt/litellm", "/var/lib/litellm", "user 'litellm'",
                  "group 'litellm'", "litellm.service", "/var/lib/litellm-salt/known-good"):
        assert label in recorded, recorded
    mode = host.run(["stat", "-c", "%U:%G %a", RECORD]).stdout.strip()
    assert mode == "root:root 600"
    listed = _show(apply)["entries"]
    assert {e["label"] for e in listed} >= set(recorded)
    assert apply.salt_ssh("state.apply", "litellm").assert_ok().changed() == []

    # A deploy of a formula version before the record is adopted by its unit file.
    host.run(["rm", RECORD])
    adopted = apply.salt_ssh("state.apply", "litellm").assert_ok()
    assert adopted.changed() == ["litellm-owner-record-claimed"], adopted.changed()
    comment = adopted.states["litellm-owner-record-claimed"]["comment"]
    assert "adopting a deploy of an earlier formula version" in comment

    test_site.write(settings_with(original, config_dir="/etc/litellm-next", venv="/opt/next/venv"))
    would = apply.salt_ssh("state.apply", "litellm.clean", "test=True").assert_ok()
    listed_now = {e["label"] for e in _show(apply)["entries"]}
    would_remove = set()
    for state in would.states.values():
        would_remove |= set(state.get("changes", {}).get("removed", []))
    assert would_remove == listed_now, (would_remove, listed_now)  # exactly the record's entries
    assert not any("next" in label for label in would_remove)

    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()
    for path in ("/etc/litellm", "/opt/litellm", "/etc/systemd/system/litellm.service", "/var/lib/litellm",
                 "/var/lib/litellm-salt", "/var/cache/litellm-salt"):
        assert host.run(["test", "-e", path], check=False).returncode != 0, f"{path} left behind"
    assert host.run(["getent", "passwd", "litellm"], check=False).returncode != 0
    for path in ("/etc/litellm-next", "/opt/next/venv"):
        assert host.run(["cat", f"{path}/sentinel"]).stdout.strip() == "mine"
    after = _snapshot(host)
    assert after == before, f"clean changed what the formula did not create: {_changed(before, after)}"
    host.run(["rm", "-r", "/etc/litellm-next", "/opt/next"])
    print("\nOWNERSHIP " + json.dumps({"recorded": len(recorded), "listed": sorted(listed_now)}))

"""
Unit tests of ownership: the paths, unit, user and group a pillar may name
(litellm_config, pure), the takeover decision and removal order
(litellm_owner_plan, pure), and the record on disk (litellm_owner: claim,
remove) in a temp dir.
"""

import copy
import json
import stat
from unittest.mock import MagicMock

import pytest

from tests.conftest import SALT_UTILS, load_salt_module

litellm_config = load_salt_module("modules", "litellm_config")
litellm_owner = load_salt_module("modules", "litellm_owner")
owner_state = load_salt_module("states", "litellm_owner")
owner_plan = load_salt_module("utils", "litellm_owner_plan")


@pytest.fixture
def salt_funcs():
    return {
        "litellm_config.layout": lambda settings=None: litellm_config.plan_layout(settings),
        "service.stop": MagicMock(return_value=True),
        "service.disable": MagicMock(return_value=True),
        "service.systemctl_reload": MagicMock(return_value=True),
        "user.delete": MagicMock(return_value=True),
        "group.delete": MagicMock(return_value=True),
        "pkg.purge": MagicMock(return_value={}),
        "pkg.version": MagicMock(return_value=""),
        "cmd.run_all": MagicMock(return_value={"retcode": 0, "stdout": ""}),
    }


@pytest.fixture
def configure_loader_modules(salt_funcs):
    opts = {"test": False}
    return {
        litellm_config: {"__salt__": {}, "__opts__": opts, "__utils__": SALT_UTILS},
        litellm_owner: {"__salt__": salt_funcs, "__opts__": opts, "__utils__": SALT_UTILS},
        owner_state: {"__salt__": salt_funcs, "__opts__": opts, "__utils__": SALT_UTILS},
    }


def _with(settings, **changes):
    settings = copy.deepcopy(settings)
    for dotted, value in changes.items():
        node = settings
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return settings


# --- validation: what a pillar may name (pure) -------------------------------------------

REFUSED = [
    ({"config_dir": "/etc"}, "litellm:config_dir: /etc is a system directory"),
    ({"venv": "/usr"}, "litellm:venv: /usr is a system directory"),
    ({"venv": "/etc/ssh"}, "litellm:venv: /etc/ssh is a system directory"),
    ({"config_dir": "/etc/ssh"}, "litellm:config_dir: /etc/ssh is a system directory"),
    ({"venv": "/usr/lib/litellm"}, "litellm:venv: /usr/lib/litellm is inside the system directory /usr/lib"),
    ({"config_dir": "/etc/ssh/litellm"}, "inside the system directory /etc/ssh"),
    ({"venv": "/boot/litellm"}, "litellm:venv: /boot/litellm is below /boot"),
    ({"venv": "/home/alice/venv"}, "below /home"),
    ({"config_dir": "/tmp/litellm"}, "below /tmp"),
    ({"config_dir": "/etc/litellm/../ssh"}, "not a normalized path"),
    ({"preflight__evidence_dir": "/var/log"}, "litellm:preflight:evidence_dir: /var/log is a system directory"),
    ({"smoke__evidence_dir": "/usr/share/doc/x"}, "litellm:smoke:evidence_dir"),
    ({"config_dir": "/opt/litellm/venv/etc"},
     "litellm:config_dir: /opt/litellm/venv/etc overlaps /opt/litellm/venv of litellm:venv"),
    ({"venv": "/etc/litellm/venv"}, "litellm:venv: /etc/litellm/venv overlaps /etc/litellm of litellm:config_dir"),
    ({"venv": "/var/lib/litellm/venv"}, "overlaps /var/lib/litellm of litellm:service:name (systemd's StateDirectory)"),
    ({"smoke__evidence_dir": "/etc/litellm/evidence"}, "litellm:smoke:evidence_dir: /etc/litellm/evidence overlaps"),
    ({"service__name": "litellm-salt"}, "litellm:service:name: /var/lib/litellm-salt overlaps"),
    ({"service__group": "root"}, "litellm:service:group: 'root' is a system account"),
    ({"service__user": "nobody"}, "litellm:service:user: 'nobody' is a system account"),
    ({"lookup__systemd_unit_dir": "/lib/systemd/system"}, "litellm:lookup:systemd_unit_dir: must be one of"),
    ({"lookup__ca_certificates_dir": "/etc/ssl/certs"}, "litellm:lookup:ca_certificates_dir: must be one of"),
    ({"lookup__python": "python3"}, "litellm:lookup:python: must be an absolute path"),
]


@pytest.mark.parametrize(("changes", "words"), REFUSED, ids=[str(c) for c, _ in REFUSED])
def test_a_pillar_that_would_take_over_a_system_path_is_refused_naming_the_key(reference_settings, changes, words):
    errors = litellm_config.check_settings(_with(reference_settings, **changes))
    assert any(words in e for e in errors), errors


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"venv": "/srv/gateway/venv", "config_dir": "/etc/litellm-gw"},
        {"venv": "/usr/local/litellm/venv"},
        {"smoke__evidence_dir": "/var/lib/litellm-salt/evidence"},
        {"smoke__evidence_dir": "/var/log/litellm-smoke"},
        {"lookup__systemd_unit_dir": "/usr/local/lib/systemd/system"},
    ],
)
def test_dedicated_paths_are_accepted(reference_settings, changes):
    assert litellm_config.check_settings(_with(reference_settings, **changes)) == []


def test_the_layout_names_every_path_unit_user_and_group_with_its_key(reference_settings):
    entries = litellm_config.plan_layout(_with(reference_settings, ca_certificates={"site": "pem"}))
    found = {(e["kind"], e.get("name") or e["path"]): e["key"] for e in entries}
    assert found[("unit", "litellm.service")] == "service:name"
    assert found[("user", "litellm")] == "service:user"
    assert found[("group", "litellm")] == "service:group"
    assert found[("dir", "/etc/litellm")] == "config_dir"
    assert found[("venv", "/opt/litellm/venv")] == "venv"
    assert found[("dir", "/opt/litellm/venv-releases")] == "venv"
    assert found[("dir", "/var/lib/litellm")] == "service:name"
    assert found[("file", "/usr/local/share/ca-certificates/litellm-salt-site.crt")] == "ca_certificates:site"
    assert found[("store", "/var/cache/litellm-salt")] is None  # the formula's own


# --- the takeover decision (pure) --------------------------------------------------------


def _entries(settings):
    return litellm_config.plan_layout(settings)


def test_on_a_bare_host_everything_is_claimed_with_the_directories_on_the_way(reference_settings):
    entries = _entries(reference_settings)
    facts = {("path", p): "a directory" for p in ("/etc", "/opt", "/var/lib", "/var/cache", "/var")}
    claims, problems = owner_plan.plan(entries, [], facts)
    assert problems == []
    paths = {c["path"] for c in claims if c["path"]}
    assert {"/etc/litellm", "/opt/litellm/venv", "/opt/litellm/venv-releases", "/var/lib/litellm"} <= paths
    parents = {c["path"] for c in claims if c["kind"] == "parent"}
    assert parents == {"/opt/litellm", "/var/lib/litellm-salt"}
    assert {("user", "litellm"), ("group", "litellm"), ("unit", "litellm.service")} <= {
        owner_plan.identity(c) for c in claims
    }
    assert not any(c["kind"] == "runtime" for c in claims)  # systemd's own


@pytest.mark.parametrize(
    ("changes", "fact", "words"),
    [
        ({"service__name": "ssh"}, (("unit", "ssh.service"), "/lib/systemd/system/ssh.service"),
         "litellm:service:name: ssh.service already exists on this host (/lib/systemd/system/ssh.service)"),
        ({"service__user": "www-data"}, (("user", "www-data"), "uid 33, a system account"),
         "litellm:service:user: user 'www-data' already exists on this host (uid 33, a system account)"),
        ({"service__group": "adm"}, (("group", "adm"), "gid 4, a system account"),
         "litellm:service:group: group 'adm' already exists"),
        ({"config_dir": "/etc/nginx"}, (("path", "/etc/nginx"), "a directory"),
         "litellm:config_dir: /etc/nginx already exists on this host (a directory)"),
        ({"venv": "/opt/app"}, (("path", "/opt/app"), "a directory"), "litellm:venv: /opt/app already exists"),
        ({"service__name": "sshd"}, (("path", "/run/sshd"), "a directory"),
         "litellm:service:name: /run/sshd (systemd's RuntimeDirectory) already exists"),
    ],
)
def test_an_existing_unit_user_group_or_path_not_in_the_record_is_a_takeover(reference_settings, changes, fact,
                                                                              words):
    claims, problems = owner_plan.plan(_entries(_with(reference_settings, **changes)), [], dict([fact]),
                                       record=litellm_owner.RECORD)
    assert any(words in p for p in problems), problems
    assert any("the formula never takes over" in p and "owned.json" in p for p in problems)


def test_what_the_record_lists_is_the_formulas_and_an_existing_evidence_or_cache_dir_is_no_takeover(reference_settings):
    entries = _entries(_with(reference_settings, smoke__evidence_dir="/var/log/gw-evidence"))
    record = [e for e in entries if e["path"] != "/var/log/gw-evidence"]
    facts = {("path", "/var/log/gw-evidence"): "a directory", ("path", "/run/litellm"): "a directory"}
    assert owner_plan.plan(entries, record, facts) == ([], [])


def test_removal_goes_unit_first_accounts_late_and_parents_last_deepest_first():
    record = [
        {"kind": "parent", "job": "owner", "path": "/opt/a"},
        {"kind": "group", "job": "package", "name": "g", "path": ""},
        {"kind": "parent", "job": "owner", "path": "/opt/a/b"},
        {"kind": "user", "job": "package", "name": "u", "path": ""},
        {"kind": "dir", "job": "package", "path": "/opt/a/b/releases"},
        {"kind": "unit", "job": "service", "name": "x.service", "path": "/etc/systemd/system/x.service"},
    ]
    order = owner_plan.removal_order(record, ["service", "package", "owner"])
    assert [e["kind"] for e in order] == ["unit", "dir", "user", "group", "parent", "parent"]
    assert [e["path"] for e in order if e["kind"] == "parent"] == ["/opt/a/b", "/opt/a"]
    assert owner_plan.removal_order(record, ["service"]) == [record[-1]]


def test_a_unit_of_an_earlier_formula_version_is_adopted_from_its_own_lines():
    unit = (
        "# Managed by Salt (litellm formula). Local edits are overwritten.\n[Service]\nUser=gw\nGroup=gw\n"
        "EnvironmentFile=/etc/gw/litellm.env\nExecStart=/opt/gw/venv/bin/litellm --config /etc/gw/config.yaml\n"
        "StateDirectory=gw\nCacheDirectory=gw\n"
    )
    adopted = owner_plan.legacy_entries(unit, "/etc/systemd/system/gw.service")
    found = {(e["kind"], e.get("name") or e["path"]) for e in adopted}
    assert found == {
        ("unit", "gw.service"), ("user", "gw"), ("group", "gw"), ("dir", "/etc/gw"), ("venv", "/opt/gw/venv"),
        ("dir", "/opt/gw/venv-releases"), ("dir", "/var/lib/gw"), ("dir", "/var/cache/gw"),
    }
    assert owner_plan.legacy_entries(unit.replace("litellm formula", "other"), "/x/gw.service") == []


# --- the record on disk -----------------------------------------------------------------


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host in a temp dir: the formula's layout points into it, the record too."""
    root = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / "opt").mkdir()
    store = root / "var/lib/litellm-salt"
    monkeypatch.setattr(litellm_owner, "STORE", str(store))
    monkeypatch.setattr(litellm_owner, "RECORD", str(store / "owned.json"))
    monkeypatch.setattr(litellm_owner, "_systemd_running", lambda: False)
    entries = [
        {"kind": "dir", "key": "config_dir", "job": "config", "path": str(root / "etc/litellm")},
        {"kind": "venv", "key": "venv", "job": "package", "path": str(root / "opt/litellm/venv")},
        {"kind": "dir", "key": None, "job": "owner", "path": str(store / "known-good"), "what": "known-good"},
    ]
    return root, store, entries


def test_claim_records_only_what_is_absent_root_only_and_clean_removes_exactly_that(host):
    root, store, entries = host
    claimed = litellm_owner.claim(entries)
    assert {c["path"] for c in claimed} >= {str(root / "etc/litellm"), str(root / "opt/litellm")}
    record = store / "owned.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600 and stat.S_IMODE(store.stat().st_mode) == 0o700
    # the deploy creates them; the operator adds a file next to the venv
    (root / "etc/litellm").mkdir()
    (root / "opt/litellm/venv").mkdir(parents=True)
    (root / "opt/litellm/notes.txt").write_text("mine")
    (store / "known-good").mkdir()
    assert litellm_owner.claim(entries) == []  # a re-apply claims nothing more
    would = litellm_owner.remove(["config", "package", "owner"], test=True)
    assert str(root / "etc/litellm") in would["removed"] and (root / "etc/litellm").exists()
    done = litellm_owner.remove(["config", "package", "owner"])
    assert not (root / "etc/litellm").exists() and not (root / "opt/litellm/venv").exists()
    assert (root / "opt/litellm/notes.txt").read_text() == "mine"  # not the formula's: kept, and so its dir
    assert any("not empty" in why for why in done["left"])
    assert not record.exists() and (root / "etc").is_dir() and (root / "opt").is_dir()
    assert litellm_owner.remove(["config"])["record"] is None


def test_claim_refuses_an_existing_directory_and_writes_nothing(host):
    root, store, entries = host
    (root / "etc/litellm").mkdir()
    with pytest.raises(RuntimeError, match=r"litellm:config_dir: .*/etc/litellm already exists on this host"):
        litellm_owner.claim(entries)
    assert not store.exists()


def test_a_corrupt_record_stops_the_run_naming_the_file(host):
    _, store, entries = host
    store.mkdir(parents=True)
    (store / "owned.json").write_text("{not json")
    with pytest.raises(RuntimeError, match="owned.json: the formula's record is unreadable"):
        litellm_owner.check(entries)


def test_removal_stops_and_disables_the_unit_and_deletes_accounts_from_the_record(host, salt_funcs, monkeypatch):
    root, store, _ = host
    monkeypatch.setattr(litellm_owner, "_systemd_running", lambda: True)
    monkeypatch.setattr(litellm_owner, "_account_fact", lambda kind, name: "uid 999")
    unit = root / "litellm.service"
    unit.write_text("[Service]\n")
    litellm_owner._write_record({"entries": [
        {"kind": "unit", "key": "service:name", "job": "service", "name": "litellm.service", "path": str(unit)},
        {"kind": "user", "key": "service:user", "job": "package", "name": "litellm", "path": ""},
        {"kind": "group", "key": "service:group", "job": "package", "name": "litellm", "path": ""},
    ]})
    litellm_owner.remove(["service"])
    salt_funcs["service.stop"].assert_called_once_with("litellm.service")
    salt_funcs["service.disable"].assert_called_once_with("litellm.service")
    salt_funcs["service.systemctl_reload"].assert_called_once()
    assert not unit.exists()
    left = json.loads((store / "owned.json").read_text())["entries"]
    assert [e["kind"] for e in left] == ["user", "group"]
    litellm_owner.remove(["package"])
    salt_funcs["user.delete"].assert_called_once_with("litellm")
    salt_funcs["group.delete"].assert_called_once_with("litellm")
    assert not (store / "owned.json").exists()


# --- the states ------------------------------------------------------------------------


def test_claimed_refuses_naming_the_key_and_test_mode_records_nothing(host, reference_settings, monkeypatch):
    root, store, entries = host
    monkeypatch.setitem(owner_state.__salt__, "litellm_owner.check", litellm_owner.check)
    monkeypatch.setitem(owner_state.__salt__, "litellm_owner.claim", litellm_owner.claim)
    monkeypatch.setattr(owner_state, "_layout", lambda settings, scope: entries)
    monkeypatch.setitem(owner_state.__opts__, "test", True)
    ret = owner_state.claimed("litellm", reference_settings)
    assert ret["result"] is None and "Would record" in ret["comment"] and not store.exists()
    monkeypatch.setitem(owner_state.__opts__, "test", False)
    ret = owner_state.claimed("litellm", reference_settings)
    assert ret["result"] is True and ret["changes"]["recorded"]
    assert owner_state.claimed("litellm", reference_settings)["changes"] == {}
    (root / "etc/litellm").mkdir()
    (store / "owned.json").unlink()
    ret = owner_state.claimed("litellm", reference_settings)
    assert ret["result"] is False and ret["comment"].startswith("Takeover refused, nothing was changed:")
    assert "litellm:config_dir:" in ret["comment"]


def test_removed_on_a_host_without_a_record_changes_nothing(host, monkeypatch):
    monkeypatch.setitem(owner_state.__salt__, "litellm_owner.remove", litellm_owner.remove)
    ret = owner_state.removed("litellm", ["service", "config", "package", "owner"])
    assert ret["result"] is True and ret["changes"] == {} and "No record of the formula" in ret["comment"]


def test_clean_in_test_mode_lists_the_directories_on_the_way_with_the_last_job(host):
    root, store, entries = host
    litellm_owner.claim(entries)
    names = lambda jobs: litellm_owner.remove(jobs, test=True)["removed"]  # noqa: E731
    assert str(root / "opt/litellm") not in names(["package"])
    assert str(root / "opt/litellm") in names(["owner"])  # config and package run before it in litellm.clean
    assert str(store) in names(["owner"])


def test_preflight_evidence_made_before_the_claim_is_noted_as_the_formulas(host):
    root, store, _ = host
    evidence = root / "var/lib/litellm-salt/evidence"
    fresh = litellm_owner.absent(str(evidence))
    assert fresh == [str(evidence), str(store), str(root / "var/lib"), str(root / "var")]
    evidence.mkdir(parents=True)
    noted = litellm_owner.note(fresh, "preflight:evidence_dir")
    assert [e["kind"] for e in noted] == ["store", "parent", "parent", "parent"]
    assert litellm_owner.absent(str(evidence)) == [] and litellm_owner.note(fresh, "x") == []


def test_a_site_ca_file_is_claimed_but_never_the_system_directory_it_goes_into(reference_settings):
    entries = _entries(_with(reference_settings, ca_certificates={"site": "pem"}))
    claims, _ = owner_plan.plan(entries, [], {("path", "/etc"): "a directory", ("path", "/opt"): "a directory"})
    paths = {c["path"] for c in claims}
    assert "/usr/local/share/ca-certificates/litellm-salt-site.crt" in paths
    assert not paths & {"/usr/local/share/ca-certificates", "/usr/local/share", "/etc/systemd/system"}


def test_litellm_redis_claims_the_redis_server_package_only_when_the_formula_installs_it(host, salt_funcs,
                                                                                          monkeypatch):
    entries = owner_state._layout({"redis": {"server": "redis1", "password": "x" * 20}}, "redis")
    assert entries == [{"kind": "pkg", "key": "redis:server", "job": "redis", "name": "redis-server", "path": ""}]
    assert owner_state._layout({"redis": {"server": ""}}, "redis") == []
    salt_funcs["pkg.version"].return_value = "5:7.0.15-1"  # installed by the site: a takeover
    _, problems = owner_plan.plan(entries, [], litellm_owner._facts(entries))
    assert problems and "litellm:redis:server: package 'redis-server' already exists" in problems[0]
    salt_funcs["pkg.version"].return_value = ""
    assert [c["name"] for c in litellm_owner.claim(entries) if c["kind"] == "pkg"] == ["redis-server"]
    salt_funcs["pkg.version"].return_value = "5:7.0.15-1"  # the formula installed it
    monkeypatch.setattr(litellm_owner, "_systemd_running", lambda: True)
    litellm_owner.remove(["redis"])
    salt_funcs["service.stop"].assert_called_once_with("redis-server")
    salt_funcs["pkg.purge"].assert_called_once_with("redis-server")


def test_a_zero_downtime_unit_without_its_record_is_adopted_with_its_socket():
    unit = (
        "# Managed by Salt (litellm formula). Local edits are overwritten.\n[Unit]\nRequires=gw.socket\n"
        "[Service]\nUser=gw\nGroup=gw\nEnvironmentFile=/etc/gw/litellm.env\n"
        "ExecStart=/opt/gw/venv/bin/python /etc/gw/litellm_gateway.py --fd 3 litellm_gateway:app\n"
        "StateDirectory=gw\nCacheDirectory=gw\nRuntimeDirectory=gw\n"
    )
    found = {(e["kind"], e.get("name") or e["path"])
             for e in owner_plan.legacy_entries(unit, "/etc/systemd/system/gw.service")}
    assert {("unit", "gw.socket"), ("venv", "/opt/gw/venv"), ("dir", "/run/gw")} <= found, found
    assert owner_plan.legacy_entries(unit.replace("Requires=gw.socket", "Requires=x.socket"),
                                     "/etc/systemd/system/gw.service")[1]["kind"] != "unit"

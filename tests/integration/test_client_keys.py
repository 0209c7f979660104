"""
Client keys (litellm:keys) on the real systemd host, deployed with salt-ssh,
the openai SDK as the client: every status (200, 401, 403, 429, expired);
the smoke key's check in every apply; adding and revoking a key under a
client load (MainPID unchanged, in force within 2 s, not one request failed,
a second apply changes nothing); and no key (master, client or smoke) in
the state outputs, the journal, argv or a world-readable file.
"""

import copy
import datetime
import hashlib
import json
import secrets
import threading
import time

import openai
import pytest

from .conftest import MINION_CONF_IN_HOST, gateway_workers, service_show, settings_with

pytestmark = pytest.mark.integration

KEYS = {name: "sk-" + secrets.token_hex(24) for name in ("app-small", "app-rpm", "app-expired", "app-late")}
RPM = 2
TABLE = "/etc/litellm/client-keys.json"


def _hash(name):
    return f"sha256:{hashlib.sha256(KEYS[name].encode()).hexdigest()}"


def _keys(*extra):
    yesterday = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    specs = {
        "app-small": {"hash": _hash("app-small"), "models": ["chat-small"]},
        "app-rpm": {"hash": _hash("app-rpm"), "rpm": RPM},
        "app-expired": {"hash": _hash("app-expired"), "expires": yesterday},
        "app-late": {"hash": _hash("app-late"), "models": ["chat-large"]},
    }
    return {name: specs[name] for name in ("app-small", "app-rpm", "app-expired", *extra)}


@pytest.fixture(scope="module")
def keyed(apply, host, test_site):
    """The site with client keys, deployed once; at the end its pillar is back and the host bare."""
    original = copy.deepcopy(test_site.settings)
    test_site.write(settings_with(original, keys=_keys()))
    first = apply.salt_ssh("state.apply", "litellm").assert_ok()
    yield first
    test_site.write(original)
    apply.salt_ssh("state.apply", "litellm.clean").assert_ok()


def sdk(port, key):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=30)


def chat(port, key, model):
    return sdk(port, key).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=8)


def test_the_first_apply_makes_the_smoke_key_and_its_check_passes(keyed, host, test_site):
    states = keyed.states
    assert states["litellm-config-file-smoke-key-present"]["changes"] == {"smoke_key": "made (root 0600, never shown)"}
    assert states["litellm-smoke-passed"]["result"] is True
    assert host.run(["stat", "-c", "%U:%G %a", "/etc/litellm/smoke-key"]).stdout.strip() == "root:root 600"
    check = host.run(["salt-call", "-c", MINION_CONF_IN_HOST, "--local", "--out=json", "litellm_smoke.client_key"])
    result = json.loads(check.stdout)["local"]
    workers = gateway_workers(host)
    print(f"\nclient_key: {result['detail']}")
    assert result["status"] == "pass", result
    assert (result["alias_status"], result["other_alias_status"], result["wrong_key_status"]) == (200, 403, 401)
    assert result["listed"] == ["chat-small"]
    assert len(result["workers"]) == max(len(workers), 1)
    assert result["clients"] == ["_smoke", "app-expired", "app-rpm", "app-small"]  # enabled (expired: 401)


def test_every_status_with_the_openai_sdk(keyed, test_site):
    port = test_site.settings["bind_port"]
    assert chat(port, KEYS["app-small"], "chat-small").choices[0].message.content
    assert [m.id for m in sdk(port, KEYS["app-small"]).models.list().data] == ["chat-small"]
    with pytest.raises(openai.PermissionDeniedError):
        chat(port, KEYS["app-small"], "chat-large")
    with pytest.raises(openai.AuthenticationError):
        chat(port, "sk-" + secrets.token_hex(24), "chat-small")
    with pytest.raises(openai.AuthenticationError) as expired:
        chat(port, KEYS["app-expired"], "chat-small")
    assert "app-expired" in str(expired.value) and KEYS["app-expired"] not in str(expired.value)
    served = 0
    with pytest.raises(openai.RateLimitError):
        for _ in range(8 * RPM):  # each worker counts alone without Redis
            chat(port, KEYS["app-rpm"], "chat-small")
            served += 1
    assert served >= RPM
    # the master key: every alias
    assert chat(port, test_site.master_key, "chat-large").choices[0].message.content


class Load:
    """Client requests with app-small's key in 4 threads; every answer recorded."""

    def __init__(self, port):
        self.port, self.codes, self.stop = port, [], threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]

    def _run(self):
        client = sdk(self.port, KEYS["app-small"])
        while not self.stop.is_set():
            try:
                client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "x"}],
                                               max_tokens=4)
                self.codes.append(200)
            except openai.APIStatusError as exc:
                self.codes.append(exc.status_code)
            except openai.APIError as exc:
                self.codes.append(type(exc).__name__)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _watch_late(port, want, seen):
    """Poll with app-late's key until its answer is ``want`` (200 or 401); the time of that answer."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chat(port, KEYS["app-late"], "chat-large")
            code = 200
        except openai.APIStatusError as exc:
            code = exc.status_code
        if code == want:
            seen.append(time.time())
            return
        time.sleep(0.05)


def _table_mtime(host):
    return float(host.run(["stat", "-c", "%.9Y", TABLE]).stdout.strip())


def _apply_watching(apply, host, test_site, keys, want):
    port = test_site.settings["bind_port"]
    seen = []
    watcher = threading.Thread(target=_watch_late, args=(port, want, seen), daemon=True)
    watcher.start()
    test_site.write(settings_with(test_site.settings, keys=keys))
    run = apply.salt_ssh("state.apply", "litellm").assert_ok()
    watcher.join(timeout=60)
    assert seen, f"app-late never got {want}"
    return run, seen[0] - _table_mtime(host)


def test_adding_and_revoking_a_key_under_load_restarts_nothing_and_fails_no_request(keyed, apply, host, test_site):
    pid = service_show(host, "MainPID")["MainPID"]
    with Load(test_site.settings["bind_port"]) as load:
        added, add_delay = _apply_watching(apply, host, test_site, _keys("app-late"), 200)
        revoked, revoke_delay = _apply_watching(apply, host, test_site, _keys(), 401)
        again = apply.salt_ssh("state.apply", "litellm").assert_ok()
    print(f"\nkey add in force after {add_delay:.2f} s, revoke after {revoke_delay:.2f} s; "
          f"{len(load.codes)} client requests during both applies")
    assert added.changed() == ["litellm-config-file-keys-managed"]
    assert revoked.changed() == ["litellm-config-file-keys-managed"]
    assert again.changed() == []
    assert service_show(host, "MainPID")["MainPID"] == pid
    assert add_delay < 2.0 and revoke_delay < 2.0
    assert load.codes and set(load.codes) == {200}, sorted(set(map(str, load.codes)))


def test_no_key_is_in_outputs_the_journal_argv_or_a_world_readable_file(keyed, host, test_site, outputs):
    smoke_key = host.run(["cat", "/etc/litellm/smoke-key"]).stdout.strip()
    assert smoke_key.startswith("sk-smoke-")
    secrets_ = [test_site.master_key, smoke_key, *KEYS.values()]
    assert outputs and all(s not in text for text in outputs if text for s in secrets_)
    journal = host.run(["journalctl", "--no-pager", "-o", "cat"]).stdout
    assert not [s[:8] for s in secrets_ if s in journal]
    cmdlines = host.run(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"]).stdout
    assert not [s[:8] for s in secrets_ if s in cmdlines]
    readable = host.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "grep", "-rlF", "--devices=skip",
         "-f", "/dev/stdin", "/etc", "/opt", "/var", "/tmp", "/srv", "/home", "/root", "/run", "/usr/local"],
        input="\n".join(secrets_) + "\n", check=False,
    )
    assert readable.stdout.strip() == "", readable.stdout
    # the workers' status files name clients, never a key nor its hash
    status = host.run(["sh", "-c", "cat /run/litellm/client-keys.*.json"]).stdout
    assert "app-small" in status and not [n for n in KEYS if _hash(n)[7:] in status]

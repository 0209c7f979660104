"""
The gateway's edge: litellm:tls and litellm:metrics validation (each refusal
names the key, the TLS key is never echoed), the listener_cert preflight
check, the pure functions behind the unit (uvicorn TLS args, metrics env and
argv, info metric), the rendered config and the ownership layout.
"""

import ssl
import tomllib
from types import SimpleNamespace

import pytest

from tests.conftest import REPO, SALT_UTILS, load_salt_module, merged
from tests.harness import pki

litellm_config = load_salt_module("modules", "litellm_config")
edge = SALT_UTILS.litellm_edge
BASE = {"backends": ["http://10.0.0.1:11434"], "models": [{"name": "m", "model": "llama3.2:3b"}],
        "master_key": "sk-" + "a1b2c3d4" * 6}


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    where = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(where / "ca")
    other_ca = pki.make_ca(where / "other-ca", name="some other CA")
    made = {"ca": ca.cert_path.read_text()}
    for name, issuer, hosts, days in (("good", ca, ["gw.example.internal"], 90),
                                      ("soon", ca, ["gw.example.internal"], 10),
                                      ("month", ca, ["gw.example.internal"], 20),
                                      ("expired", ca, ["gw.example.internal"], -2),
                                      ("other", other_ca, ["gw.example.internal"], 90),
                                      ("wildcard", ca, ["*.example.internal", "10.0.0.9"], 90)):
        cert, key = issuer.issue(where / name, hosts, valid_days=days)
        made[name] = (cert.read_text(), key.read_text())
    return made


def tls_settings(pki_dir, name="good", key_of=None, base_url="https://gw.example.internal:4000", **extra):
    cert, key = pki_dir[name]
    if key_of:
        key = pki_dir[key_of][1]
    return merged({**BASE, "base_url": base_url, "ca_certificates": {"site": pki_dir["ca"]},
                   "tls": {"enabled": True, "certificate": cert, "key": key}, **extra})


def errors_of(settings):
    return [e for e in litellm_config.check_settings(settings) if "tls" in e or "base_url" in e]


def test_a_good_certificate_passes(pki_dir):
    assert litellm_config.check_settings(tls_settings(pki_dir)) == []
    assert litellm_config.check_settings(tls_settings(pki_dir, "wildcard")) == []
    assert litellm_config.check_settings(tls_settings(pki_dir, "wildcard", base_url="https://10.0.0.9:4000")) == []


@pytest.mark.parametrize("case, expected", [
    (dict(key_of="other"), "litellm:tls:key: the private key does not match the certificate"),
    (dict(name="soon"), "litellm:tls:certificate: expires in 10."),
    (dict(name="expired"), "litellm:tls:certificate: expired 2 day(s) ago"),
    (dict(name="other"), "litellm:tls:certificate: the chain does not verify against the system trust store + "
                         "litellm:ca_certificates (site): unable to get local issuer certificate"),
    (dict(base_url="https://gateway.example.internal:4000"),
     "litellm:tls:certificate: its names (gw.example.internal) do not cover the litellm:base_url host "
     "'gateway.example.internal'"),
    (dict(name="wildcard", base_url="https://a.b.example.internal"), "do not cover the litellm:base_url host"),
    (dict(base_url="http://gw.example.internal:4000"), "litellm:base_url: must be https:// with litellm:tls:enabled"),
])
def test_each_bad_certificate_is_refused_naming_the_key(pki_dir, case, expected):
    settings = tls_settings(pki_dir, **case)
    found = errors_of(settings)
    assert any(expected in e for e in found), found
    key = settings["tls"]["key"]
    body = [line for line in key.splitlines() if not line.startswith("-----")]
    assert not any(part in e for e in found for part in body)


def test_the_chain_needs_the_site_ca(pki_dir):
    settings = tls_settings(pki_dir)
    settings["ca_certificates"] = {}
    assert any("unable to get local issuer certificate" in e for e in errors_of(settings))


@pytest.mark.parametrize("tls, expected", [
    ({"enabled": True, "certificate": "", "key": ""}, "litellm:tls:certificate: must be the PEM certificate chain"),
    ({"enabled": True, "certificate": "x", "key": ""}, "litellm:tls:key: missing; set it in the secret"),
    ({"enabled": "yes"}, "litellm:tls:enabled: must be true or false"),
    ({"enabled": False, "cert": "x"}, "litellm:tls: unknown key(s) cert"),
    ("on", "litellm:tls: must be a mapping"),
])
def test_tls_shape(tls, expected):
    found = errors_of(merged({**BASE, "tls": tls}))
    assert any(e.startswith(expected) for e in found), found


def test_a_key_in_the_certificate_or_a_locked_key_is_refused(pki_dir):
    cert, key = pki_dir["good"]
    found = errors_of(merged({**BASE, "tls": {"enabled": True, "certificate": cert + key, "key": key}}))
    assert any("litellm:tls:certificate: holds a private key" in e for e in found)
    locked = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    found = errors_of(merged({**BASE, "tls": {"enabled": True, "certificate": cert, "key": locked}}))
    assert any("litellm:tls:key: is passphrase-protected" in e for e in found)


@pytest.mark.parametrize("metrics, expected", [
    ({"enabled": True, "bind_host": "0.0.0.0"}, "litellm:metrics:allow: required when"),
    ({"enabled": True, "bind_host": "gw"}, "litellm:metrics:bind_host: must be an IP address"),
    ({"enabled": True, "port": 4000}, "litellm:metrics:port: must differ from litellm:bind_port"),
    ({"port": 0}, "litellm:metrics:port: must be an integer from 1 to 65535"),
    ({"allow": ["10.0.0.0/8", "nope"]}, "litellm:metrics:allow:1: not an address or CIDR"),
    ({"allow": "10.0.0.1"}, "litellm:metrics:allow: must be a list"),
])
def test_metrics_validation(metrics, expected):
    found = [e for e in litellm_config.check_settings(merged({**BASE, "metrics": metrics})) if "metrics" in e]
    assert any(e.startswith(expected) for e in found), found


def test_metrics_beyond_loopback_with_an_allow_list_pass():
    settings = merged({**BASE, "metrics": {"enabled": True, "bind_host": "0.0.0.0", "allow": ["10.1.2.3/32"]}})
    assert litellm_config.check_settings(settings) == []


def _preflight(settings):
    ctx = SimpleNamespace(utils=SALT_UTILS)
    return SALT_UTILS.litellm_preflight_tls.check_listener_cert(ctx, settings)


def test_preflight_listener_cert(pki_dir):
    assert _preflight(merged(BASE))[0] == "skip"
    status, detail = _preflight(tls_settings(pki_dir))
    assert status == "pass" and "gw.example.internal" in detail, detail
    status, detail = _preflight(tls_settings(pki_dir, "month"))
    assert status == "warn" and "expires in 20 day(s) (less than 30)" in detail, detail
    status, detail = _preflight(tls_settings(pki_dir, "other"))
    assert status == "fail" and "litellm:tls:certificate: the chain does not verify" in detail
    assert "listener_cert" in SALT_UTILS.litellm_preflight_run.selected_checks(SALT_UTILS, tls_settings(pki_dir))
    assert "listener_cert" not in SALT_UTILS.litellm_preflight_run.selected_checks(SALT_UTILS, merged(BASE))


def test_uvicorn_tls_args_and_tls_1_2_minimum(pki_dir):
    assert SALT_UTILS.litellm_unit.tls_args(merged(BASE)) == []
    args = SALT_UTILS.litellm_unit.tls_args(tls_settings(pki_dir))
    assert args[:4] == ["--ssl-certfile", "/etc/litellm/tls.crt", "--ssl-keyfile", "/etc/litellm/tls.key"]
    version = int(args[args.index("--ssl-version") + 1])
    assert ssl.SSLContext(version).minimum_version == ssl.TLSVersion.TLSv1_2
    assert not any("PRIVATE" in a for a in args)


def test_metrics_env_argv_and_info_metric():
    settings = merged({**BASE, "metrics": {"enabled": True}})
    assert edge.metrics_env(merged(BASE)) == {}
    assert edge.metrics_env(settings) == {"PROMETHEUS_MULTIPROC_DIR": "/run/litellm/prometheus"}
    assert edge.metrics_argv(settings) == [
        "/opt/litellm/venv/bin/python", "-m", "litellm.proxy.prometheus_metrics_server",
        "--host", "127.0.0.1", "--port", "4001", "--multiproc_dir", "/run/litellm/prometheus"]
    assert edge.metrics_url(settings) == "http://127.0.0.1:4001/metrics"
    assert "'litellm_version': '1.108.7'" in edge.info_script(settings) and '"' not in edge.info_script(settings)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert edge.FORMULA_RELEASE == version


def test_the_config_gets_the_prometheus_callback_beside_pillars_own():
    assert "callbacks" not in litellm_config.build_config(merged(BASE))["litellm_settings"]
    on = merged({**BASE, "metrics": {"enabled": True}, "litellm_settings": {"callbacks": "mine.cb"}})
    assert litellm_config.build_config(on)["litellm_settings"]["callbacks"] == ["mine.cb", "prometheus"]


def test_the_layout_claims_the_tls_files_and_the_metrics_unit(pki_dir):
    entries = SALT_UTILS.litellm_layout.plan_layout(tls_settings(pki_dir, metrics={"enabled": True}))
    paths = {e["path"]: (e["kind"], e["key"], e["job"]) for e in entries}
    assert paths["/etc/litellm/tls.crt"] == ("file", "tls:certificate", "config")
    assert paths["/etc/litellm/tls.key"] == ("file", "tls:key", "config")
    files = SALT_UTILS.litellm_unit.tls_files(tls_settings(pki_dir))
    assert {files["certificate"], files["key"]} <= set(paths)  # the unit's files are the claimed ones
    assert paths["/etc/systemd/system/litellm-metrics.service"] == ("unit", "metrics:enabled", "service")
    plain = {e["path"] for e in SALT_UTILS.litellm_layout.plan_layout(merged(BASE))}
    assert "/etc/litellm/tls.key" not in plain and "/etc/systemd/system/litellm-metrics.service" not in plain


def test_the_tls_key_is_a_secret_for_redaction(pki_dir):
    settings = tls_settings(pki_dir)
    secrets = SALT_UTILS.litellm_redact.settings_secrets(settings)
    assert settings["tls"]["key"] in secrets
    redacted = SALT_UTILS.litellm_redact.redact_text("x " + settings["tls"]["key"].splitlines()[1], secrets)
    assert settings["tls"]["key"].splitlines()[1] not in redacted


SCRAPE = """# TYPE litellm_deployment_total_requests_total counter
litellm_deployment_total_requests_total{api_base="http://a/api/chat",model_group="chat-small"} 3.0
litellm_deployment_total_requests_total{api_base="http://b/api/chat",model_group="chat-small"} 2.0
litellm_deployment_total_requests_total{api_base="http://a/api/chat",model_group="chat-large"} 7.0
"""


def test_smoke_metrics_counts_per_alias_over_backends():
    assert SALT_UTILS.litellm_smoke_metrics.counted(SCRAPE, "chat-small") == 5
    assert SALT_UTILS.litellm_smoke_metrics.counted(SCRAPE, "nope") == 0


class FakeWeb:
    """litellm_http's request/target over a scripted gateway: each chat adds ``step`` to the counter."""

    def __init__(self, step, scrape_status=200):
        self.count, self.step, self.scrape_status, self.seen = 0, step, scrape_status, []

    def target(self, url):
        return url

    def request(self, target, method, path, timeout, master_key=None, body=None):
        self.seen.append((target, path, master_key))
        if path == "/metrics/":
            text = f'litellm_deployment_total_requests_total{{model_group="m"}} {self.count}\n'
            return {"status": self.scrape_status, "body": text}
        self.count += self.step
        return {"status": 200, "body": "{}"}


@pytest.mark.parametrize("step, scrape_status, status, words", [
    (1, 200, "pass", "counted"),
    (0, 200, "fail", "was not counted"),
    (1, 401, "fail", "401"),
])
def test_smoke_metrics_check(monkeypatch, step, scrape_status, status, words):
    smoke_metrics = SALT_UTILS.litellm_smoke_metrics
    monkeypatch.setattr(smoke_metrics, "COUNT_DEADLINE", 0.5)
    web = FakeWeb(step, scrape_status)
    utils = SimpleNamespace(litellm_smoke_parse=SALT_UTILS.litellm_smoke_parse, litellm_http=web)
    result = smoke_metrics.metrics(utils, "http://gw:4000", "sk-master", "m", "http://127.0.0.1:4001/metrics", 5)
    assert result["status"] == status and words in result["detail"], result
    assert all(key is None for _, path, key in web.seen if path == "/metrics/")  # the scrape holds no key

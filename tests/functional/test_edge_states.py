"""
The edge's states through Salt's loader (rendered, never applied): with
litellm:tls and litellm:metrics the key file comes from pillar by
``contents_pillar`` (its text in no state's data), the unit runs uvicorn with
the TLS files, readiness and smoke go to the https base_url, and the metrics
unit, env and smoke check are there.
"""

import json

import pytest
import salt.utils.yaml

from tests.harness import pki

from .conftest import SITE_PILLAR


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    where = tmp_path_factory.mktemp("edge-states-pki")
    ca = pki.make_ca(where / "ca")
    cert, key = ca.issue(where / "server", ["gw.example.internal"], valid_days=90)
    return ca.cert_path.read_text(), cert.read_text(), key.read_text()


@pytest.fixture(scope="module")
def pillar_tree(tmp_path_factory, tls_pair):
    ca, cert, key = tls_pair
    path = tmp_path_factory.mktemp("edge-pillar")
    pillar = json.loads(json.dumps(SITE_PILLAR))
    pillar["litellm"].update({
        "base_url": "https://gw.example.internal:4000", "ca_certificates": {"site": ca},
        "tls": {"enabled": True, "certificate": cert, "key": key},
        "metrics": {"enabled": True},
    })
    (path / "top.sls").write_text("base:\n  '*':\n    - litellm\n")
    (path / "litellm.sls").write_text(salt.utils.yaml.safe_dump(pillar))
    return path


@pytest.fixture(scope="module")
def rendered(loaders):
    return loaders.modules.state.show_sls("litellm")


def _state(rendered, state_id):
    assert state_id in rendered, sorted(rendered)
    return {k: v for item in rendered[state_id].get(next(iter(k for k in rendered[state_id] if not k.startswith("__"))))
            if isinstance(item, dict) for k, v in item.items()}


def test_the_key_file_comes_from_pillar_and_its_text_is_in_no_state(rendered, tls_pair):
    assert isinstance(rendered, dict), rendered
    key_state = _state(rendered, "litellm-config-file-tls-key-managed")
    assert key_state["contents_pillar"] == "litellm:tls:key" and key_state["mode"] == "0640"
    assert key_state["show_changes"] is False and key_state["name"] == "/etc/litellm/tls.key"
    assert _state(rendered, "litellm-config-file-tls-certificate-managed")["name"] == "/etc/litellm/tls.crt"
    body = [line for line in tls_pair[2].splitlines() if not line.startswith("-----")]
    # validate and preflight get the whole settings (as they get the master key) and redact them;
    # every other state is free of the key
    holding = sorted(k for k, v in rendered.items() if any(line in json.dumps(v) for line in body))
    assert holding == ["litellm-preflight-go", "litellm-validate-pillar-validated"], holding


def test_readiness_and_smoke_go_to_the_https_base_url(rendered):
    assert _state(rendered, "litellm-service-running-ready")["url"] == "https://gw.example.internal:4000"
    assert _state(rendered, "litellm-service-running-service-running")["url"] == "https://gw.example.internal:4000"
    # the automatic rollback waits for readiness over https too
    assert _state(rendered, "litellm-service-running-rolled-back")["url"] == "https://gw.example.internal:4000"
    smoke = _state(rendered, "litellm-smoke-passed")
    assert smoke["url"] == "https://gw.example.internal:4000"
    assert smoke["metrics_url"] == "http://127.0.0.1:4001/metrics"
    assert "litellm-metrics-service-running" in rendered


def test_the_unit_serves_tls_and_the_env_has_the_metrics_directory(loaders):
    out = loaders.modules.litellm_config.render()
    assert out["valid"] is True, out.get("errors")
    assert " --ssl-certfile /etc/litellm/tls.crt --ssl-keyfile /etc/litellm/tls.key --ssl-version 17 " in out["unit"]
    assert "RuntimeDirectory=litellm litellm/prometheus" in out["unit"]
    # the rollback by hand (which has no pillar over salt-ssh) reads its https URL from the unit
    assert loaders.modules.litellm_smoke.unit_settings(out["unit"])["url"] == "https://gw.example.internal:4000"
    assert "PROMETHEUS_MULTIPROC_DIR=/run/litellm/prometheus" in out["env"]
    assert "- prometheus" in out["config"]


def test_a_renewed_certificate_or_key_is_a_rolling_reload(rendered):
    """Both TLS files are watched by the service state and restart nothing: a renewal takes the reload path."""
    from tests.conftest import SALT_UTILS

    service = _state(rendered, "litellm-service-running-service-running")
    tls = ["litellm-config-file-tls-certificate-managed", "litellm-config-file-tls-key-managed"]
    assert set(tls) <= set(service["watched"]), service["watched"]
    assert not set(tls) & (set(service["restart_on"]) | set(service["relisten_on"]))
    for changed in (tls, tls[:1], tls[1:]):
        path = SALT_UTILS["litellm_unit.change_path"](changed, service["restart_on"], service["relisten_on"])
        assert path == "reload", (changed, path)

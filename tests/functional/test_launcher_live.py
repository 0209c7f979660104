"""The unit's launcher (salt/litellm/files/litellm_gateway.py) with the real LiteLLM of the shipped lock:
before its first worker it has LiteLLM check the config, in a fork of itself, and refuses to start on a
config LiteLLM rejects (exit 78, which the unit does not retry), with LiteLLM's verdict in its log and
status file; a config LiteLLM accepts gets past the check (the integration tests serve with it)."""

import json
import secrets
import shutil
import subprocess
import time

from tests.conftest import REPO, load_salt_module, merged
from tests.functional.conftest import MODELS, ensure_venv, free_port

litellm_config = load_salt_module("modules", "litellm_config")
MASTER_KEY = "sk-" + secrets.token_hex(24)


def _launch(tmp_path, settings):
    """The launcher as the unit runs it (its env file beside it), until it exits or 60 s have passed."""
    venv = ensure_venv()
    shutil.copy(REPO / "salt/litellm/files/litellm_gateway.py", tmp_path / "litellm_gateway.py")
    (tmp_path / "litellm.env").write_text(f"LITELLM_MASTER_KEY={MASTER_KEY}\nLITELLM_LOCAL_MODEL_COST_MAP=True\n"
                                          "LITELLM_LOG=ERROR\nLITELLM_TELEMETRY_DISABLED=true\n")
    config = tmp_path / "config.yaml"
    config.write_text(litellm_config.config_text(settings))
    status = tmp_path / "workers.json"
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1",
           "CONFIG_FILE_PATH": str(config), "LITELLM_GATEWAY_STATUS": str(status)}
    argv = [str(venv / "bin" / "python"), str(tmp_path / "litellm_gateway.py"), "--host", "127.0.0.1",
            "--port", str(settings["bind_port"]), "--app-dir", str(tmp_path), "--workers", "1",
            "--log-level", "error", "litellm_gateway:app"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out, status, time.monotonic() - started


def test_a_config_litellm_rejects_stops_the_start_with_litellms_verdict(tmp_path):
    settings = merged({"bind_host": "127.0.0.1", "bind_port": free_port(), "backends": ["http://127.0.0.1:9"],
                       "models": MODELS, "master_key": MASTER_KEY,
                       "router_settings": {"routing_strategy": "fastest-please"}})
    assert litellm_config.check_settings(settings) == [], "valid pillar: only LiteLLM refuses it"
    code, out, status, took = _launch(tmp_path, settings)
    print(f"\nlauncher exit {code} after {took:.1f} s:\n{out[-1500:]}")
    assert code == 78, out[-3000:]
    assert "LiteLLM rejected the config" in out and "fastest-please" in out, out[-3000:]
    recorded = json.loads(status.read_text())
    assert recorded["ok"] is False and recorded["serving"] == [] and "fastest-please" in recorded["detail"]
    assert MASTER_KEY not in out and MASTER_KEY not in status.read_text()

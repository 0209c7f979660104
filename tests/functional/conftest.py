"""Functional layer: the modules and states through Salt's real loader."""

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
import salt.utils.yaml
from saltfactories.utils.functional import Loaders

from tests.conftest import MODULES_DIR, REPO, STATE_TREE, STATES_DIR, TEST_MASTER_KEY, UTILS_DIR, load_salt_module
from tests.harness.network import free_port  # noqa: F401 - the live tests' ports
from tests.harness.rootfs import DEFAULT_CACHE_DIR
from tests.ollama_stub import start_stub_process, stop_stub_process

SITE_PILLAR = {
    "litellm": {
        "backends": ["http://127.0.0.1:21434", "http://127.0.0.1:21435"],
        "models": [{"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"}],
        "master_key": TEST_MASTER_KEY,
        # this machine is no test host: no evidence bundles written here
        "preflight": {"evidence_dir": ""},
    }
}


@pytest.fixture(scope="module")
def pillar_tree(tmp_path_factory):
    path = tmp_path_factory.mktemp("pillar")
    (path / "top.sls").write_text("base:\n  '*':\n    - litellm\n")
    (path / "litellm.sls").write_text(salt.utils.yaml.safe_dump(SITE_PILLAR))
    return path


@pytest.fixture(scope="module")
def minion_opts(request, salt_factories, pillar_tree, tmp_path_factory):
    """
    Minion options with the formula's trees; a test module may override
    ``pillar_tree``. The formula's ownership record goes to a temp dir: the
    tests must never write one on the machine that runs them.
    """
    factory = salt_factories.salt_minion_daemon(
        "functional-" + request.module.__name__.rsplit(".", 1)[-1].replace("_", "-"),
        overrides={
            "file_client": "local",
            "file_roots": {"base": [str(STATE_TREE)]},
            "pillar_roots": {"base": [str(pillar_tree)]},
            "module_dirs": [str(MODULES_DIR)],
            "states_dirs": [str(STATES_DIR)],
            "utils_dirs": [str(UTILS_DIR)],
            "litellm_owner_store": str(tmp_path_factory.mktemp("owner-store") / "litellm-salt"),
        },
    )
    return factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture
def modules(loaders):
    return loaders.modules


@pytest.fixture
def states(loaders):
    return loaders.states


# --- a REAL LiteLLM proxy on loopback, in front of stand-in Ollama servers (the live tests) ---

LOCK = REPO / "salt" / "litellm" / "files" / "locks" / "litellm-1.108.7.txt"
UV = REPO / ".venv" / "bin" / "uv"
CACHE = DEFAULT_CACHE_DIR  # LITELLM_HARNESS_CACHE, as the rootfs cache
VENV = CACHE / "smoke-venv"
MARKER = VENV / ".smoke-lock.sha256"
#: the aliases of the live tests and the models the stubs serve for them
MODELS = [
    {"name": "chat-small", "provider": "ollama", "model": "llama3.2:3b"},
    {"name": "chat-tiny", "provider": "ollama", "model": "qwen2.5:0.5b"},
]
STUB_MODELS = [m["model"] for m in MODELS]
READY_TIMEOUT = 120

litellm_config = load_salt_module("modules", "litellm_config")


def _python():
    """The machine's python3 (the one the formula uses), not a pyenv shim."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")


def ensure_venv():
    """The LiteLLM venv of the shipped lock at VENV: built (uv, hashes, bytecode) unless the cached one matches it."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "smoke-venv.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another test run (or xdist worker) may be building it
        if MARKER.exists() and MARKER.read_text().strip() == digest and (VENV / "bin" / "litellm").exists():
            return VENV
        shutil.rmtree(VENV, ignore_errors=True)
        env = dict(os.environ, UV_NATIVE_TLS="1")
        for argv in (
            [str(UV), "venv", "-q", "-p", _python(), str(VENV)],
            [str(UV), "pip", "sync", "-q", "--require-hashes", "--compile-bytecode",
             "--python", str(VENV / "bin" / "python"), str(LOCK)],
        ):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                shutil.rmtree(VENV, ignore_errors=True)
                raise RuntimeError(f"{argv[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
        MARKER.write_text(digest + "\n")
    return VENV


def stub_control(url, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


class Stub:
    """A stand-in Ollama server process serving STUB_MODELS; stopped and started again on its port."""

    def __init__(self, name):
        self.name = name
        self.proc, self.url = start_stub_process(name, STUB_MODELS)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self):
        stop_stub_process(self.proc)

    def start(self):
        for _ in range(50):  # the port may linger for a moment
            try:
                self.proc, _ = start_stub_process(self.name, STUB_MODELS, port=self.port)
                return
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError(f"stub {self.name} did not come back on port {self.port}")


@pytest.fixture(scope="module")
def stubs():
    """Two stand-in Ollama servers, llm01 and llm02, for the module."""
    pair = [Stub("llm01"), Stub("llm02")]
    yield pair
    for stub in pair:
        stub.stop()


class LiteLLM:
    """
    A LiteLLM proxy process with the config the formula renders from ``settings``
    (checked first) in ``workdir``, and the environment the unit gives it; its own
    session, stopped by its process group. Files the config names (hooks,
    tables) go into ``workdir`` before :meth:`start`.
    """

    def __init__(self, venv, workdir, settings, env=None, workers=1, log_level="ERROR"):
        assert litellm_config.check_settings(settings) == []
        self.venv, self.workdir, self.settings, self.num_workers = venv, workdir, settings, workers
        self.key = settings["master_key"]
        self.port = settings["bind_port"]
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "config.yaml"
        self.config.write_text(litellm_config.config_text(settings))
        self.log = workdir / "litellm.log"
        self.env = {
            "PATH": f"{venv}/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "LITELLM_MASTER_KEY": self.key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OLLAMA_API_BASE": settings["backends"][0],
            "LITELLM_MODE": "PRODUCTION",
            "LITELLM_LOG": log_level,
            "LITELLM_TELEMETRY_DISABLED": "true",
            "NO_COLOR": "1",
            **(env or {}),
        }
        self.proc = None

    def start(self):
        argv = [str(self.venv / "bin" / "litellm"), "--config", str(self.config), "--host", "127.0.0.1",
                "--port", str(self.port), "--num_workers", str(self.num_workers)]
        with open(self.log, "wb") as log_file:
            self.proc = subprocess.Popen(argv, cwd=self.workdir, env=self.env, stdout=log_file,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()
        return self

    def is_ready(self):
        """/health/readiness answers 200 (a subclass may ask for more)."""
        with urllib.request.urlopen(self.url + "/health/readiness", timeout=2) as response:
            return response.status == 200

    def wait_ready(self):
        """Seconds from start to ready; not ready within READY_TIMEOUT: stopped, and the log's tail raised."""
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if self.is_ready():
                        self.ready_after = round(time.monotonic() - self.started, 1)
                        return self.ready_after
                except OSError:
                    pass
                time.sleep(0.25)
        except BaseException:
            self.stop()  # a fixture that fails in set-up is not torn down: nothing may outlive it
            raise
        tail = self.log.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"LiteLLM not ready (rc={self.proc.returncode}):\n{tail}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

"""
Shared pieces of the benchmarks (not a benchmark itself).

``BenchSite`` is a throw-away site like the integration tests': two stand-in
Ollama servers on loopback, a GPG-encrypted pillar, a systemd-nspawn host
booted from the cached rootfs, a salt-ssh controller (master config + roster)
and a minion config for ``salt-call --local`` inside the host. Everything it
starts is stopped by PID (stubs, ssh control masters) or through the harness
(the container) when the ``with`` block ends.
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import salt.utils.yaml  # noqa: E402

import ollama_stub  # noqa: E402
from tests.harness import site  # noqa: E402
from tests.harness.systemd_host import SystemdHost, build_rootfs  # noqa: E402

from tests.harness.site import FORMULA_IN_HOST, GPG_IN_HOST, MINION_CONF_IN_HOST, PILLAR_IN_HOST  # noqa: E402,F401
from tests.harness.site import TARGET  # noqa: E402,F401
STUB_MODELS = ["llama3.2:3b", "qwen2.5:7b"]
VENV_BIN = Path(sys.executable).parent
MACHINE = f"{os.cpu_count()} cores, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB"


# --- numbers and tables -------------------------------------------------------------


def percentile(values, pct):
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


def median(values):
    return statistics.median(values) if values else float("nan")


def ratio(value, base):
    return value / base if base else float("nan")


def table(headers, rows, out=None):
    """Print rows (lists of str) under headers, columns aligned; first column left."""
    out = out or sys.stdout
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    print(line(cells[0]), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells[1:]:
        print(line(row), file=out)
    out.flush()


def verdict(ok):
    return "ok" if ok else "MISSED"


# --- processes ------------------------------------------------------------------------


def stop_pid(pid, grace=10.0):
    """SIGTERM one process by PID, SIGKILL if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def container_pids(host):
    """This machine's PIDs of the processes in a systemd-nspawn host's PID namespace (as they are now)."""
    ns = os.readlink(f"/proc/{host.pid1}/ns/pid")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                yield int(entry)
        except OSError:  # gone since listdir
            continue


class Stub:
    """One stand-in Ollama server, stoppable and restartable on the same port."""

    def __init__(self, name, models=STUB_MODELS):
        self.name, self.models = name, list(models)
        self.proc, self.url = ollama_stub.start_stub_process(name, self.models, stderr=subprocess.DEVNULL)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self):
        ollama_stub.stop_stub_process(self.proc)

    def start(self):
        for _ in range(100):  # the port may linger for a moment
            try:
                self.proc, _ = ollama_stub.start_stub_process(
                    self.name, self.models, port=self.port, stderr=subprocess.DEVNULL
                )
                return
            except RuntimeError:
                time.sleep(0.05)
        raise RuntimeError(f"stub {self.name} did not come back on port {self.port}")


# --- the site -------------------------------------------------------------------------


class StateRun:
    """One state.apply: wall time, exit code, per-state results."""

    def __init__(self, returncode, data, text, elapsed):
        self.returncode, self.data, self.text, self.elapsed = returncode, data, text, elapsed

    @property
    def states(self):
        if not isinstance(self.data, dict):
            raise SystemExit(f"no state data (exit {self.returncode}):\n{self.text[-4000:]}")
        return {key.split("_|-")[1]: value for key, value in self.data.items()}

    def changed(self):
        return sorted(state_id for state_id, state in self.states.items() if state.get("changes"))

    def failed(self):
        return {sid: st.get("comment") for sid, st in self.states.items() if st.get("result") is False}

    def ok(self):
        """Exit 0 and an answer; for a state run, no state failed."""
        if self.returncode != 0 or self.data is None:
            return False
        return not isinstance(self.data, dict) or not self.failed()

    def assert_ok(self, what):
        if not self.ok():
            failed = self.failed() if isinstance(self.data, dict) else ""
            raise SystemExit(f"{what} failed (exit {self.returncode}): {failed}\n{self.text[-4000:]}")
        return self


class BenchSite:
    """Stubs + pillar + a booted systemd host + salt-ssh controller; a context manager.

    ``settings``: extra pillar ``litellm:`` keys over the test site's.
    ``control_master``: add ssh ControlMaster/ControlPersist to the roster.
    """

    def __init__(self, name, settings=None, control_master=None):
        self.name = f"litellm-bench-{name}-{os.getpid()}"
        self.extra = dict(settings or {})
        self.control_master = control_master
        self.workdir = Path(tempfile.mkdtemp(prefix=f"litellm-bench-{name}-"))
        self.stubs, self.host, self.gpg_home = [], None, None
        self.timings = {}

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        t0 = time.monotonic()
        rootfs = build_rootfs()
        self.timings["rootfs"] = time.monotonic() - t0
        self.stubs = [Stub("llm01"), Stub("llm02")]
        self.gpg_home = site.make_gpg_home(self.workdir / "gpg")
        self.master_key = site.new_master_key()
        self.port = site.free_port()
        self.settings = site.site_settings([s.url for s in self.stubs], self.port, **self.extra)
        self.pillar_dir = site.write_pillar(self.workdir / "pillar", self.settings, self.gpg_home, self.master_key)
        t0 = time.monotonic()
        self.host = SystemdHost(
            rootfs,
            name=self.name[:63],
            binds_ro={
                str(REPO): FORMULA_IN_HOST,
                str(self.pillar_dir): PILLAR_IN_HOST,
                str(self.gpg_home): GPG_IN_HOST,
            },
            workdir=self.workdir / "host",
        )
        self.host.start()
        self.timings["boot"] = time.monotonic() - t0
        minion = site.minion_config(FORMULA_IN_HOST, PILLAR_IN_HOST, GPG_IN_HOST)
        self.host.run(["mkdir", "-p", MINION_CONF_IN_HOST])
        self.host.run(["tee", f"{MINION_CONF_IN_HOST}/minion"], input=salt.utils.yaml.safe_dump(minion))
        self.controller = self.workdir / "controller"
        self.controller.mkdir()
        master = site.master_config(self.controller, self.pillar_dir, self.gpg_home)
        (self.controller / "master").write_text(salt.utils.yaml.safe_dump(master))
        self.write_roster(self.control_master)
        self.build_thin()
        return self

    def build_thin(self):
        """salt-ssh's thin (Salt for the target) in the controller's cache, before any timed run.

        salt-ssh builds it once per controller and Salt version and reuses it for every host
        (``salt/utils/thin.py``: rebuilt only when the version differs); a bench's controller is
        new, so it is built here, timed apart (``timings["thin"]``), as a controller that has
        deployed before has it."""
        import salt.config
        import salt.utils.thin

        opts = salt.config.master_config(str(self.controller / "master"))
        t0 = time.monotonic()
        salt.utils.thin.gen_thin(
            opts["cachedir"],
            extra_mods=opts.get("thin_extra_mods"),
            overwrite=opts["regen_thin"],
            extended_cfg=opts.get("ssh_ext_alternatives"),
            exclude_saltexts=opts.get("thin_exclude_saltexts", False),
            saltext_allowlist=opts.get("thin_saltext_allowlist"),
            saltext_blocklist=opts.get("thin_saltext_blocklist"),
        )
        self.timings["thin"] = time.monotonic() - t0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def write_roster(self, control_master):
        """The roster as site.roster() writes it; control_master True/False forces the ssh options."""
        roster = site.roster(TARGET, self.host.ssh_port, self.host.client_key)
        options = [o for o in roster[TARGET]["ssh_options"] if not o.startswith("Control")]
        if control_master:
            options += [
                "ControlMaster=auto",
                f"ControlPath={self.control_path}",
                "ControlPersist=60s",
            ]
        roster[TARGET]["ssh_options"] = options
        self.roster_file = self.controller / "roster"
        self.roster_file.write_text(salt.utils.yaml.safe_dump(roster))
        return roster

    @property
    def control_path(self):
        return str(self.workdir / "cm-%C")

    def salt_ssh(self, *args, timeout=900):
        argv = [
            str(VENV_BIN / "salt-ssh"),
            f"--config-dir={self.controller}",
            f"--roster-file={self.roster_file}",
            f"--priv={self.host.client_key}",
            "--out=json",
            "--static",
            TARGET,
            *args,
        ]
        t0 = time.monotonic()
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
        elapsed = time.monotonic() - t0
        try:
            data = json.loads(proc.stdout)[TARGET]
        except (ValueError, KeyError, TypeError):
            data = None
        return StateRun(proc.returncode, data, proc.stdout + proc.stderr, elapsed)

    def salt_call(self, *args, timeout=900):
        t0 = time.monotonic()
        proc = self.host.run(
            ["salt-call", "-c", MINION_CONF_IN_HOST, "--local", "--out=json", *args], check=False, timeout=timeout
        )
        elapsed = time.monotonic() - t0
        try:
            data = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError, TypeError):
            data = None
        return StateRun(proc.returncode, data, proc.stdout + proc.stderr, elapsed)

    def stop_control_masters(self):
        """Stop the ssh ControlPersist masters this site started (by PID, from ssh -O check)."""
        for sock in self.workdir.glob("cm-*"):
            check = subprocess.run(
                ["ssh", "-o", f"ControlPath={sock}", "-O", "check", "x"], capture_output=True, text=True, check=False
            )
            match = re.search(r"pid=(\d+)", check.stderr + check.stdout)
            if match:
                stop_pid(int(match.group(1)))

    def close(self):
        try:
            self.stop_control_masters()
        finally:
            try:
                if self.host is not None:
                    self.host.stop()
            finally:
                for stub in self.stubs:
                    stub.stop()
                if self.gpg_home is not None and shutil.which("gpgconf"):
                    subprocess.run(
                        ["gpgconf", "--homedir", str(self.gpg_home), "--kill", "gpg-agent"],
                        check=False,
                        capture_output=True,
                    )
                shutil.rmtree(self.workdir, ignore_errors=True)


def _terminate(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")  # runs the finally/with clean-ups


signal.signal(signal.SIGTERM, _terminate)


def header(title):
    print(f"\n== {title} ==")
    print(f"machine: {MACHINE}, {time.strftime('%Y-%m-%d %H:%M')}, load avg {os.getloadavg()[0]:.2f}\n", flush=True)

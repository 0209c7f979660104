"""The gpg-agents of a killed run are stopped by the next one (tests/conftest.py's pytest_sessionstart):
only those of GPG homes whose maker is gone, by PID; a live run's agents stay."""

import json
import subprocess
import time

from tests.harness import site
from tests.harness.common import alive, proc_start_time


def _agent_of(home):
    """The pid of the gpg-agent gpg started for home (gpg-connect-agent starts it if needed)."""
    subprocess.run(["gpg-connect-agent", "--homedir", str(home), "/bye"], capture_output=True, check=True)
    pids = [pid for pid, _start, homedir in site._gpg_agents() if homedir == home]  # noqa: SLF001
    assert len(pids) == 1, pids
    return pids[0]


def _wait_gone(pid, start, timeout=10):
    deadline = time.monotonic() + timeout
    while alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid, start)


def test_only_the_agents_of_a_dead_maker_are_stopped(tmp_path):
    killed_run, live_run, foreign = tmp_path / "killed", tmp_path / "live", tmp_path / "foreign"
    try:
        for home in (killed_run, live_run):
            site.make_gpg_home(home)
        foreign.mkdir(mode=0o700)  # a GPG home someone else made: no record of ours
        # the killed run's maker: a process that has exited since
        maker = subprocess.Popen(["sleep", "30"])
        record = {"pid": maker.pid, "start": proc_start_time(maker.pid)}
        maker.kill()
        maker.wait()
        (killed_run / site.GPG_OWNER).write_text(json.dumps(record))
        agents = {home: _agent_of(home) for home in (killed_run, live_run, foreign)}
        starts = {home: proc_start_time(pid) for home, pid in agents.items()}

        stopped = site.reap_stale_gpg_agents()

        assert agents[killed_run] in stopped
        assert _wait_gone(agents[killed_run], starts[killed_run])
        assert agents[live_run] not in stopped and alive(agents[live_run], starts[live_run])
        assert agents[foreign] not in stopped and alive(agents[foreign], starts[foreign])
    finally:
        for home in (killed_run, live_run, foreign):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True,
                           check=False)

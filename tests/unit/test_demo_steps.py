"""scripts/demo.py: each step of `make demo` timed (issue 17)."""

import importlib.util

from tests.conftest import REPO


def load_demo():
    spec = importlib.util.spec_from_file_location("litellm_salt_demo", REPO / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steps_time_each_step_from_the_last(monkeypatch):
    demo = load_demo()
    clock = iter([100.0, 101.5, 104.0, 104.25, 130.0, 131.0])
    monkeypatch.setattr(demo.time, "monotonic", lambda: next(clock))
    steps = demo.Steps()  # 100.0
    steps.done("rootfs")  # 101.5
    steps.done("host")  # 104.0
    steps.done("deploy (salt-ssh)")  # 104.25
    assert [(name, round(s, 2)) for name, s in steps.seconds] == [("rootfs", 1.5), ("host", 2.5),
                                                                  ("deploy (salt-ssh)", 0.25)]
    assert steps.summary() == "rootfs 1.5 s, host 2.5 s, deploy (salt-ssh) 0.2 s; total 30 s"

"""pytest wiring for the systemd-nspawn host harness (tests/harness)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "integration: boots real systemd hosts with systemd-nspawn (needs root, "
        "debootstrap, systemd-container); fails rather than skips when they are missing",
    )

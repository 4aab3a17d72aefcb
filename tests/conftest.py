"""Shared pytest fixtures.

Ray is started at most once per test session (2 CPUs, bound to 127.0.0.1, no dashboard) and
always shut down at the end. Tests that need their own cluster (multi-node, Jobs) start and
stop it themselves.
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance shared by every test that asks for it."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()

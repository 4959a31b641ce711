"""Shared pytest fixtures: one redis and one fake Frappe per session, reset per test."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from procs import FakeFrappe, RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as r:
        yield r


@pytest.fixture(scope="session")
def _fake_frappe_proc():
    with FakeFrappe() as f:
        yield f


@pytest.fixture
def fake_frappe(_fake_frappe_proc):
    """The session's fake Frappe with empty config and no recorded requests."""
    _fake_frappe_proc.reset()
    return _fake_frappe_proc

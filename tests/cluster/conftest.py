"""Fixtures for the several-hosts tests: a private Redis, the simulator, host processes, a watcher."""

from __future__ import annotations

import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.cluster.helpers import Host
from tests.faults.conftest import rc, redis_server  # noqa: F401 - a private Redis per test


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(v, symbols=6, rate=30) for v in ("binance", "okx", "bybit")]) as s:
        yield s


@pytest.fixture
def hosts(tmp_path):
    """Start hosts with `hosts(host_id, config)`; every one is stopped (SIGCONT first) afterwards."""
    started: list[Host] = []

    def start(host_id, config):
        h = Host(host_id, config, tmp_path)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()

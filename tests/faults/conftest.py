"""Fixtures of the fault matrix: a private Redis per test, the simulator, `tickerctl` processes."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.servers import PostgresServer, RedisServer
from tests.supervisor.conftest import procs  # noqa: F401 - the shared `tickerctl` process fixture


@pytest.fixture
def redis_server():
    """A redis-server of this test's own: every row may kill it, and nothing else writes to it."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
async def rc(redis_server):
    """A client of the private Redis (the test's view of what the service wrote)."""
    r = Redis.from_url(redis_server.url, socket_connect_timeout=1, socket_timeout=2)
    yield r
    await r.aclose()


@pytest.fixture
def pg_server():
    """A private PostgreSQL cluster (started), to stop and start again."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=8, rate=40), SimExchange("okx", symbols=8, rate=40),
                          SimExchange("bybit", symbols=8, rate=40)]) as s:
        yield s

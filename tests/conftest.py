"""Shared test helpers. Tests use real Redis/PostgreSQL on loopback and real ccxt."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def eventually(check: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0,  # noqa: ASYNC109
                     interval: float = 0.02, what: str = "condition") -> Any:
    """Poll `check` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def assert_matches_quote(ticker: dict[str, Any], q: Any, *, timestamp: bool = True,
                         volume: bool = True) -> None:
    """A ccxt ticker equals what the simulator sent (prices exact on the 1e-8 grid)."""
    assert ticker["symbol"] == q.symbol
    assert ticker["last"] == pytest.approx(q.last, rel=1e-12), ticker
    assert ticker["bid"] == pytest.approx(q.bid, rel=1e-12), ticker
    assert ticker["ask"] == pytest.approx(q.ask, rel=1e-12), ticker
    if volume:
        assert ticker["baseVolume"] == pytest.approx(q.volume, rel=1e-12), ticker
    if timestamp:
        assert ticker["timestamp"] == q.ts_ms, ticker


# --- Redis -----------------------------------------------------------------------------------
# Tests that share the machine's Redis use their own database number and flush it around use.
SHARED_REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
SHARED_REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "13"))


@pytest.fixture
async def redis_db():
    """A clean Redis database on the shared server (flushed before and after)."""
    from redis.asyncio import Redis

    r = Redis(host=SHARED_REDIS_HOST, port=SHARED_REDIS_PORT, db=TEST_REDIS_DB)
    await r.flushdb()
    yield r
    await r.flushdb()
    await r.aclose()


@pytest.fixture
def private_redis():
    """A redis-server of the test's own, to kill and restart."""
    from tests.servers import RedisServer

    server = RedisServer().start()
    yield server
    server.stop()


# The whole suite's budget (s): past it no further test starts and the run ends with what it has.
# With the per-test `timeout` in pyproject.toml this bounds a run that keeps hanging well inside
# CI's 90 minutes (the suite takes ~9 minutes here).
SUITE_BUDGET_S = float(os.environ.get("TEST_SUITE_BUDGET_S", "2400"))
_SUITE_STARTED = time.monotonic()


def pytest_runtest_setup(item):
    spent = time.monotonic() - _SUITE_STARTED
    if spent > SUITE_BUDGET_S:
        pytest.exit(f"suite budget exceeded: {spent:.0f}s > TEST_SUITE_BUDGET_S={SUITE_BUDGET_S:g}s; "
                    f"not starting {item.nodeid} or anything after it", returncode=3)


def pytest_terminal_summary(terminalreporter):
    """What the fault matrix and the several-hosts tests measured (also saved as JSON)."""
    from tests.faults.helpers import OUTAGE_S, RESULTS, TIMINGS_FILE, save_results

    if not RESULTS:
        return
    save_results()
    tr = terminalreporter
    tr.section(f"measurements (fault outage {OUTAGE_S:g} s) -> {TIMINGS_FILE}")
    for row, values in RESULTS.items():
        tr.write_line(f"{row}: " + ", ".join(f"{k}={v}" for k, v in values.items()))

"""The embedding API: TickerDaemon and TickerReader against real processes and Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from fullon_ticker_service import TickerDaemon, TickerReader
from fullon_ticker_service.config import Settings
from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB, eventually
from tests.worker.helpers import settings_for


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=6, rate=30)]) as s:
        yield s


async def test_daemon_lifecycle_and_dynamic_symbol(sim, redis_db, monkeypatch, tmp_path):
    """stopped -> process_ticker starts fresh -> another symbol added live -> health -> stop."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    base = settings_for(sim, "binance")
    settings = Settings(redis=base.redis, service=base.service, exchanges=base.exchanges)
    daemon = TickerDaemon(settings)
    assert not daemon.is_running() and daemon.status == "stopped"
    assert (await daemon.get_health())["status"] == "stopped"
    with pytest.raises(ValueError):
        await daemon.process_ticker("BTCUSDT", "binance")
    syms = sim.symbols("binance")
    await daemon.process_ticker(syms[0], "binance")
    assert daemon.is_running()
    reader = TickerReader(Redis(host=SHARED_REDIS_HOST, port=SHARED_REDIS_PORT, db=TEST_REDIS_DB))
    first = await eventually(lambda: reader.get_ticker(syms[0], "binance"), 40, 0.2, "first symbol")
    assert first.exchange == "binance" and first.price > 0 and first.bid <= first.ask and first.age < 60
    await daemon.process_ticker(syms[1], "binance")
    await daemon.process_ticker(syms[1], "binance")  # no duplicate
    assert daemon.catalog == {"binance": tuple(sorted(syms[:2]))}
    await eventually(lambda: reader.get_ticker(syms[1], "binance"), 10, 0.1, "second symbol added live")

    async def healthy():
        h = await daemon.get_health()
        return h["collector"] == "active" and h["workers"] and h["workers"][0]["symbols"] == 2 and h

    h = await eventually(healthy, 20, 0.2, "collector active")
    assert h["status"] == "running" and h["running"] is True and h["exchanges"] == ["binance"]
    assert h["symbol_count"] == 2 and h["process_id"]
    await redis_db.hset("tickers:binance", "BAD/USDT", b"{not json")
    tickers = await reader.get_tickers("binance")
    assert [t.symbol for t in tickers] == sorted(syms[:2]) and reader.corrupt == [("binance", "BAD/USDT")]
    await daemon.stop()
    await daemon.stop()  # safe twice
    assert not daemon.is_running() and (await daemon.get_health())["status"] == "stopped"
    await reader.close()

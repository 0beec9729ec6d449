"""The writer against a real Redis of the test's own (it flushes the server's scripts)."""

from __future__ import annotations

import orjson
import pytest
from redis.asyncio import Redis

from fullon_ticker_service import keys
from fullon_ticker_service.worker.ownership import Lease
from fullon_ticker_service.worker.writer import BATCH, TickWriter

NS = "tst"


def tick(symbol: str, price: float, when: float) -> dict:
    return {"symbol": symbol, "exchange": "binance", "price": price, "volume": 1.0, "time": when, "bid": price - 1,
            "ask": price + 1, "last": price, "change": None, "percentage": None}


@pytest.fixture
async def writer(private_redis):
    r = Redis.from_url(private_redis.url)
    lease = Lease(r, NS, "binance", "host", 5000)
    assert await lease.try_acquire()
    yield TickWriter(r, "binance", NS, lease), r
    await r.aclose()


async def test_a_redis_that_lost_the_script_gets_it_again_and_the_flush_lands(writer):
    """SCRIPT FLUSH (as after a Redis restart without persistence of scripts): the next flush gets
    NOSCRIPT, loads the script and sends again, in the single-call and the pipelined (> BATCH) path."""
    w, r = writer
    w.put("BTC/USDT", tick("BTC/USDT", 100.0, 1.0))
    assert await w.flush_now() == 1 and w.round_trips == 3  # a fresh server has no script yet either
    w.put("BTC/USDT", tick("BTC/USDT", 101.0, 1.5))
    assert await w.flush_now() == 1 and w.round_trips == 4  # from now on one round trip a flush
    for n in (1, BATCH + 5):
        await r.script_flush()
        trips = w.round_trips
        for i in range(n):
            w.put(f"S{i}/USDT", tick(f"S{i}/USDT", 10.0 + n, 2.0 + n))
        assert await w.flush_now() == n
        assert w.round_trips == trips + 3  # the refused call, the load, the call again
        stored = await r.hget(keys.tickers("binance"), f"S{n - 1}/USDT")
        assert stored is not None and orjson.loads(stored)["price"] == 10.0 + n


async def test_older_is_refused_and_reported_with_the_time_redis_holds(writer):
    w, r = writer
    w.put("BTC/USDT", tick("BTC/USDT", 100.0, 5.0))
    await w.flush_now()
    w.put("BTC/USDT", tick("BTC/USDT", 99.0, 4.0))
    assert await w.flush_now() == 0
    assert w.refused == {"BTC/USDT": 5.0} and w.older_in_redis == 1
    assert orjson.loads(await r.hget(keys.tickers("binance"), "BTC/USDT"))["price"] == 100.0

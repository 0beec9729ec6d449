"""Real ccxt.pro hyperliquid against the simulator: values equal what was sent."""

from __future__ import annotations

import math

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.sim.venues.base import fmt
from tests.conftest import eventually

VENUE = "hyperliquid"


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(VENUE, symbols=6, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.hyperliquid(sim.ccxt_config(VENUE))
    ex.set_markets(sim.markets(VENUE))
    yield ex
    await ex.close()


def subscriptions(sim) -> int:
    return sim.exchanges[VENUE].state()["subscriptions"]


async def test_watch_ticker_active_asset_ctx(sim, exchange):
    """watch_ticker (activeAssetCtx) gives last=midPx, bid/ask=impactPxs, no volume and no timestamp."""
    symbol = sim.symbols(VENUE)[1]
    t = await exchange.watch_ticker(symbol)
    q = sim.last_good(VENUE)[symbol]
    assert t["symbol"] == symbol == "ETH/USDC:USDC"
    assert t["last"] == t["close"] == pytest.approx(q.last, rel=1e-12)
    assert t["bid"] == pytest.approx(q.bid, rel=1e-12)
    assert t["ask"] == pytest.approx(q.ask, rel=1e-12)
    assert t["previousClose"] == pytest.approx(q.open, rel=1e-12)
    assert t["quoteVolume"] == pytest.approx(q.quote_volume, rel=1e-12)
    assert t["baseVolume"] is None and t["open"] is None
    assert t["timestamp"] is None and t["datetime"] is None
    assert t["info"]["dayBaseVlm"] == fmt(q.volume) and t["info"]["markPx"] == fmt(q.last)


async def test_watch_tickers_all_mids_burst(sim, exchange):
    """After a burst on allMids, every symbol's stored ticker has last equal to the last sent value."""
    symbols = sim.symbols(VENUE)
    first = await exchange.watch_tickers(symbols)
    assert set(first) == set(symbols)  # the subscribe snapshot carries every mid in one frame
    sim.set_rate(VENUE, 100, count=30)  # protocol check, not throughput (see closing note)
    await sim.drained(VENUE)
    good = sim.last_good(VENUE)

    def all_equal():
        return all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols)

    await eventually(all_equal, what="every symbol to reach its last sent value")
    for s in symbols:
        t = exchange.tickers[s]
        assert t["symbol"] == s and t["close"] == good[s].last
        assert t["bid"] is None and t["ask"] is None and t["baseVolume"] is None
        assert t["timestamp"] is None


async def test_all_mids_overwrites_asset_ctx_ticker(sim, exchange):
    """allMids and activeAssetCtx share exchange.tickers, so a mid-only update erases bid/ask."""
    symbol = sim.symbols(VENUE)[0]
    t = await exchange.watch_ticker(symbol)
    assert t["bid"] is not None
    await exchange.watch_tickers([symbol])
    assert exchange.tickers[symbol]["bid"] is None
    assert exchange.tickers[symbol]["last"] == sim.last_good(VENUE)[symbol].last


async def test_nan_fault_reaches_ccxt(sim, exchange):
    """A NaN price is encoded as "NaN" and ccxt parses it to a float NaN last."""
    symbols = sim.symbols(VENUE)
    await exchange.watch_tickers(symbols)
    await sim.fault(VENUE, "nan")
    sim.set_rate(VENUE, 500, count=1)
    await sim.drained(VENUE)
    await eventually(lambda: math.isnan(exchange.tickers[symbols[0]]["last"]), what="a NaN last")


async def test_unsubscribe_stops_updates(sim, exchange):
    """un_watch_ticker and un_watch_tickers send unsubscribe, and the acks clear ccxt's tickers."""
    symbols = sim.symbols(VENUE)
    await exchange.watch_ticker(symbols[0])
    await exchange.watch_tickers(symbols)
    assert subscriptions(sim) == 1 + len(symbols)
    assert await exchange.un_watch_ticker(symbols[0]) is True
    assert subscriptions(sim) == len(symbols)
    assert await exchange.un_watch_tickers(symbols) is True
    assert subscriptions(sim) == 0
    assert exchange.tickers == {}  # the allMids ack deletes every stored ticker
    t = await exchange.watch_ticker(symbols[0])  # re-subscribing right after works
    assert t["bid"] == sim.last_good(VENUE)[symbols[0]].bid


async def test_raw_protocol_ping_and_errors(sim):
    """The socket answers ping with pong, acks a subscribe, and rejects duplicates and unknown coins."""
    url = sim.ccxt_config(VENUE)["urls"]["api"]["ws"]["public"]
    sub = {"type": "activeAssetCtx", "coin": "BTC"}
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str('{"method":"ping"}')
        assert orjson.loads(await ws.receive_str(timeout=5)) == {"channel": "pong"}
        await ws.send_str(orjson.dumps({"method": "subscribe", "subscription": sub}).decode())
        assert orjson.loads(await ws.receive_str(timeout=5)) == {
            "channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": sub}}
        frame = orjson.loads(await ws.receive_str(timeout=5))
        assert frame["channel"] == "activeAssetCtx" and frame["data"]["coin"] == "BTC"
        await ws.send_str(orjson.dumps({"method": "subscribe", "subscription": sub}).decode())
        err = orjson.loads(await ws.receive_str(timeout=5))
        assert err["channel"] == "error" and err["data"].startswith("Already subscribed:")
        bad = {"method": "subscribe", "subscription": {"type": "activeAssetCtx", "coin": "NOPE"}}
        await ws.send_str(orjson.dumps(bad).decode())
        assert orjson.loads(await ws.receive_str(timeout=5))["channel"] == "error"

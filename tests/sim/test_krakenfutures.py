"""Real ccxt.pro krakenfutures (perpetuals and futures) against the simulator."""

from __future__ import annotations

import asyncio

import aiohttp
import ccxt
import ccxt.pro as ccxtpro
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.sim.venues.krakenfutures import KrakenFutures
from tests.conftest import eventually

VENUE = "krakenfutures"


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(VENUE, symbols=8, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.krakenfutures(sim.ccxt_config(VENUE))
    ex.set_markets(sim.markets(VENUE))
    yield ex
    await ex.close()


def test_markets_mix_perpetuals_and_futures():
    markets = KrakenFutures().make_markets(8)
    assert [m["id"] for m in markets] == ["PF_XBTUSD", "PI_XBTUSD", "PF_ETHUSD", "FI_XBTUSD_281229",
                                          "PF_SOLUSD", "PI_ETHUSD", "PF_XRPUSD", "FF_XBTUSD_281229"]
    assert [m["symbol"] for m in markets[:4]] == ["BTC/USD:USD", "BTC/USD:BTC", "ETH/USD:USD", "BTC/USD:BTC-281229"]
    assert markets[7]["symbol"] == "BTC/USD:USD-281229" and markets[7]["linear"] and markets[7]["type"] == "future"
    assert markets[0]["baseId"] == "XBT" and markets[1]["inverse"]


@pytest.mark.parametrize("index", [0, 1, 3, 7], ids=["PF", "PI", "FI", "FF"])
async def test_watch_ticker(sim, exchange, index):
    """The `ticker` feed: last/bid/ask as sent; the frame's `time` is the quote time but ccxt reads
    `lastTime`, so its timestamp is None. Volume in contracts (USD on inverse markets)."""
    symbol = sim.symbols(VENUE)[index]
    t = await asyncio.wait_for(exchange.watch_ticker(symbol), 5)
    q = sim.last_good(VENUE)[symbol]
    market = exchange.market(symbol)
    assert (t["symbol"], t["last"], t["bid"], t["ask"]) == (symbol, q.last, q.bid, q.ask)
    assert t["timestamp"] is None and t["info"]["time"] == q.ts_ms
    assert t["baseVolume"] == (round(q.quote_volume) if market["inverse"] else q.volume)
    assert t["info"]["tag"] == ("perpetual" if market["swap"] else "quarter")


async def test_watch_tickers_after_a_burst(sim, exchange):
    """Perpetuals (linear and inverse) in one call: every stored ticker equals the last one sent."""
    symbols = [m["symbol"] for m in sim.markets(VENUE) if m["swap"]]
    await asyncio.wait_for(exchange.watch_tickers(symbols), 5)
    await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] >= len(symbols), 5,
                     what="every symbol subscribed")
    sim.set_rate(VENUE, 300, count=24)
    await sim.drained(VENUE)
    good = sim.last_good(VENUE)
    await eventually(lambda: all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols),
                     what="every symbol to reach its last sent value")
    assert all(exchange.tickers[s]["bid"] == good[s].bid for s in symbols)


async def test_futures_and_perpetuals_do_not_mix(sim, exchange):
    """ccxt refuses one watch call over a future and a perpetual."""
    with pytest.raises(ccxt.BadRequest, match="same type"):
        await exchange.watch_tickers(["BTC/USD:USD", "BTC/USD:BTC-281229"])


async def test_watch_bids_asks_ticker_lite(sim, exchange):
    """watch_bids_asks uses `ticker_lite`: bid/ask as sent, no last and no timestamp."""
    symbols = [s for s in sim.symbols(VENUE) if exchange.market(s)["swap"]][:3]
    await asyncio.wait_for(exchange.watch_bids_asks(symbols), 5)
    await eventually(lambda: all(s in exchange.bidsasks for s in symbols), 5, what="all bidsasks")
    good = sim.last_good(VENUE)
    for s in symbols:
        b = exchange.bidsasks[s]
        assert (b["bid"], b["ask"], b["last"], b["timestamp"]) == (good[s].bid, good[s].ask, None, None)
        assert b["info"]["feed"] == "ticker_lite"


async def test_raw_protocol(sim):
    """info on connect, one ack per product, errors for unknown products, an alert for a repeat."""
    url = sim.http_url.replace("http", "ws", 1) + f"/{VENUE}/ws/v1"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert await ws.receive_json(timeout=5) == {"event": "info", "version": 1}
        await ws.send_str('{"event":"subscribe","feed":"ticker","product_ids":["PI_XBTUSD","NOPE","PF_ETHUSD"]}')
        ack = {"event": "subscribed", "feed": "ticker", "product_ids": ["PI_XBTUSD"]}
        assert await ws.receive_json(timeout=5) == ack
        first = await ws.receive_json(timeout=5)
        assert first["feed"] == "ticker" and first["product_id"] == "PI_XBTUSD" and "funding_rate" in first
        assert await ws.receive_json(timeout=5) == {"event": "error", "message": "Invalid product id"}
        assert (await ws.receive_json(timeout=5))["event"] == "subscribed"
        assert (await ws.receive_json(timeout=5))["product_id"] == "PF_ETHUSD"
        await ws.send_str('{"event":"subscribe","feed":"ticker","product_ids":["PI_XBTUSD"]}')
        assert await ws.receive_json(timeout=5) == {"event": "alert",
                                                    "message": "Already subscribed to feed, re-requesting"}
        assert (await ws.receive_json(timeout=5))["product_id"] == "PI_XBTUSD"
        await ws.send_str('{"event":"unsubscribe","feed":"ticker","product_ids":["PI_XBTUSD","PF_ETHUSD"]}')
        assert (await ws.receive_json(timeout=5))["event"] == "unsubscribed"
        assert (await ws.receive_json(timeout=5))["event"] == "unsubscribed"
        await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] == 0, what="unsubscribed")

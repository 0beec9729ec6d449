"""Real ccxt.pro kucoin against the simulator: bullet-public token, welcome, tickers and level1."""

from __future__ import annotations

import asyncio

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import assert_matches_quote, eventually

VENUE = "kucoin"


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(VENUE, symbols=6, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.kucoin(sim.ccxt_config(VENUE))
    ex.set_markets(sim.markets(VENUE))
    ex.open()  # with injected markets ccxt needs its loop before the bullet-public REST call
    yield ex
    await ex.close()


async def test_bullet_public_points_back_at_the_simulator(sim):
    """POST /api/v1/bullet-public gives a token and an endpoint on this simulator."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.http_url}/{VENUE}/api/v1/bullet-public") as r:
            assert r.status == 200
            body = await r.json()
        async with http.get(f"{sim.http_url}/{VENUE}/api/v1/bullet-public") as r:
            assert r.status == 405
    assert body["code"] == "200000" and body["data"]["token"]
    (server,) = body["data"]["instanceServers"]
    assert server["endpoint"] == sim.http_url.replace("http", "ws", 1) + f"/{VENUE}/endpoint"
    assert (server["pingInterval"], server["pingTimeout"], server["protocol"]) == (18000, 10000, "websocket")


async def test_watch_ticker_market_snapshot(sim, exchange):
    """watch_ticker uses `/market/snapshot`: last, bid, ask, volume and `datetime` as sent."""
    symbol = sim.symbols(VENUE)[1]
    t = await asyncio.wait_for(exchange.watch_ticker(symbol), 5)
    q = sim.last_good(VENUE)[symbol]
    assert_matches_quote(t, q)
    assert t["quoteVolume"] == pytest.approx(q.quote_volume, rel=1e-12) and t["open"] == q.open
    (url,) = exchange.clients
    assert url.startswith(sim.http_url.replace("http", "ws", 1) + f"/{VENUE}/endpoint?token=")
    assert "connectId=public" in url and exchange.clients[url].keepAlive == 18000


async def test_watch_tickers_market_ticker(sim, exchange):
    """watch_tickers uses `/market/ticker:<ids>`: last/bid/ask and `time` as sent, no volume."""
    symbols = sim.symbols(VENUE)
    await asyncio.wait_for(exchange.watch_tickers(symbols), 5)
    await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] >= len(symbols), 5,
                     what="every symbol subscribed")
    sim.set_rate(VENUE, 300, count=30)
    await sim.drained(VENUE)
    good = sim.last_good(VENUE)
    await eventually(lambda: all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols),
                     what="every symbol to reach its last sent value")
    for s in symbols:
        assert_matches_quote(exchange.tickers[s], good[s], volume=False)
        assert exchange.tickers[s]["baseVolume"] is None


async def test_watch_bids_asks_level1(sim, exchange):
    """watch_bids_asks uses `/spotMarket/level1:<ids>`: bid/ask and `timestamp` as sent."""
    symbols = sim.symbols(VENUE)[:3]
    await asyncio.wait_for(exchange.watch_bids_asks(symbols), 5)
    await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] >= len(symbols), 5,
                     what="every symbol subscribed")
    sim.set_rate(VENUE, 300, count=12)
    await sim.drained(VENUE)
    good = sim.last_good(VENUE)
    await eventually(lambda: all(exchange.bidsasks.get(s, {}).get("bid") == good[s].bid for s in symbols),
                     what="every bid/ask to reach its last sent value")
    for s in symbols:
        b = exchange.bidsasks[s]
        assert (b["bid"], b["ask"], b["timestamp"]) == (good[s].bid, good[s].ask, good[s].ts_ms)


async def test_raw_protocol(sim):
    """welcome (id = connectId), acks, pong, errors for unknown topics and oversized batches."""
    base = sim.http_url.replace("http", "ws", 1) + f"/{VENUE}/endpoint"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{base}?token=abc&connectId=c1") as ws:
            assert await ws.receive_json(timeout=5) == {"id": "c1", "type": "welcome"}
            await ws.send_str('{"id":"p","type":"ping"}')
            assert await ws.receive_json(timeout=5) == {"id": "p", "type": "pong"}
            await ws.send_str('{"id":"1","type":"subscribe","topic":"/market/ticker:BTC-USDT,ETH-USDT",'
                              '"response":true}')
            assert await ws.receive_json(timeout=5) == {"id": "1", "type": "ack"}
            frames = [await ws.receive_json(timeout=5) for _ in range(2)]
            assert [f["topic"] for f in frames] == ["/market/ticker:BTC-USDT", "/market/ticker:ETH-USDT"]
            assert list(frames[0]) == ["data", "subject", "topic", "type"] and frames[0]["subject"] == "trade.ticker"
            await ws.send_str('{"id":"2","type":"subscribe","topic":"/market/ticker:NOPE-USDT","response":true}')
            assert await ws.receive_json(timeout=5) == {"id": "2", "type": "error", "code": 404,
                                                        "data": "topic /market/ticker:NOPE-USDT is not found"}
            many = ",".join(["BTC-USDT"] * 101)
            await ws.send_str(orjson.dumps({"id": "3", "type": "subscribe", "topic": f"/market/ticker:{many}",
                                            "response": True}).decode())
            err = await ws.receive_json(timeout=5)
            assert (err["type"], err["code"]) == ("error", 509)
            await ws.send_str('{"id":"4","type":"unsubscribe","topic":"/market/ticker:BTC-USDT,ETH-USDT",'
                              '"response":true}')
            assert await ws.receive_json(timeout=5) == {"id": "4", "type": "ack"}
            await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] == 0, what="unsubscribed")
        async with session.ws_connect(base) as ws:  # no token
            err = await ws.receive_json(timeout=5)
            assert (err["type"], err["code"]) == ("error", 401)
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)

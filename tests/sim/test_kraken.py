"""Real ccxt.pro kraken (websocket v2) against the simulator: values equal what was sent."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest
from ccxt.base.errors import NotSupported, RequestTimeout

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import assert_matches_quote, eventually

N_SYMBOLS = 14  # all twelve real bases (incl. Kraken's X-prefixed ids) plus two synthetic ones


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("kraken", symbols=N_SYMBOLS, rate=0)]) as s:
        yield s


def _make(sim, keep_alive_ms: int | None = None):
    config = sim.ccxt_config("kraken")
    if keep_alive_ms is not None:
        config["streaming"] = {"keepAlive": keep_alive_ms}
    ex = ccxtpro.kraken(config)
    ex.set_markets(sim.markets("kraken"))
    return ex


@pytest.fixture
async def exchange(sim):
    ex = _make(sim)
    yield ex
    await ex.close()


@pytest.fixture
async def fast_exchange(sim):
    ex = _make(sim, keep_alive_ms=200)
    yield ex
    await ex.close()


async def test_watch_ticker_values_equal_sent(sim, exchange):
    """watch_ticker returns symbol, last, bid, ask and base volume as sent, with no timestamp."""
    symbol = sim.symbols("kraken")[0]
    t = await exchange.watch_ticker(symbol)
    q = sim.last_good("kraken")[symbol]
    assert_matches_quote(t, q, timestamp=False)
    assert t["timestamp"] is None and t["datetime"] is None
    assert t["info"]["symbol"] == "BTC/USD" and exchange.market(symbol)["id"] == "XXBTZUSD"
    assert t["high"] == q.high and t["low"] == q.low and t["vwap"] == q.last
    assert t["percentage"] == round(q.percentage, 2)


async def test_watch_tickers_updates_every_symbol(sim, exchange):
    """After a burst, ccxt's stored ticker of every symbol equals the last one sent."""
    symbols = sim.symbols("kraken")
    await exchange.watch_tickers(symbols)
    state = sim.exchanges["kraken"].state
    assert state()["connections"] == 1 and state()["subscriptions"] == N_SYMBOLS
    # start the burst only once every symbol is subscribed (watch_tickers returns on the first one)
    await eventually(lambda: sim.exchanges["kraken"].state()["subscriptions"] >= len(symbols), 10,
                     what="every symbol subscribed")
    sim.set_rate("kraken", 100, count=30)  # protocol check, not throughput (see closing note)
    await sim.drained("kraken")
    good = sim.last_good("kraken")

    def all_equal():
        return all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols)

    await eventually(all_equal, what="every symbol to reach its last sent value")
    for s in symbols:
        assert_matches_quote(exchange.tickers[s], good[s], timestamp=False)
        assert exchange.tickers[s]["timestamp"] is None


async def test_watch_bids_asks_uses_bbo_ticker_and_fills_tickers(sim, exchange):
    """watch_bids_asks subscribes `ticker` with event_trigger bbo; ccxt stores it in tickers, not bidsasks."""
    symbols = sim.symbols("kraken")[:3]
    first = await exchange.watch_bids_asks(symbols)
    assert len(first) == 1  # newUpdates: only the symbol that resolved the wait
    conn = next(iter(sim.exchanges["kraken"].conns))
    assert conn.subs == {("ticker:bbo", s) for s in symbols}
    good = sim.last_good("kraken")
    await eventually(lambda: all(s in exchange.tickers for s in symbols), what="all three tickers")
    for s in symbols:
        assert_matches_quote(exchange.tickers[s], good[s], timestamp=False)
    assert exchange.bidsasks == {}


async def test_nan_price_is_sent_as_null(sim, exchange):
    """A NaN last price goes out as JSON null: ccxt yields last None and keeps the connection."""
    symbol = sim.symbols("kraken")[0]
    await exchange.watch_tickers([symbol])
    await sim.fault("kraken", "nan")
    sim.set_rate("kraken", 100, count=1)  # the next tick goes to symbols[0] (round robin from 0)
    t = await exchange.watch_ticker(symbol)
    assert t["last"] is None and t["close"] is None and t["percentage"] is None
    assert t["bid"] == sim.exchanges["kraken"].walk.quotes[symbol].bid
    sim.set_rate("kraken", 100, count=N_SYMBOLS)
    t = await exchange.watch_ticker(symbol)
    assert_matches_quote(t, sim.last_good("kraken")[symbol], timestamp=False)
    assert sim.exchanges["kraken"].state()["connections_accepted"] == 1


async def test_negative_and_crossed_prices_pass_through(sim, exchange):
    """Negative and crossed quotes are encoded as ordinary JSON numbers and reach ccxt unchanged."""
    symbol = sim.symbols("kraken")[0]
    await exchange.watch_tickers([symbol])
    await sim.fault("kraken", "negative")
    sim.set_rate("kraken", 100, count=1)
    t = await exchange.watch_ticker(symbol)
    q = sim.exchanges["kraken"].walk.quotes[symbol]
    assert (t["last"], t["bid"], t["ask"]) == (-q.last, -q.bid, -q.ask)
    sim.set_rate("kraken", 500, count=N_SYMBOLS - 1)  # the other symbols, so the next tick is symbol's
    await sim.drained("kraken")
    await sim.fault("kraken", "crossed")
    sim.set_rate("kraken", 100, count=1)
    t = await exchange.watch_ticker(symbol)
    q = sim.exchanges["kraken"].walk.quotes[symbol]
    assert t["bid"] == round(q.ask * 1.01, 8) > t["ask"] == q.ask


async def test_bare_nan_token_stalls_ccxt_until_keepalive_timeout(sim, fast_exchange):
    """Why NaN is sent as null: ccxt parses with orjson, and a bare NaN kills its reader until keepalive fails."""
    symbol = sim.symbols("kraken")[0]
    await fast_exchange.watch_ticker(symbol)
    conn = next(iter(sim.exchanges["kraken"].conns))
    await conn.send('{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.0,'
                    '"bid_qty":1.5,"ask":1.1,"ask_qty":2.25,"last":NaN,"volume":5.0,"vwap":NaN,'
                    '"low":1.0,"high":1.2,"change":NaN,"change_pct":NaN}]}')
    sim.set_rate("kraken", 50)
    with pytest.raises(RequestTimeout, match="ping-pong keepalive"):
        await asyncio.wait_for(fast_exchange.watch_ticker(symbol), 10)
    assert fast_exchange.tickers[symbol]["bid"] != 1.0  # the NaN frame never reached handle_ticker
    t = await fast_exchange.watch_ticker(symbol)  # the next watch reconnects and resubscribes
    assert t["last"] is not None
    assert sim.exchanges["kraken"].state()["connections_accepted"] == 2


async def test_ping_keeps_an_idle_connection_alive(sim, fast_exchange):
    """ccxt's {"method":"ping"} is answered with pong, so an idle connection survives many keepalive periods."""
    symbol = sim.symbols("kraken")[0]
    await fast_exchange.watch_ticker(symbol)
    client = fast_exchange.clients[fast_exchange.urls["api"]["ws"]["publicV2"]]
    started = time.time() * 1000
    await asyncio.sleep(1.5)  # 7 keepalive periods of 200 ms with no ticker traffic
    assert client.lastPong is not None and client.lastPong > started
    sim.set_rate("kraken", 100, count=N_SYMBOLS)
    t = await fast_exchange.watch_ticker(symbol)
    assert_matches_quote(t, sim.last_good("kraken")[symbol], timestamp=False)
    assert sim.exchanges["kraken"].state()["connections_accepted"] == 1


async def test_un_watch_tickers_not_supported(sim, exchange):
    """ccxt 4.5.90 kraken has no un_watch_ticker(s): it raises NotSupported and sends nothing."""
    symbols = sim.symbols("kraken")[:2]
    await exchange.watch_tickers(symbols)
    with pytest.raises(NotSupported):
        await exchange.un_watch_tickers(symbols)
    with pytest.raises(NotSupported):
        await exchange.un_watch_ticker(symbols[0])
    assert sim.exchanges["kraken"].state()["subscriptions"] == 2


async def test_raw_protocol_frames(sim):
    """Status on connect, per-symbol acks/errors, snapshot, pong, heartbeat and unsubscribe as Kraken v2 sends."""
    url = sim.ccxt_config("kraken")["urls"]["api"]["ws"]["publicV2"]
    state = sim.exchanges["kraken"].state
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async def recv():
            return orjson.loads((await asyncio.wait_for(ws.receive(), 5)).data)

        status = await recv()
        assert status["channel"] == "status" and status["data"][0]["api_version"] == "v2"
        await ws.send_str('{"method":"subscribe","params":{"channel":"ticker","symbol":["ETH/USD","XBT/USD"]},'
                          '"req_id":7}')
        ack = await recv()
        assert ack["success"] is True and ack["req_id"] == 7 and ack["result"] == {
            "channel": "ticker", "event_trigger": "trades", "snapshot": True, "symbol": "ETH/USD"}
        assert ack["time_in"].endswith("Z") and ack["time_out"] >= ack["time_in"]
        snap = await recv()
        q = sim.last_good("kraken")["ETH/USD"]
        assert snap["channel"] == "ticker" and snap["type"] == "snapshot"
        row = snap["data"][0]
        assert row["symbol"] == "ETH/USD" and (row["last"], row["bid"], row["ask"]) == (q.last, q.bid, q.ask)
        assert all(isinstance(row[k], float) for k in ("bid", "ask", "last", "volume", "vwap"))
        err = await recv()
        assert err["success"] is False and err["symbol"] == "XBT/USD" and err["req_id"] == 7
        assert err["error"].startswith("Currency pair not supported")
        sim.set_rate("kraken", 100, count=N_SYMBOLS)
        update = await recv()
        assert update["type"] == "update" and update["data"][0]["symbol"] == "ETH/USD"
        await ws.send_str('{"method":"ping","req_id":9}')
        pong = await recv()
        while pong.get("channel") == "ticker":
            pong = await recv()
        assert pong["method"] == "pong" and pong["req_id"] == 9 and "time_out" in pong
        assert await recv() == {"channel": "heartbeat"}  # idle for a second
        await ws.send_str('{"method":"unsubscribe","params":{"channel":"ticker","symbol":["ETH/USD"]},"req_id":8}')
        unsub = await recv()
        while unsub.get("channel") == "heartbeat":
            unsub = await recv()
        assert unsub["method"] == "unsubscribe" and unsub["success"] is True
        assert unsub["result"] == {"channel": "ticker", "event_trigger": "trades", "symbol": "ETH/USD"}
        assert state()["subscriptions"] == 0

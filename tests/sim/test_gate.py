"""Real ccxt.pro gate (spot, USDT- and BTC-settled perpetual sockets) against the simulator."""

from __future__ import annotations

import asyncio

import aiohttp
import ccxt
import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.sim.venues.gate import Gate, socket_of
from tests.conftest import eventually

VENUE = "gate"
PATHS = {"spot": "/ws/v4/", "usdt": "/v4/ws/usdt", "btc": "/v4/ws/btc"}


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(VENUE, symbols=7, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.gate(sim.ccxt_config(VENUE))
    ex.set_markets(sim.markets(VENUE))
    yield ex
    await ex.close()


def of(sim: Simulator, sock: str) -> list[str]:
    return [m["symbol"] for m in sim.markets(VENUE) if socket_of(m) == sock]


def ws_url(sim: Simulator, sock: str) -> str:
    return sim.http_url.replace("http", "ws", 1) + f"/{VENUE}{PATHS[sock]}"


def test_markets_mix_three_kinds():
    markets = Gate().make_markets(7)
    assert [m["symbol"] for m in markets] == ["BTC/USDT", "BTC/USDT:USDT", "BTC/USD:BTC", "ETH/USDT",
                                              "ETH/USDT:USDT", "SOL/USDT", "SOL/USDT:USDT"]
    assert [m["id"] for m in markets[:3]] == ["BTC_USDT", "BTC_USDT", "BTC_USD"]
    assert markets[1]["contractSize"] == 0.0001 and markets[2]["inverse"] and markets[2]["settle"] == "BTC"


@pytest.mark.parametrize("sock", ["spot", "usdt", "btc"])
async def test_watch_ticker_on_its_own_socket(sim, exchange, sock):
    """Tickers carry no time (ccxt: None); spot has bid/ask, futures do not; BTC-settled volumes as
    Gate sends them (volume_24h_base "0")."""
    symbol = of(sim, sock)[0]
    t = await asyncio.wait_for(exchange.watch_ticker(symbol), 5)
    q = sim.last_good(VENUE)[symbol]
    assert list(exchange.clients) == [ws_url(sim, sock)]
    assert (t["symbol"], t["last"], t["timestamp"]) == (symbol, q.last, None)
    assert t["high"] == q.high and t["low"] == q.low
    if sock == "spot":
        assert (t["bid"], t["ask"], t["baseVolume"]) == (q.bid, q.ask, q.volume)
        assert t["quoteVolume"] == pytest.approx(q.quote_volume, rel=1e-12)
    else:
        assert t["bid"] is None and t["ask"] is None and t["markPrice"] == q.last
    if sock == "usdt":
        assert t["baseVolume"] == q.volume
    if sock == "btc":
        assert t["baseVolume"] == 0 and float(t["info"]["volume_24_btc"]) == q.volume
        assert t["quoteVolume"] == round(q.quote_volume)


@pytest.mark.parametrize("sock", ["spot", "usdt", "btc"])
async def test_watch_bids_asks_book_ticker(sim, exchange, sock):
    """watch_bids_asks uses `<spot|futures>.book_ticker`: bid/ask and `t` as timestamp."""
    symbols = of(sim, sock)
    await asyncio.wait_for(exchange.watch_bids_asks(symbols), 5)
    await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] >= len(symbols), 5,
                     what="every symbol subscribed")
    sim.set_rate(VENUE, 300, count=21)
    await sim.drained(VENUE)
    good = sim.last_good(VENUE)
    await eventually(lambda: all(exchange.bidsasks.get(s, {}).get("bid") == good[s].bid for s in symbols),
                     what="every bid/ask to reach its last sent value")
    for s in symbols:
        b = exchange.bidsasks[s]
        assert (b["bid"], b["ask"], b["timestamp"]) == (good[s].bid, good[s].ask, good[s].ts_ms)
        # ccxt asks for decimal sizes (X-Gate-Size-Decimal: 1): strings, also on futures
        assert isinstance(b["info"]["B"], str)


async def test_watch_tickers_after_a_burst(sim, exchange):
    """After a burst, every USDT perpetual's stored ticker equals the last one sent."""
    symbols = of(sim, "usdt")
    await exchange.watch_tickers(symbols)
    await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] >= len(symbols), 5,
                     what="every symbol subscribed")
    sim.set_rate(VENUE, 300, count=28)
    await sim.drained(VENUE)
    good = sim.last_good(VENUE)
    await eventually(lambda: all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols),
                     what="every symbol to reach its last sent value")
    assert all(exchange.tickers[s]["baseVolume"] == good[s].volume for s in symbols)


async def test_a_watch_call_goes_to_the_socket_of_its_first_symbol(sim, exchange):
    """ccxt routes a call by its first symbol: a USDT contract sent to the BTC-settled socket is
    unknown there (the error rejects the call); a perpetual's id on the spot socket is the spot
    pair's, so the perpetual never arrives, with no error."""
    with pytest.raises(ccxt.ExchangeError, match="unknown contract: ETH_USDT"):
        await asyncio.wait_for(exchange.watch_tickers(["BTC/USD:BTC", "ETH/USDT:USDT"]), 5)
    await asyncio.wait_for(exchange.watch_tickers(["BTC/USDT", "ETH/USDT:USDT"]), 5)
    sim.set_rate(VENUE, 300, count=21)
    await sim.drained(VENUE)
    await eventually(lambda: exchange.tickers.get("ETH/USDT", {}).get("last")
                     == sim.last_good(VENUE)["ETH/USDT"].last, what="the spot pair's ticker")
    assert "ETH/USDT:USDT" not in exchange.tickers


def req(req_id: int, channel: str, event: str, payload: list[str]) -> str:
    return orjson.dumps({"time": 1, "id": req_id, "channel": channel, "event": event, "payload": payload}).decode()


async def test_raw_protocol(sim):
    """Acks, errors, ping/pong and unsubscribe have Gate's v4 shape; futures sizes are integers
    unless the handshake asked for decimals."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url(sim, "spot")) as ws:
            await ws.send_str('{"time":1,"channel":"spot.ping"}')
            pong = await ws.receive_json(timeout=5)
            assert pong["channel"] == "spot.pong" and pong["event"] == "" and pong["result"] is None
            await ws.send_str(req(5, "spot.tickers", "subscribe", ["BTC_USDT"]))
            ack = await ws.receive_json(timeout=5)
            assert list(ack) == ["time", "time_ms", "id", "conn_id", "trace_id", "channel", "event", "payload",
                                 "result", "requestId"]
            assert (ack["id"], ack["event"], ack["result"], ack["payload"]) == (
                5, "subscribe", {"status": "success"}, ["BTC_USDT"])
            data = await ws.receive_json(timeout=5)
            assert data["channel"] == "spot.tickers" and data["event"] == "update"
            assert data["result"]["currency_pair"] == "BTC_USDT" and "t" not in data["result"]
            await ws.send_str(req(6, "spot.tickers", "subscribe", ["NOPE_USDT"]))
            err = await ws.receive_json(timeout=5)
            assert err["error"] == {"code": 2, "message": "unknown currency pair: NOPE_USDT"}
            assert err["result"] == {"status": "fail"} and err["id"] == 6
            await ws.send_str(req(7, "futures.tickers", "subscribe", ["BTC_USDT"]))  # not on the spot socket
            assert (await ws.receive_json(timeout=5))["result"] == {"status": "fail"}
            await ws.send_str(req(8, "spot.tickers", "unsubscribe", ["BTC_USDT"]))
            unsub = await ws.receive_json(timeout=5)
            assert unsub["event"] == "unsubscribe" and unsub["result"] == {"status": "success"}
            await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] == 0, what="unsubscribed")
        async with session.ws_connect(ws_url(sim, "usdt")) as ws:
            await ws.send_str(req(1, "futures.book_ticker", "subscribe", ["BTC_USDT"]))
            assert (await ws.receive_json(timeout=5))["result"] == {"status": "success"}
            book = await ws.receive_json(timeout=5)
            assert isinstance(book["result"]["B"], int) and book["result"]["s"] == "BTC_USDT"
            assert book["result"]["t"] == sim.last_good(VENUE)["BTC/USDT:USDT"].ts_ms
            await ws.send_str(req(2, "futures.tickers", "subscribe", ["BTC_USDT"]))
            await ws.receive_json(timeout=5)
            tick = await ws.receive_json(timeout=5)
            assert isinstance(tick["result"], list) and tick["result"][0]["contract"] == "BTC_USDT"
            assert "highest_bid" not in tick["result"][0] and "mark_price" in tick["result"][0]

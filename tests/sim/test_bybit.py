"""Real ccxt.pro bybit (v5 public: spot, linear and inverse sockets) against the simulator."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import aiohttp
import ccxt
import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.sim.venues.base import Conn
from fullon_ticker_service.sim.venues.bybit import category
from tests.conftest import assert_matches_quote, eventually

VENUE = "bybit"


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(VENUE, symbols=9, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.bybit(sim.ccxt_config(VENUE))
    ex.set_markets(sim.markets(VENUE))
    yield ex
    await ex.close()


def of(sim: Simulator, cat: str) -> list[str]:
    return [m["symbol"] for m in sim.markets(VENUE) if category(m) == cat]


def ws_url(sim: Simulator, cat: str) -> str:
    return sim.http_url.replace("http", "ws", 1) + f"/{VENUE}/v5/public/{cat}"


def test_markets_mix_three_kinds():
    """make_markets spreads the symbols over linear, spot and inverse, spot and linear sharing ids."""
    from fullon_ticker_service.sim.venues.bybit import Bybit

    markets = Bybit().make_markets(9)
    assert [m["symbol"] for m in markets[:3]] == ["BTC/USDT:USDT", "BTC/USDT", "BTC/USD:BTC"]
    assert [m["id"] for m in markets[:3]] == ["BTCUSDT", "BTCUSDT", "BTCUSD"]
    assert [category(m) for m in markets] == ["linear", "spot", "inverse"] * 3
    inverse = markets[2]
    assert inverse["inverse"] and inverse["settle"] == "BTC" and inverse["type"] == "swap"
    assert len(Bybit().make_markets(20)) == 20 and len(Bybit().make_markets(2)) == 2


@pytest.mark.parametrize("cat", ["linear", "spot", "inverse"])
async def test_watch_ticker_on_its_own_socket(sim, exchange, cat):
    """watch_ticker of each kind goes to its socket and returns what was sent, with the frame's ts.
    Spot tickers carry no bid/ask; inverse volumes are in USD contracts (ccxt's baseVolume)."""
    symbol = of(sim, cat)[1]
    t = await asyncio.wait_for(exchange.watch_ticker(symbol), 5)
    q = sim.last_good(VENUE)[symbol]
    assert list(exchange.clients) == [ws_url(sim, cat)]
    if cat == "linear":
        assert_matches_quote(t, q)
    elif cat == "spot":
        assert (t["symbol"], t["last"], t["baseVolume"], t["timestamp"]) == (symbol, q.last, q.volume, q.ts_ms)
        assert t["bid"] is None and t["ask"] is None
        assert t["quoteVolume"] == pytest.approx(q.quote_volume, rel=1e-12)
        assert "usdIndexPrice" in t["info"] and "openInterestValue" not in t["info"]
    else:
        assert_matches_quote(t, q, volume=False)
        assert t["baseVolume"] == round(q.quote_volume) and t["quoteVolume"] == q.volume


@pytest.mark.parametrize("cat", ["linear", "inverse", "spot"])
async def test_watch_tickers_after_a_burst(sim, exchange, cat):
    """After a burst, ccxt's stored ticker of every symbol equals the last one sent (linear/inverse
    merge deltas into the snapshot; spot frames are full snapshots every time)."""
    symbols = of(sim, cat)
    await exchange.watch_tickers(symbols)
    # start the burst only once every symbol is subscribed (watch_tickers returns on the first one)
    await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] >= len(symbols), 10,
                     what="every symbol subscribed")
    sim.set_rate(VENUE, 200, count=45)  # 5 per symbol, 15 on this socket: protocol check, not throughput
    await sim.drained(VENUE)
    good = sim.last_good(VENUE)

    def all_equal():
        return all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols)

    await eventually(all_equal, what="every symbol to reach its last sent value")
    for s in symbols:
        t = exchange.tickers[s]
        assert t["timestamp"] == good[s].ts_ms and t["last"] == good[s].last
        if cat == "linear":
            assert_matches_quote(t, good[s])
            assert t["info"]["openInterestValue"]  # kept from the snapshot by merging
        elif cat == "inverse":
            assert (t["bid"], t["ask"], t["quoteVolume"]) == (good[s].bid, good[s].ask, good[s].volume)
        else:
            assert t["bid"] is None and t["baseVolume"] == good[s].volume


@pytest.mark.parametrize("cat", ["linear", "spot", "inverse"])
async def test_watch_bids_asks_orderbook_1(sim, exchange, cat):
    """watch_bids_asks uses `orderbook.1.<id>` on the market's socket: bid/ask with the frame's ts
    (for spot the only source of bid/ask)."""
    symbols = of(sim, cat)
    await asyncio.wait_for(exchange.watch_bids_asks(symbols), 5)
    await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] >= len(symbols), 5,
                     what="every symbol subscribed")
    sim.set_rate(VENUE, 500, count=18)
    await sim.drained(VENUE)
    good = sim.last_good(VENUE)

    def all_equal():
        return all(exchange.bidsasks.get(s, {}).get("bid") == good[s].bid for s in symbols)

    await eventually(all_equal, what="every bid/ask to reach its last sent value")
    for s in symbols:
        b = exchange.bidsasks[s]
        assert (b["bid"], b["ask"], b["timestamp"]) == (good[s].bid, good[s].ask, good[s].ts_ms)
    assert list(exchange.clients) == [ws_url(sim, cat)]


async def test_a_watch_call_goes_to_the_socket_of_its_first_symbol(sim, exchange):
    """As on the real exchange, ccxt routes a whole watch_tickers call by its first symbol: an inverse
    first symbol sends a linear topic to the inverse socket ("handler not found", the call fails);
    a linear first symbol turns a spot symbol's topic into the linear market's (the spot one never
    arrives, with no error)."""
    inverse, linear, spot = of(sim, "inverse")[1], of(sim, "linear")[1], of(sim, "spot")[2]
    with pytest.raises(ccxt.ExchangeError, match=r"handler not found,topic:tickers\.ETHUSDT"):
        await asyncio.wait_for(exchange.watch_tickers([inverse, linear]), 5)

    await asyncio.wait_for(exchange.watch_tickers([linear, spot]), 5)  # ETH/USDT:USDT, SOL/USDT
    sim.set_rate(VENUE, 200, count=18)
    await sim.drained(VENUE)
    perp_of_spot = spot + ":USDT"  # the market whose id the spot topic named on the linear socket
    await eventually(lambda: exchange.tickers.get(perp_of_spot, {}).get("last")
                     == sim.last_good(VENUE)[perp_of_spot].last, what="the linear market's ticker")
    assert spot not in exchange.tickers


async def test_symbol_is_served_only_on_its_socket(sim):
    """`tickers.BTCUSDT` is the linear perpetual on the linear socket and the spot pair on the spot
    socket; the inverse id is unknown on the linear socket."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url(sim, "linear")) as ws:
            await ws.send_str('{"op":"subscribe","args":["tickers.BTCUSD"],"req_id":"1"}')
            err = await ws.receive_json(timeout=5)
            assert err["success"] is False and err["ret_msg"] == "error:handler not found,topic:tickers.BTCUSD"
            await ws.send_str('{"op":"subscribe","args":["tickers.BTCUSDT"],"req_id":"2"}')
            assert (await ws.receive_json(timeout=5))["success"] is True
            linear = await ws.receive_json(timeout=5)
        async with session.ws_connect(ws_url(sim, "spot")) as ws:
            await ws.send_str('{"op":"subscribe","args":["tickers.BTCUSDT"],"req_id":"3"}')
            assert (await ws.receive_json(timeout=5))["success"] is True
            spot = await ws.receive_json(timeout=5)
    assert linear["type"] == "snapshot" and "bid1Price" in linear["data"] and "openInterest" in linear["data"]
    assert spot["type"] == "snapshot" and list(spot) == ["topic", "ts", "type", "cs", "data"]
    assert "bid1Price" not in spot["data"] and "usdIndexPrice" in spot["data"]
    good = sim.last_good(VENUE)
    assert float(linear["data"]["lastPrice"]) == good["BTC/USDT:USDT"].last
    assert float(spot["data"]["lastPrice"]) == good["BTC/USDT"].last


async def test_spot_takes_at_most_10_args(sim):
    """More than 10 args on the spot socket: "args size >10" without req_id, nothing subscribed."""
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(sim, "spot")) as ws:
        args = [f"tickers.{m['id']}" for m in sim.markets(VENUE) if category(m) == "spot"] * 4
        await ws.send_str(orjson.dumps({"op": "subscribe", "args": args[:11], "req_id": "9"}).decode())
        err = await ws.receive_json(timeout=5)
        assert err == {"success": False, "ret_msg": "args size >10", "conn_id": err["conn_id"], "op": "subscribe"}
        assert sim.exchanges[VENUE].state()["subscriptions"] == 0
        await ws.send_str(orjson.dumps({"op": "subscribe", "args": args[:3], "req_id": "10"}).decode())
        assert (await ws.receive_json(timeout=5))["success"] is True


async def test_unsubscribe_removes_subscription(sim, exchange):
    """un_watch_tickers on a subset unsubscribes those topics on the same connection."""
    symbols = of(sim, "linear")
    state = sim.exchanges[VENUE].state
    await exchange.watch_tickers(symbols)
    await eventually(lambda: state()["subscriptions"] == 3, what="3 subs")
    assert await exchange.un_watch_tickers(symbols[:1]) is True
    await eventually(lambda: state()["subscriptions"] == 2, what="2 subs left")
    assert state()["connections"] == 1 and symbols[0] not in exchange.tickers
    await exchange.un_watch_tickers(symbols[1:])
    await eventually(lambda: state()["subscriptions"] == 0, what="no subscription left")


async def test_raw_protocol_acks_ping_and_errors(sim):
    """Subscribe/unsubscribe acks, ping/pong and error replies have Bybit's v5 shape."""
    mid = sim.markets(VENUE)[0]["id"]
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(sim, "linear")) as ws:
        await ws.send_str(orjson.dumps({"op": "ping", "req_id": 7}).decode())
        pong = await ws.receive_json(timeout=5)
        assert pong["success"] is True and pong["ret_msg"] == "pong" and pong["op"] == "ping"
        assert pong["req_id"] == "7" and pong["conn_id"]
        await ws.send_str(orjson.dumps({"op": "subscribe", "args": [f"tickers.{mid}"], "req_id": "a"}).decode())
        ack = await ws.receive_json(timeout=5)
        assert ack == {"success": True, "ret_msg": "", "conn_id": pong["conn_id"], "req_id": "a", "op": "subscribe"}
        snap = await ws.receive_json(timeout=5)
        assert snap["topic"] == f"tickers.{mid}" and snap["type"] == "snapshot" and snap["data"]["symbol"] == mid
        assert isinstance(snap["ts"], int) and isinstance(snap["cs"], int)
        await ws.send_str(orjson.dumps({"op": "subscribe", "args": [f"tickers.{mid}", "tickers.NOPEUSDT"],
                                        "req_id": "b"}).decode())
        err = await ws.receive_json(timeout=5)
        assert err["success"] is False and err["req_id"] == "b" and "already subscribed" in err["ret_msg"]
        await ws.send_str(orjson.dumps({"op": "unsubscribe", "args": [f"tickers.{mid}"], "req_id": "c"}).decode())
        unsub = await ws.receive_json(timeout=5)
        assert unsub["success"] is True and unsub["op"] == "unsubscribe" and unsub["req_id"] == "c"
        await eventually(lambda: sim.exchanges[VENUE].state()["subscriptions"] == 0, what="no subscription")
        await ws.send_str("nonsense")
        bad = await ws.receive_json(timeout=5)
        assert bad["success"] is False and bad["ret_msg"] == "error:invalid op"


@pytest.mark.parametrize("cat", ["linear", "inverse"])
async def test_delta_frames_carry_only_changes_and_spoiled_values(sim, cat):
    """A delta omits unchanged fields but always carries changed prices, NaN included."""
    ex = sim.exchanges[VENUE]
    venue, symbol = ex.venue, of(sim, cat)[0]
    conn = Conn(None, f"/v5/public/{cat}", ex)  # type: ignore[arg-type]  # encode never touches ws
    q0 = ex.walk.step(symbol, 1_700_000_000_000)
    q1 = ex.walk.step(symbol, 1_700_000_000_100)
    snap = orjson.loads(venue.encode(conn, "tickers", q0))
    delta = orjson.loads(venue.encode(conn, "tickers", q1))
    assert snap["type"] == "snapshot" and "prevPrice24h" in snap["data"] and "openInterestValue" in snap["data"]
    assert delta["type"] == "delta" and delta["ts"] == q1.ts_ms and delta["cs"] > snap["cs"]
    assert "prevPrice24h" not in delta["data"] and "openInterestValue" not in delta["data"]
    assert float(delta["data"]["lastPrice"]) == q1.last and float(delta["data"]["bid1Price"]) == q1.bid
    bad = orjson.loads(venue.encode(conn, "tickers", replace(q1, last=math.nan)))
    assert bad["data"]["lastPrice"] == "NaN" and "bid1Price" not in bad["data"]
    neg = orjson.loads(venue.encode(conn, "tickers", replace(q1, last=-q1.last, bid=-q1.bid, ask=-q1.ask)))
    assert float(neg["data"]["ask1Price"]) == -q1.ask and float(neg["data"]["lastPrice"]) == -q1.last

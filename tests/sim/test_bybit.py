"""Real ccxt.pro bybit (v5 public, linear USDT perpetuals) against the simulator."""

from __future__ import annotations

import math
from dataclasses import replace

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.sim.venues.base import Conn
from tests.conftest import assert_matches_quote, eventually


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("bybit", symbols=6, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.bybit(sim.ccxt_config("bybit"))
    ex.set_markets(sim.markets("bybit"))
    yield ex
    await ex.close()


async def test_watch_ticker_snapshot(sim, exchange):
    """watch_ticker on `tickers.<id>` returns last, bid, ask, volume and the frame's ts as sent."""
    symbol = sim.symbols("bybit")[1]
    assert symbol.endswith("/USDT:USDT")
    t = await exchange.watch_ticker(symbol)
    assert_matches_quote(t, sim.last_good("bybit")[symbol])
    assert next(iter(exchange.clients)).endswith("/bybit/v5/public/linear")


async def test_watch_tickers_merges_deltas(sim, exchange):
    """After a burst of delta frames, ccxt's merged ticker of every symbol equals the last one sent."""
    symbols = sim.symbols("bybit")
    await exchange.watch_tickers(symbols)
    # start the burst only once every symbol is subscribed (watch_tickers returns on the first one)
    await eventually(lambda: sim.exchanges["bybit"].state()["subscriptions"] >= len(symbols), 10,
                     what="every symbol subscribed")
    sim.set_rate("bybit", 100, count=30)  # protocol check, not throughput (see closing note)
    await sim.drained("bybit")
    good = sim.last_good("bybit")

    def all_equal():
        return all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols)

    await eventually(all_equal, what="every symbol to reach its last sent value")
    for s in symbols:
        assert_matches_quote(exchange.tickers[s], good[s])
        assert exchange.tickers[s]["info"]["openInterestValue"]  # kept from the snapshot by merging
    assert sim.exchanges["bybit"].frames >= 30


async def test_watch_bids_asks_orderbook_1(sim, exchange):
    """watch_bids_asks uses `orderbook.1.<id>` and gives bid/ask with the frame's timestamp."""
    symbols = sim.symbols("bybit")[:3]
    await exchange.watch_bids_asks(symbols)
    sim.set_rate("bybit", 500, count=12)
    await sim.drained("bybit")
    good = sim.last_good("bybit")

    def all_equal():
        return all(exchange.bidsasks.get(s, {}).get("bid") == good[s].bid for s in symbols)

    await eventually(all_equal, what="every bid/ask to reach its last sent value")
    for s in symbols:
        b = exchange.bidsasks[s]
        assert (b["bid"], b["ask"], b["timestamp"]) == (good[s].bid, good[s].ask, good[s].ts_ms)


async def test_unsubscribe_removes_subscription(sim, exchange):
    """un_watch_tickers on a subset unsubscribes those topics on the same connection."""
    symbols = sim.symbols("bybit")[:3]
    state = sim.exchanges["bybit"].state
    await exchange.watch_tickers(symbols)
    await eventually(lambda: state()["subscriptions"] == 3, what="3 subs")
    assert await exchange.un_watch_tickers(symbols[:1]) is True
    await eventually(lambda: state()["subscriptions"] == 2, what="2 subs left")
    assert state()["connections"] == 1 and symbols[0] not in exchange.tickers
    await exchange.un_watch_tickers(symbols[1:])
    await eventually(lambda: state()["subscriptions"] == 0, what="no subscription left")


async def test_raw_protocol_acks_ping_and_errors(sim):
    """Subscribe/unsubscribe acks, ping/pong and error replies have Bybit's v5 shape."""
    mid = sim.markets("bybit")[0]["id"]
    url = sim.http_url.replace("http", "ws", 1) + "/bybit/v5/public/linear"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
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
        await eventually(lambda: sim.exchanges["bybit"].state()["subscriptions"] == 0, what="no subscription")
        await ws.send_str("nonsense")
        bad = await ws.receive_json(timeout=5)
        assert bad["success"] is False and bad["ret_msg"] == "error:invalid op"


async def test_delta_frames_carry_only_changes_and_spoiled_values(sim):
    """A delta omits unchanged fields but always carries changed prices, NaN included."""
    ex = sim.exchanges["bybit"]
    venue, symbol = ex.venue, ex.symbols[0]
    conn = Conn(None, "/v5/public/linear", ex)  # type: ignore[arg-type]  # encode never touches ws
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

"""Real ccxt.pro coinbase (Advanced Trade) against the simulator: values equal what was sent."""

from __future__ import annotations

import asyncio

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import assert_matches_quote, eventually


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("coinbase", symbols=6, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.coinbase(sim.ccxt_config("coinbase"))
    ex.set_markets(sim.markets("coinbase"))
    yield ex
    await ex.close()


def test_markets_are_usd_spot(sim):
    """Markets are USD spot pairs with Coinbase's dashed product ids."""
    m = sim.markets("coinbase")[0]
    assert (m["symbol"], m["id"], m["quote"], m["spot"]) == ("BTC/USD", "BTC-USD", "USD", True)


async def test_watch_ticker_snapshot(sim, exchange):
    """watch_ticker (`ticker` channel) returns last, bid, ask, volume and ms timestamp as sent."""
    symbol = sim.symbols("coinbase")[1]
    t = await exchange.watch_ticker(symbol)
    assert_matches_quote(t, sim.last_good("coinbase")[symbol])
    assert t["info"]["product_id"] == "ETH-USD"


async def test_watch_ticker_updates(sim, exchange):
    """Later `update` frames on the ticker channel carry the new values and timestamps."""
    symbol = sim.symbols("coinbase")[0]
    first = await exchange.watch_ticker(symbol)
    sim.set_rate("coinbase", 200, count=12)
    await sim.drained("coinbase")
    q = sim.last_good("coinbase")[symbol]
    assert q.seq > 1
    await eventually(lambda: exchange.tickers[symbol]["last"] == q.last, what="last update")
    assert_matches_quote(exchange.tickers[symbol], q)
    assert exchange.tickers[symbol]["timestamp"] >= first["timestamp"]


async def test_watch_tickers_updates_every_symbol(sim, exchange):
    """After a burst on `ticker_batch`, ccxt's stored ticker of every symbol equals the last one sent."""
    symbols = sim.symbols("coinbase")
    await exchange.watch_tickers(symbols)
    state = sim.exchanges["coinbase"].state
    assert state()["subscriptions"] == len(symbols)
    # start the burst only once every symbol is subscribed (watch_tickers returns on the first one)
    await eventually(lambda: sim.exchanges["coinbase"].state()["subscriptions"] >= len(symbols), 10,
                     what="every symbol subscribed")
    sim.set_rate("coinbase", 100, count=30)  # protocol check, not throughput (see closing note)
    await sim.drained("coinbase")
    good = sim.last_good("coinbase")

    def all_equal():
        return all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols)

    await eventually(all_equal, what="every symbol to reach its last sent value")
    for s in symbols:
        assert_matches_quote(exchange.tickers[s], good[s])


async def test_unwatch_tickers_all(sim, exchange):
    """un_watch_tickers of everything watched resolves on the empty `subscriptions` frame."""
    symbols = sim.symbols("coinbase")[:3]
    state = sim.exchanges["coinbase"].state
    await exchange.watch_tickers(symbols)
    await eventually(lambda: state()["subscriptions"] == 3, what="3 subs")
    await asyncio.wait_for(exchange.un_watch_tickers(symbols), 5)
    assert state()["subscriptions"] == 0
    sent = state()["frames"]
    sim.set_rate("coinbase", 200, count=10)
    await sim.drained("coinbase")
    assert state()["frames"] == sent


async def test_unwatch_subset_never_resolves(sim, exchange):
    """Unwatching a subset removes it server-side, but ccxt waits for an empty `subscriptions` frame.

    Coinbase's reply lists the subscriptions left on the socket, so ccxt 4.5.90's un_watch only
    returns once nothing at all is subscribed on that connection.
    """
    symbols = sim.symbols("coinbase")[:3]
    state = sim.exchanges["coinbase"].state
    await exchange.watch_tickers(symbols)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(exchange.un_watch_tickers(symbols[:1]), 0.5)
    assert state()["subscriptions"] == 2
    exchange.options["unSubscriptionPending"] = False  # ccxt leaves this set after the timeout


async def test_raw_protocol_envelope_and_heartbeats(sim):
    """Raw frames: subscriptions listing, nanosecond timestamps, per-connection sequence, heartbeats."""
    url = sim.ccxt_config("coinbase")["urls"]["api"]["ws"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(orjson.dumps({"type": "subscribe", "product_ids": ["BTC-USD"],
                                        "channel": "ticker", "jwt": "ignored"}).decode())
        subs = orjson.loads((await ws.receive(timeout=5)).data)
        snap = orjson.loads((await ws.receive(timeout=5)).data)
        assert subs["channel"] == "subscriptions"
        assert subs["events"] == [{"subscriptions": {"ticker": ["BTC-USD"]}}]
        assert snap["channel"] == "ticker" and snap["events"][0]["type"] == "snapshot"
        assert [subs["sequence_num"], snap["sequence_num"]] == [0, 1]
        q = sim.last_good("coinbase")["BTC/USD"]
        assert ccxtpro.coinbase.parse8601(snap["timestamp"]) == q.ts_ms
        assert snap["events"][0]["tickers"][0]["best_bid"] == f"{q.bid:.8f}".rstrip("0").rstrip(".")
        await ws.send_str('{"type":"subscribe","product_ids":[],"channel":"heartbeats"}')
        subs = orjson.loads((await ws.receive(timeout=5)).data)
        assert set(subs["events"][0]["subscriptions"]) == {"ticker", "heartbeats"}
        beat = orjson.loads((await ws.receive(timeout=5)).data)
        assert beat["channel"] == "heartbeats"
        assert beat["events"][0]["heartbeat_counter"] == "1"
        await ws.send_str('{"type":"unsubscribe","product_ids":[],"channel":"heartbeats"}')
        await ws.send_str('{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"ticker"}')
        frames = [orjson.loads((await ws.receive(timeout=5)).data) for _ in range(2)]
        assert frames[-1]["events"] == [{"subscriptions": {}}]


async def test_nan_price_stops_ccxt_receive_loop(sim, exchange):
    """A "NaN" price kills ccxt's receive loop: the socket stays open but no later frame is parsed.

    ccxt 4.5.90 behaves the same on binance; only a data-staleness watchdog notices it.
    """
    symbols = sim.symbols("coinbase")[:2]
    await exchange.watch_tickers(symbols)
    await sim.fault("coinbase", "nan")
    sim.set_rate("coinbase", 200, count=10)
    await sim.drained("coinbase")
    await asyncio.sleep(0.3)
    good = sim.last_good("coinbase")
    assert sim.exchanges["coinbase"].state()["connections"] == 1
    assert all(exchange.tickers[s]["last"] != good[s].last for s in symbols)

"""Real ccxt.pro okx against the simulator: values equal what was sent."""

from __future__ import annotations

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import assert_matches_quote, eventually


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("okx", symbols=6, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.okx(sim.ccxt_config("okx"))
    ex.set_markets(sim.markets("okx"))
    yield ex
    await ex.close()


async def test_watch_ticker_tickers_channel(sim, exchange):
    """watch_ticker on the `tickers` channel returns last, bid, ask, base volume and ts as sent."""
    symbol = sim.symbols("okx")[1]
    t = await exchange.watch_ticker(symbol)
    q = sim.last_good("okx")[symbol]
    assert_matches_quote(t, q)
    assert t["quoteVolume"] == pytest.approx(q.quote_volume, rel=1e-12)
    assert t["open"] == pytest.approx(q.open, rel=1e-12)
    assert sim.exchanges["okx"].state()["subscriptions"] == 1


async def test_watch_tickers_updates_every_symbol(sim, exchange):
    """After a burst, ccxt's stored ticker of every symbol equals the last one sent."""
    symbols = sim.symbols("okx")
    await exchange.watch_tickers(symbols)
    state = sim.exchanges["okx"].state
    await eventually(lambda: state()["subscriptions"] == len(symbols), what="all symbols subscribed")
    assert state()["connections"] == 1  # ccxt sends every arg in one request on one socket
    # start the burst only once every symbol is subscribed (watch_tickers returns on the first one)
    await eventually(lambda: sim.exchanges["okx"].state()["subscriptions"] >= len(symbols), 10,
                     what="every symbol subscribed")
    sim.set_rate("okx", 100, count=30)  # protocol check, not throughput (see closing note)
    await sim.drained("okx")
    good = sim.last_good("okx")

    def all_equal():
        return all(exchange.tickers.get(s, {}).get("last") == good[s].last for s in symbols)

    await eventually(all_equal, what="every symbol to reach its last sent value")
    for s in symbols:
        assert_matches_quote(exchange.tickers[s], good[s])


async def test_watch_bids_asks_bbo_tbt(sim, exchange):
    """watch_bids_asks uses the bbo-tbt channel and gives bid/ask with the exchange timestamp."""
    symbols = sim.symbols("okx")[:3]
    await exchange.watch_bids_asks(symbols)
    state = sim.exchanges["okx"].state
    await eventually(lambda: state()["subscriptions"] == 3, what="3 bbo-tbt subs")
    conn = next(iter(sim.exchanges["okx"].conns))
    assert {ch for ch, _ in conn.subs} == {"bbo-tbt"}
    sim.set_rate("okx", 300, count=30)
    await sim.drained("okx")
    good = sim.last_good("okx")
    await eventually(lambda: all(exchange.bidsasks.get(s, {}).get("bid") == good[s].bid for s in symbols),
                     what="all bidsasks at their last sent value")
    for s in symbols:
        b = exchange.bidsasks[s]
        assert b["symbol"] == s
        assert b["bid"] == good[s].bid and b["ask"] == good[s].ask
        assert b["timestamp"] == good[s].ts_ms


async def test_unwatch_ticker_and_tickers_unsubscribe(sim, exchange):
    """un_watch_ticker/un_watch_tickers unsubscribe on the same socket, even for a subset."""
    symbols = sim.symbols("okx")[:3]
    ex_state = sim.exchanges["okx"]
    await exchange.watch_tickers(symbols)
    await eventually(lambda: ex_state.state()["subscriptions"] == 3, what="3 subs")
    await exchange.un_watch_ticker(symbols[0])
    await eventually(lambda: ex_state.state()["subscriptions"] == 2, what="2 subs left")
    assert ex_state.state()["connections"] == 1  # same /public socket: no new connection
    assert symbols[0] not in exchange.tickers
    await exchange.un_watch_tickers(symbols[1:])
    await eventually(lambda: ex_state.state()["subscriptions"] == 0, what="no subscription left")
    assert ex_state.state()["connections"] == 1
    # nothing is sent to an unsubscribed socket any more
    frames = ex_state.frames
    sim.set_rate("okx", 500, count=30)
    await sim.drained("okx")
    assert ex_state.frames == frames
    # ccxt forgot the subscription, so watching again subscribes again on the same socket
    t = await exchange.watch_ticker(symbols[0])
    assert_matches_quote(t, sim.last_good("okx")[symbols[0]])
    assert ex_state.state()["subscriptions"] == 1 and ex_state.state()["connections"] == 1


async def test_protocol_ping_ack_and_errors(sim):
    """The text `ping` gets `pong`; each arg is acked with a connId; unknown instIds get 60018."""
    url = sim.ccxt_config("okx")["urls"]["api"]["ws"] + "/public"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str("ping")
        assert (await ws.receive(timeout=5)).data == "pong"
        args = [{"channel": "tickers", "instId": "BTC-USDT"}, {"channel": "tickers", "instId": "NOPE-USDT"}]
        await ws.send_str(orjson.dumps({"op": "subscribe", "args": args}).decode())
        ack = orjson.loads((await ws.receive(timeout=5)).data)
        assert ack["event"] == "subscribe" and ack["arg"] == args[0] and ack["connId"]
        snap = orjson.loads((await ws.receive(timeout=5)).data)
        q = sim.last_good("okx")["BTC/USDT"]
        assert snap["arg"] == args[0]
        d = snap["data"][0]
        assert d["instType"] == "SPOT" and d["instId"] == "BTC-USDT" and d["ts"] == str(q.ts_ms)
        assert (float(d["last"]), float(d["bidPx"]), float(d["askPx"])) == (q.last, q.bid, q.ask)
        assert float(d["vol24h"]) == q.volume
        err = orjson.loads((await ws.receive(timeout=5)).data)
        assert err["event"] == "error" and err["code"] == "60018" and "NOPE-USDT" in err["msg"]
        await ws.send_str(orjson.dumps({"op": "unsubscribe", "args": args[:1]}).decode())
        unack = orjson.loads((await ws.receive(timeout=5)).data)
        assert unack["event"] == "unsubscribe" and unack["arg"] == args[0]
        assert unack["connId"] == ack["connId"]
        assert sim.exchanges["okx"].state()["subscriptions"] == 0

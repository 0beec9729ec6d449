"""install() end to end: unmodified ccxt.pro against the simulator, the decoder hooked in.

What on_tick receives equals what the simulator sent; subscriptions, acks, unsubscribes and
keepalive pings (websocket pings on Binance, text `ping`/`pong` on OKX, JSON ping/pong on Bybit)
still work, because those frames reach ccxt; with shadow_every=1 ccxt also parses every decoded
frame and must agree on every field.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import ccxt.pro as ccxtpro
import pytest

from fullon_ticker_service.native import build_decoder, install
from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually

KEEPALIVE_MS = 250  # ccxt pings every 250 ms and gives up after 2 missed pongs


VENUES = ("binance", "binanceusdm", "binancecoinm", "okx", "bybit")
# one watch call = one socket: (venue, which symbols); Bybit serves spot, linear and inverse apart
GROUPS = [("binance", None), ("binanceusdm", None), ("binancecoinm", None), ("okx", None),
          ("bybit", "linear"), ("bybit", "spot"), ("bybit", "inverse")]


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(v, symbols=6, rate=0) for v in VENUES]) as s:
        yield s


def group_symbols(sim, venue, kind):
    symbols = sim.symbols(venue)
    if kind is None:
        return symbols
    category = sim.exchanges[venue].venue.category
    return [s for s in symbols if category[s] == kind]


async def make(sim, venue):
    ex = getattr(ccxtpro, venue)(sim.ccxt_config(venue))
    ex.set_markets(sim.markets(venue))
    ex.streaming = {**ex.streaming, "keepAlive": KEEPALIVE_MS}
    return ex


class Collector:
    def __init__(self) -> None:
        self.last: dict[tuple[str, str], dict] = {}
        self.count = 0
        self.mismatches: list = []

    def __call__(self, stream, symbol, ticker) -> None:
        self.last[(stream, symbol)] = ticker
        self.count += 1


async def _burst_and_check(sim, venue, ex, col, symbols, streams, count=60):
    """After a burst, the last ticker on_tick got per symbol carries what the simulator sent last
    (last price and its time; bid/ask and their time on the bid/ask stream)."""
    state = sim.exchanges[venue].state
    await eventually(lambda: state()["subscriptions"] >= len(symbols) * len(streams), 10, what="subscriptions")
    sim.set_rate(venue, 200, count=count)
    await sim.drained(venue)
    good = sim.last_good(venue)

    def caught_up():
        return all(col.last.get(("ticker", s), {}).get("last") == good[s].last for s in symbols
                   if "ticker" in streams) and all(
            col.last.get(("bidask", s), {}).get("bid") == good[s].bid for s in symbols if "bidask" in streams)

    await eventually(caught_up, 10, what="on_tick to reach the last sent values")
    for s in symbols:
        if "ticker" in streams:
            t = col.last[("ticker", s)]
            assert (t["symbol"], t["last"], t["timestamp"]) == (s, good[s].last, good[s].ts_ms)
            assert ex.tickers[s] is t  # stored where ccxt keeps it
        if "bidask" in streams:
            b = col.last[("bidask", s)]
            assert (b["symbol"], b["bid"], b["ask"]) == (s, good[s].bid, good[s].ask)
            # Binance spot bookTicker carries no time (ccxt: None)
            assert b["timestamp"] == (None if venue == "binance" else good[s].ts_ms)
            assert ex.bidsasks[s] is b


async def _pongs_keep_coming(ex, seconds=1.2):
    """Every connection keeps getting pongs (ccxt would raise RequestTimeout after 2 misses)."""
    clients = list(ex.clients.values())
    assert clients
    t0 = time.time() * 1000
    await asyncio.sleep(seconds)
    for client in clients:
        assert client.lastPong is not None and client.lastPong > t0, f"no pong handled by ccxt on {client.url}"
        assert client.error is None and not client.closed()


def _params(venue):
    return {"name": "ticker"} if venue.startswith("binance") else {}


@pytest.mark.parametrize(("venue", "kind"), GROUPS, ids=[f"{v}-{k}" if k else v for v, k in GROUPS])
async def test_install_with_shadow_every_frame(sim, venue, kind):
    """shadow_every=1: every decoded frame is also parsed by ccxt; no field may differ."""
    ex = await make(sim, venue)
    col = Collector()
    try:
        inst = install(ex, build_decoder(ex), col, shadow_every=1, on_mismatch=col.mismatches.append)
        symbols = group_symbols(sim, venue, kind)
        assert symbols
        # shadowed frames reach ccxt, so the watch calls return as usual
        await asyncio.wait_for(ex.watch_tickers(symbols, _params(venue)), 10)
        await asyncio.wait_for(ex.watch_bids_asks(symbols), 10)
        await _burst_and_check(sim, venue, ex, col, symbols, ("ticker", "bidask"))
        assert col.mismatches == []
        assert inst.stats.shadowed == inst.stats.decoded >= 2 * len(symbols)
        assert inst.stats.passed >= 1  # the subscription acks went to ccxt
        await _pongs_keep_coming(ex)
    finally:
        await ex.close()


@pytest.mark.parametrize(("venue", "kind"), [("binance", None), ("okx", None), ("bybit", "linear")],
                         ids=["binance", "okx", "bybit-linear"])
async def test_install_ccxt_sees_only_protocol_frames(sim, venue, kind):
    """No shadow: decoded frames never reach ccxt (its watch call stays pending), yet acks, pongs
    and un_watch still work."""
    ex = await make(sim, venue)
    col = Collector()
    watch = None
    try:
        inst = install(ex, build_decoder(ex), col)
        symbols = group_symbols(sim, venue, kind)
        watch = asyncio.create_task(ex.watch_tickers(symbols, _params(venue)))
        await _burst_and_check(sim, venue, ex, col, symbols, ("ticker",))
        assert not watch.done()  # no ticker frame reached ccxt
        assert inst.stats.ticks == col.count and inst.stats.decoded >= 2 * len(symbols)
        assert inst.stats.shadowed == 0
        await _pongs_keep_coming(ex)
        before = col.count
        assert await asyncio.wait_for(ex.un_watch_tickers(symbols, _params(venue)), 10) in (True, None)
        await eventually(lambda: sim.exchanges[venue].state()["subscriptions"] == 0, 10,
                         what="the simulator to drop every subscription")
        sim.set_rate(venue, 200, count=20)
        await sim.drained(venue)
        await asyncio.sleep(0.1)
        assert col.count == before
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(BaseException):
                await watch
        await ex.close()


async def test_uninstall_gives_every_frame_back_to_ccxt(sim):
    ex = await make(sim, "binance")
    col = Collector()
    try:
        inst = install(ex, build_decoder(ex), col)
        symbol = sim.symbols("binance")[0]
        watch = asyncio.create_task(ex.watch_ticker(symbol, {"name": "ticker"}))
        await eventually(lambda: col.count >= 1, 10, what="a first tick")  # the subscribe snapshot
        assert not watch.done()
        inst.uninstall()
        sim.set_rate("binance", 100, count=10)
        t = await asyncio.wait_for(watch, 10)  # ccxt parses again and resolves the watch
        assert t["symbol"] == symbol
        await sim.drained("binance")
        assert col.count == 1
    finally:
        await ex.close()


async def test_guard_keeps_the_connection_after_a_nan_price(sim):
    """ccxt raises on a "NaN" 24hrTicker and its receive loop stops (see tests/sim/test_faults.py);
    with guard=True the frame is dropped and the next ones still arrive."""
    ex = await make(sim, "binance")
    col = Collector()
    errors = []
    try:
        inst = install(ex, build_decoder(ex), col, guard=True, on_error=errors.append)
        symbols = sim.symbols("binance")
        watch = asyncio.create_task(ex.watch_tickers(symbols, {"name": "ticker"}))
        await eventually(lambda: sim.exchanges["binance"].state()["subscriptions"] == len(symbols), 10,
                         what="subscriptions")
        await sim.fault("binance", "nan")
        sim.set_rate("binance", 200, count=30)
        await sim.drained("binance")
        good = sim.last_good("binance")
        await eventually(lambda: all(col.last.get(("ticker", s), {}).get("last") == good[s].last
                                     for s in symbols), 10, what="ticks after the NaN")
        assert inst.stats.ccxt_errors == 1 and [type(e) for e in errors] == [ValueError]
        watch.cancel()
        with contextlib.suppress(BaseException):
            await watch
    finally:
        await ex.close()


async def test_reconnect_hooks_the_new_connection(sim):
    """The server closes the socket: the pending watch raises as usual (ccxt's), the next watch
    call opens a new client, which is hooked too."""
    ex = await make(sim, "okx")
    col = Collector()
    try:
        inst = install(ex, build_decoder(ex), col)
        symbols = sim.symbols("okx")
        watch = asyncio.create_task(ex.watch_tickers(symbols))
        await eventually(lambda: sim.exchanges["okx"].state()["subscriptions"] == len(symbols), 10,
                         what="subscriptions")
        first = next(iter(ex.clients.values()))
        await sim.fault("okx", "close")
        with pytest.raises(ccxtpro.NetworkError):
            await asyncio.wait_for(watch, 10)
        watch = asyncio.create_task(ex.watch_tickers(symbols))
        await _burst_and_check(sim, "okx", ex, col, symbols, ("ticker",))
        second = next(iter(ex.clients.values()))
        assert second is not first and "handle_text_or_binary_message" in second.__dict__
        assert inst.stats.decoded >= 2 * len(symbols)
        watch.cancel()
        with contextlib.suppress(BaseException):
            await watch
    finally:
        await ex.close()

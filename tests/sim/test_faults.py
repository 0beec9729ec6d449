"""Fault injection: what real ccxt.pro binance (4.5.90) sees for each simulator fault.

The feed runs at rate 0 and ticks are released one by one with `set_rate(..., count=n)`, so
every test knows exactly which frame carried the fault. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import socket
import time

import aiohttp
import ccxt
import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import assert_matches_quote, eventually

VENUE = "binance"
TICKER = {"name": "ticker"}


@pytest.fixture
async def sim(request):
    symbols = getattr(request, "param", 2)
    async with Simulator([SimExchange(VENUE, symbols=symbols, rate=0)]) as s:
        yield s


def make_exchange(sim: Simulator, **extra) -> ccxtpro.binance:
    ex = ccxtpro.binance({**sim.ccxt_config(VENUE), **extra})
    ex.set_markets(sim.markets(VENUE))
    return ex


@pytest.fixture
async def exchange(sim):
    ex = make_exchange(sim)
    yield ex
    await ex.close()


@pytest.fixture
async def loop_errors():
    """Record what reaches the event loop's exception handler (errors raised in callbacks)."""
    loop = asyncio.get_running_loop()
    seen: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    yield seen
    loop.set_exception_handler(previous)


def state(sim: Simulator) -> dict:
    return sim.exchanges[VENUE].state()


async def subscribe(exchange, symbols: list[str]) -> None:
    """watch_tickers until ccxt holds the subscribe snapshot of every symbol."""
    await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 3)
    await eventually(lambda: all(s in exchange.tickers for s in symbols), timeout=3, what="all snapshots")


async def pending_watch(exchange, symbols: list[str]) -> asyncio.Future:
    """Start watch_tickers and return once ccxt has registered a waiter for every symbol."""
    task = asyncio.ensure_future(exchange.watch_tickers(symbols, TICKER))
    hashes = [f"ticker:ticker@{s}" for s in symbols]

    def waiting():
        return any(all(h in c.futures for h in hashes) for c in exchange.clients.values())

    await eventually(waiting, timeout=2, what="ccxt to wait on every symbol")
    return task


async def release(sim: Simulator, count: int) -> None:
    """Send exactly `count` ticks (round-robin over the symbols) and wait until they are out."""
    sim.set_rate(VENUE, 50, count=count)
    await asyncio.wait_for(sim.drained(VENUE), 3)


# close ---------------------------------------------------------------------------------------
async def test_close_rejects_pending_watch_and_next_watch_reconnects(sim, exchange):
    """A server close rejects the pending watch with NetworkError; only a new watch call reconnects."""
    symbols = sim.symbols(VENUE)
    await subscribe(exchange, symbols)
    pending = await pending_watch(exchange, symbols)

    await sim.fault(VENUE, "close")
    with pytest.raises(ccxt.NetworkError) as info:
        await asyncio.wait_for(pending, 3)
    assert type(info.value) is ccxt.NetworkError
    assert str(info.value) == "Connection closed by remote server, closing code 1001"

    await asyncio.sleep(0.3)  # nothing reconnects on its own
    assert state(sim)["connections"] == 0 and state(sim)["connections_accepted"] == 1

    t = await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 3)  # subscribe snapshot
    s = next(iter(t))
    assert_matches_quote(t[s], sim.last_good(VENUE)[s])
    await eventually(lambda: state(sim)["subscriptions"] == 2, timeout=3, what="both symbols resubscribed")
    assert state(sim)["connections"] == 1 and state(sim)["connections_accepted"] == 2

    pending = await pending_watch(exchange, symbols)
    await release(sim, 1)
    t = await asyncio.wait_for(pending, 3)
    assert list(t) == [symbols[0]]
    assert_matches_quote(t[symbols[0]], sim.last_good(VENUE)[symbols[0]])


# stall / resume --------------------------------------------------------------------------------
async def test_stall_sends_nothing_on_open_socket_and_resume_flows_on_same_connection(sim, exchange):
    """During a stall no ticker arrives on a still-open socket; after resume the same subscription flows."""
    symbols = sim.symbols(VENUE)
    await subscribe(exchange, symbols)
    before_ts = max(exchange.tickers[s]["timestamp"] for s in symbols)
    sim.set_rate(VENUE, 20)

    await sim.fault(VENUE, "stall")
    frames = state(sim)["frames"]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 1.0)
    st = state(sim)
    assert st["stalled"] and st["connections"] == 1 and st["frames"] == frames
    assert [c.closed() for c in exchange.clients.values()] == [False]  # ccxt sees a healthy socket

    await sim.fault(VENUE, "resume")
    t = await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 3)
    assert all(t[s]["timestamp"] > before_ts for s in t)
    st = state(sim)
    assert st["connections_accepted"] == 1 and st["connections"] == 1 and st["subscriptions"] == 2
    assert st["frames"] > frames


# malformed ------------------------------------------------------------------------------------
async def test_malformed_frame_kills_the_receive_loop_silently(sim, exchange, loop_errors):
    """A truncated JSON frame stops ccxt's receive loop: no exception reaches the watcher, data just stops.

    ccxt decodes every frame starting with '{' or '[' with orjson inside the receive loop's
    done-callback; the JSONDecodeError escapes to the loop exception handler, `receive_loop` is
    never rescheduled, and the socket stays open. Pending and new watch calls wait forever (new
    ones do not reconnect: ccxt still holds a "connected" client). Only the ping/pong keepalive
    would notice, after 2 x 180 s on Binance. Consequence for a collector: a per-exchange
    staleness watchdog is required, and its remedy must close the client (e.g. `exchange.close()`)
    before watching again. (Frames that do not look like JSON, e.g. "not json at all", are passed
    to binance.handle_message as a string and ignored harmlessly.)
    """
    symbols = sim.symbols(VENUE)
    await subscribe(exchange, symbols)
    held = {s: exchange.tickers[s]["timestamp"] for s in symbols}
    pending = await pending_watch(exchange, symbols)

    await sim.fault(VENUE, "malformed", count=1)  # '{"e":"24hrTicker","s":'
    await release(sim, 4)
    assert state(sim)["frames"] == 4 and state(sim)["connections"] == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pending, 1.0)

    assert len(loop_errors) == 1
    ctx = loop_errors[0]
    assert ctx["message"].startswith("Exception in callback Client.receive_loop.<locals>.after_interrupt")
    assert isinstance(ctx["exception"], orjson.JSONDecodeError)
    assert str(ctx["exception"]) == "unexpected end of data: line 1 column 23 (char 22)"
    # ccxt still believes the connection is fine and kept the pre-fault values
    assert [c.closed() for c in exchange.clients.values()] == [False]
    assert {s: exchange.tickers[s]["timestamp"] for s in symbols} == held
    good = sim.last_good(VENUE)
    assert all(good[s].ts_ms >= held[s] and good[s].seq > 1 for s in symbols)

    # a new watch call does not reconnect and gets nothing either
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 0.5)
    assert state(sim)["connections_accepted"] == 1

    # the watchdog remedy: close, then watch again on a fresh connection
    await exchange.close()
    t = await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 3)
    s = next(iter(t))
    assert_matches_quote(t[s], sim.last_good(VENUE)[s])
    assert state(sim)["connections_accepted"] == 2


async def test_dead_receive_loop_is_only_caught_by_the_keepalive(sim, loop_errors):
    """After a malformed frame the pending watch raises RequestTimeout only after keepAlive x 2 missed pongs."""
    exchange = make_exchange(sim)
    assert exchange.streaming["keepAlive"] == 180000  # Binance default: 6-9 minutes to notice
    exchange.streaming = {**exchange.streaming, "keepAlive": 300}  # shortened here so the test can watch it happen
    try:
        symbols = sim.symbols(VENUE)
        await exchange.watch_tickers(symbols, TICKER)
        pending = await pending_watch(exchange, symbols)
        await sim.fault(VENUE, "malformed", count=1)
        started = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout, match="ping-pong keepalive missing on time"):
            await asyncio.wait_for(pending, 5)
        assert 0.5 < time.monotonic() - started < 2.0
        assert len(loop_errors) == 1
    finally:
        await exchange.close()


# bad values -------------------------------------------------------------------------------------
async def test_nan_last_kills_the_receive_loop(sim, exchange, loop_errors):
    """A "NaN" price is never handed back: ccxt's Precise raises ValueError and the receive loop stops."""
    symbols = sim.symbols(VENUE)
    await subscribe(exchange, symbols)
    before = sim.last_good(VENUE)
    pending = await pending_watch(exchange, symbols)

    await sim.fault(VENUE, "nan")
    await release(sim, 2)  # the NaN tick (symbols[0]), then a good one (symbols[1])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pending, 1.0)

    assert len(loop_errors) == 1
    exc = loop_errors[0]["exception"]
    assert type(exc) is ValueError
    assert str(exc) == "invalid literal for int() with base 10: 'NaN'"
    st = state(sim)
    assert st["bad_sent"] == 1 and st["frames"] == 2 and st["connections"] == 1
    # the NaN never reached last_good; ccxt kept the pre-fault values, no NaN stored anywhere
    assert sim.last_good(VENUE)[symbols[0]] == before[symbols[0]]
    for s in symbols:
        assert exchange.tickers[s]["last"] == before[s].last and not math.isnan(exchange.tickers[s]["last"])
    assert sim.last_good(VENUE)[symbols[1]] != before[symbols[1]]  # the simulator kept sending


async def _one_bad_tick(sim, exchange, kind: str):
    """Subscribe to the single symbol, send one `kind` tick; return (previous, bad, clean walk quote)."""
    (symbol,) = sim.symbols(VENUE)
    prev = (await exchange.watch_tickers([symbol], TICKER))[symbol]
    good_before = sim.last_good(VENUE)[symbol]
    pending = await pending_watch(exchange, [symbol])
    await sim.fault(VENUE, kind)
    await release(sim, 1)
    bad = (await asyncio.wait_for(pending, 3))[symbol]
    assert state(sim)["bad_sent"] == 1
    assert sim.last_good(VENUE)[symbol] is good_before  # the bad value never became last_good
    return prev, bad, sim.exchanges[VENUE].walk.quotes[symbol]


async def _next_good_tick_is_clean(sim, exchange):
    (symbol,) = sim.symbols(VENUE)
    pending = await pending_watch(exchange, [symbol])
    await release(sim, 1)
    t = (await asyncio.wait_for(pending, 3))[symbol]
    assert_matches_quote(t, sim.last_good(VENUE)[symbol])


@pytest.mark.parametrize("sim", [1], indirect=True)
async def test_negative_prices_are_handed_back(sim, exchange):
    """ccxt hands back negative last/bid/ask unchanged; the stream continues afterwards."""
    _, bad, clean = await _one_bad_tick(sim, exchange, "negative")
    assert (bad["last"], bad["bid"], bad["ask"]) == (-clean.last, -clean.bid, -clean.ask)
    assert bad["last"] < 0 and bad["bid"] < 0 and bad["ask"] < 0
    await _next_good_tick_is_clean(sim, exchange)


@pytest.mark.parametrize("sim", [1], indirect=True)
async def test_zero_prices_become_none(sim, exchange):
    """ccxt turns zero last/bid/ask into None (safe_ticker's omit_zero); the raw frame keeps "0.0"."""
    _, bad, _ = await _one_bad_tick(sim, exchange, "zero")
    assert (bad["last"], bad["close"], bad["bid"], bad["ask"]) == (None, None, None, None)
    assert (bad["info"]["c"], bad["info"]["b"], bad["info"]["a"]) == ("0.0", "0.0", "0.0")
    await _next_good_tick_is_clean(sim, exchange)


@pytest.mark.parametrize("sim", [1], indirect=True)
async def test_crossed_book_is_handed_back(sim, exchange):
    """ccxt hands back a ticker whose bid is above its ask."""
    _, bad, clean = await _one_bad_tick(sim, exchange, "crossed")
    assert bad["bid"] == round(clean.ask * 1.01, 8) and bad["ask"] == clean.ask
    assert bad["bid"] > bad["ask"]
    await _next_good_tick_is_clean(sim, exchange)


@pytest.mark.parametrize("sim", [1], indirect=True)
async def test_older_timestamp_is_handed_back(sim, exchange):
    """ccxt hands back a ticker stamped ~60 s before the symbol's previous one (at a 5 % higher price)."""
    prev, bad, clean = await _one_bad_tick(sim, exchange, "older")
    assert bad["timestamp"] == clean.ts_ms - 60_000
    assert 59_000 <= prev["timestamp"] - bad["timestamp"] <= 60_000
    assert bad["last"] == round(clean.last * 1.05, 8)
    await _next_good_tick_is_clean(sim, exchange)


# refuse -----------------------------------------------------------------------------------------
async def test_refused_connection_raises_network_error_until_the_window_ends(sim, exchange):
    """While refusing, each watch call fails with NetworkError (HTTP 503 handshake); after the window it connects."""
    symbols = sim.symbols(VENUE)
    await sim.fault(VENUE, "refuse", seconds=1.5)
    window_end = time.monotonic() + 1.5

    with pytest.raises(ccxt.NetworkError) as info:
        await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 3)
    assert type(info.value) is ccxt.NetworkError and not isinstance(info.value, ccxt.ExchangeError)
    assert str(info.value).startswith("503, message='Invalid response status'")
    assert state(sim)["connections_refused"] == 1 and state(sim)["refusing"]

    # a second call dials again by itself, after ccxt's dial backoff (0.2 s after one failure)
    started = time.monotonic()
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 3)
    assert time.monotonic() - started >= 0.15
    assert state(sim)["connections_refused"] == 2 and state(sim)["connections_accepted"] == 0

    await asyncio.sleep(window_end - time.monotonic() + 0.1)
    t = await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 3)
    s = next(iter(t))
    assert_matches_quote(t[s], sim.last_good(VENUE)[s])
    st = state(sim)
    assert not st["refusing"] and st["connections_accepted"] == 1 and st["connections_refused"] == 2


# HTTP control --------------------------------------------------------------------------------
async def test_http_control_close_and_state(sim, exchange):
    """POST /_sim/control closes connections (pending watch fails), bad requests get 400, GET /_sim/state counts."""
    symbols = sim.symbols(VENUE)
    await subscribe(exchange, symbols)
    await release(sim, 2)
    pending = await pending_watch(exchange, symbols)

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.http_url}/_sim/control", json={"exchange": VENUE, "action": "close"}) as r:
            assert r.status == 200 and await r.json() == {"ok": True}
        with pytest.raises(ccxt.NetworkError, match="closing code 1001"):
            await asyncio.wait_for(pending, 3)

        async with http.post(f"{sim.http_url}/_sim/control", json={"exchange": VENUE, "action": "explode"}) as r:
            assert r.status == 400
            assert (await r.json())["error"].startswith("unknown action 'explode'")
        async with http.post(f"{sim.http_url}/_sim/control", json={"exchange": "nope", "action": "close"}) as r:
            assert r.status == 400
        for bad in (b"{not json", b'["close"]', b'{"exchange": "binance", "action": "rate", "rate": "fast"}'):
            async with http.post(f"{sim.http_url}/_sim/control", data=bad) as r:
                assert r.status == 400, bad
        assert not any(t.done() for t in sim._feeds)  # a bad rate is refused, not fed to the feed task

        async with http.get(f"{sim.http_url}/_sim/state") as r:
            assert r.status == 200
            body = await r.json()

    st = body[VENUE]
    assert st["connections"] == 0 and st["connections_accepted"] == 1 and st["subscriptions"] == 0
    assert st["sent"] == 2 and st["frames"] == 2 and st["bad_sent"] == 0 and st["connections_refused"] == 0
    good = sim.last_good(VENUE)
    assert st["last_good"] == {s: [q.last, q.bid, q.ask, q.volume, q.ts_ms] for s, q in good.items()}
    assert set(st["last_good"]) == set(symbols)


# a client that stops reading -------------------------------------------------------------------
def _silent_client(sim: Simulator, symbol_id: str) -> socket.socket:
    """A raw websocket client that subscribes, then never reads again (a stopped process)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.connect(("127.0.0.1", sim.port))
    s.settimeout(3)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /{VENUE}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 101")
    payload = orjson.dumps({"method": "SUBSCRIBE", "params": [f"{symbol_id}@ticker"], "id": 1})
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return s


@pytest.mark.parametrize("sim", [1], indirect=True)
async def test_client_that_stops_reading_is_dropped_and_others_keep_receiving(sim, exchange):
    """A subscriber that never reads fills its socket; after SEND_TIMEOUT the simulator cuts it off
    (as exchanges drop slow consumers) instead of blocking the feed for every other connection."""
    from fullon_ticker_service.sim.venues.base import SEND_TIMEOUT

    symbols = sim.symbols(VENUE)
    await subscribe(exchange, symbols)
    silent = await asyncio.to_thread(_silent_client, sim, sim.markets(VENUE)[0]["id"].lower())
    try:
        await eventually(lambda: state(sim)["connections"] == 2 and state(sim)["subscriptions"] == 2, 3,
                         what="the silent client subscribed")
        sim.set_rate(VENUE, 4000)  # ~1 MB/s of frames: the silent socket's buffers fill in seconds
        await eventually(lambda: state(sim)["connections"] == 1, 30, 0.05, "the silent client dropped")
        t0 = time.monotonic()
        sent = state(sim)["sent"]
        seen = 0
        while seen < 50 and time.monotonic() - t0 < SEND_TIMEOUT:  # the reader gets the feed at once
            await asyncio.wait_for(exchange.watch_tickers(symbols, TICKER), 1.0)
            seen += 1
        assert seen == 50 and state(sim)["sent"] > sent
    finally:
        silent.close()


async def test_a_burst_sends_exactly_count_ticks(sim, exchange):
    """set_rate(..., count=n) sends n ticks and then nothing: a fast burst leaves more than one tick
    'due' when its budget runs out, and that remainder must not leak out as an extra tick."""
    await subscribe(exchange, sim.symbols(VENUE))
    for _ in range(3):
        sent = state(sim)["sent"]
        sim.set_rate(VENUE, 2000, count=150)  # 2000/s: ~100 due per 50 ms feed step, capped by the budget
        await asyncio.wait_for(sim.drained(VENUE), 3)
        await asyncio.sleep(0.3)  # several feed steps at rate 0
        assert state(sim)["sent"] - sent == 150

"""The simulator: one aiohttp server on loopback, a path prefix per exchange.

    ws://HOST:PORT/<ccxt id>/...        the exchange's websocket (any sub-path, e.g. /ws/3)
    GET  /<ccxt id>/markets             the markets snapshot (JSON list of ccxt market dicts)
    GET  /_sim/state                    rates, counters, last good quote per symbol
    POST /_sim/control                  {"exchange", "action", "count"?, "seconds"?, "rate"?, "symbol"?}

Each exchange has a feed task that sends `rate` ticks/s round-robin over its symbols, so every
symbol is updated evenly and `last_good` is exactly the last valid value each one was sent.

Faults (`await sim.fault(venue, action, ...)` or the same fields as JSON to `/_sim/control`):
    close | stall [seconds] | refuse [seconds] | resume | malformed [count] | rate rate [count]
    nan | negative | crossed | zero | older [count]     the next `count` quotes carry that defect
    skew seconds          exchange timestamps run `seconds` ahead (< 0: behind); 0 restores
    mute symbol [seconds] nothing for that symbol (not even a subscribe snapshot) for `seconds`,
                          None = until `resume`; the other symbols keep flowing
`resume` ends stall, refuse, mutes and queued bad values; it leaves the skew as it is.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from loguru import logger

from fullon_ticker_service.sim.model import BAD_KINDS, Quote, Walk, spoil
from fullon_ticker_service.sim.venues.base import Conn, Venue

VENUES = ("binance", "okx", "bybit", "kraken", "hyperliquid", "coinbase",
          "binanceusdm", "binancecoinm", "gate", "krakenfutures", "kucoin")
ACTIONS = ("close", "stall", "resume", "malformed", "refuse", "rate", "skew", "mute", *BAD_KINDS)
MALFORMED_FRAMES = ('{"e":"24hrTicker","s":', "not json at all", "\x00\xff", '{"arg":', "[1,2,")


def load_venue(venue_id: str) -> Venue:
    if venue_id not in VENUES:
        raise ValueError(f"no simulated venue {venue_id!r} (have: {', '.join(VENUES)})")
    module = importlib.import_module(f"fullon_ticker_service.sim.venues.{venue_id}")
    return module.VENUE_CLASS()


@dataclass
class SimExchange:
    venue: str  # ccxt id of the protocol spoken
    symbols: int = 10
    rate: float = 10.0  # ticks/s for this exchange (all symbols together)


class ExchangeState:
    """Everything the simulator keeps for one exchange."""

    def __init__(self, spec: SimExchange, seed: int) -> None:
        self.venue = load_venue(spec.venue)
        self.markets = self.venue.make_markets(spec.symbols)
        self.venue.index(self.markets)
        self.symbols = [m["symbol"] for m in self.markets]
        self.walk = Walk(self.symbols, seed)
        self.rate = spec.rate
        self.budget: int | None = None  # ticks left before the rate drops to 0 (bursts)
        self.conns: set[Conn] = set()
        self.subs: dict[str, dict[tuple[Conn, str], None]] = {s: {} for s in self.symbols}
        self.last_good: dict[str, Quote] = {}
        self.sent = 0  # ticks generated (one per symbol update, whatever the fan-out)
        self.frames = 0  # frames written to sockets
        self.bad_sent = 0
        self.stalled_until = 0.0  # monotonic; math.inf = until resumed
        self.refuse_until = 0.0
        self.spoil_queue: list[str] = []
        self.skew_ms = 0  # added to every exchange timestamp: > 0 = the exchange's clock runs ahead
        self.muted: dict[str, float] = {}  # symbol -> monotonic time its mute ends (math.inf: until resume)
        self.connections_refused = 0
        self.connections_accepted = 0
        self._rr = 0

    @property
    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until

    def is_muted(self, symbol: str) -> bool:
        until = self.muted.get(symbol)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self.muted[symbol]
        return False

    def silent(self, symbol: str) -> bool:
        """Nothing at all goes out for `symbol` now (stalled exchange, or the symbol is muted)."""
        return self.stalled or self.is_muted(symbol)

    def now_ms(self) -> int:
        """The exchange's clock (ms since epoch), `skew` included: for stamps venues put in frames."""
        return int(time.time() * 1000) + self.skew_ms

    def _stamp(self, q: Quote) -> Quote:
        return replace(q, ts_ms=q.ts_ms + self.skew_ms) if self.skew_ms else q

    def add_sub(self, conn: Conn, channel: str, symbol: str) -> None:
        conn.subs.add((channel, symbol))
        self.subs[symbol][(conn, channel)] = None

    def remove_sub(self, conn: Conn, channel: str, symbol: str) -> None:
        conn.subs.discard((channel, symbol))
        self.subs.get(symbol, {}).pop((conn, channel), None)

    def drop(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for channel, symbol in list(conn.subs):
            self.remove_sub(conn, channel, symbol)

    def current(self, symbol: str) -> Quote:
        """The quote a new subscriber gets: the last good one, or a fresh step."""
        q = self.last_good.get(symbol)
        if q is None:
            q = self._stamp(self.walk.step(symbol, int(time.time() * 1000)))
            self.last_good[symbol] = q
        return q

    def next_quote(self) -> tuple[Quote, bool] | None:
        """The next tick, round-robin over the symbols that are not muted (None: all are muted)."""
        for _ in range(len(self.symbols)):
            symbol = self.symbols[self._rr % len(self.symbols)]
            self._rr += 1
            if not self.is_muted(symbol):
                break
        else:
            return None
        # the walk keeps real time (it never steps back); the skew is applied to what is sent
        q = self._stamp(self.walk.step(symbol, int(time.time() * 1000)))
        if self.spoil_queue:
            return spoil(q, self.spoil_queue.pop(0)), False
        return q, True

    def state(self) -> dict[str, Any]:
        return {
            "venue": self.venue.id, "symbols": len(self.symbols), "rate": self.rate,
            "budget": self.budget, "sent": self.sent, "frames": self.frames, "bad_sent": self.bad_sent,
            "connections": len(self.conns), "stalled": self.stalled,
            "refusing": time.monotonic() < self.refuse_until,
            "connections_accepted": self.connections_accepted,
            "connections_refused": self.connections_refused,
            "subscriptions": sum(len(c.subs) for c in self.conns),
            "skew": self.skew_ms / 1000, "muted": sorted(s for s in list(self.muted) if self.is_muted(s)),
        }


class Simulator:
    """In-process handle: `async with Simulator([...]) as sim:` or `await sim.start()`."""

    def __init__(self, exchanges: list[SimExchange], host: str = "127.0.0.1", port: int = 0,
                 seed: int = 1, tick_interval: float = 0.002) -> None:
        names = [e.venue for e in exchanges]
        if len(set(names)) != len(names):
            raise ValueError("one SimExchange per venue")
        self.exchanges = {e.venue: ExchangeState(e, seed + i) for i, e in enumerate(exchanges)}
        self.host, self.port = host, port
        self.tick_interval = tick_interval
        self._runner: web.AppRunner | None = None
        self._feeds: list[asyncio.Task[None]] = []

    # lifecycle ------------------------------------------------------------------------------
    async def start(self) -> Simulator:
        app = web.Application()
        app.router.add_get("/_sim/state", self._http_state)
        app.router.add_post("/_sim/control", self._http_control)
        app.router.add_route("*", "/{venue}/markets", self._http_markets)
        app.router.add_route("*", "/{venue}{tail:.*}", self._http_venue)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._feeds = [asyncio.create_task(self._feed(ex), name=f"sim-feed-{name}")
                       for name, ex in self.exchanges.items()]
        return self

    async def stop(self) -> None:
        for t in self._feeds:
            t.cancel()
        await asyncio.gather(*self._feeds, return_exceptions=True)
        for ex in self.exchanges.values():
            await asyncio.gather(*(conn.close() for conn in list(ex.conns)))
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # what clients need -----------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def ccxt_config(self, venue: str) -> dict[str, Any]:
        ex = self.exchanges[venue]
        http = f"{self.http_url}/{venue}"
        return ex.venue.ccxt_config(http, "ws" + http[4:])

    def markets(self, venue: str) -> list[dict[str, Any]]:
        return self.exchanges[venue].markets

    def symbols(self, venue: str) -> list[str]:
        return list(self.exchanges[venue].symbols)

    def last_good(self, venue: str) -> dict[str, Quote]:
        return dict(self.exchanges[venue].last_good)

    # control ---------------------------------------------------------------------------------
    def set_rate(self, venue: str, rate: float, count: int | None = None) -> None:
        """Send `rate` ticks/s; with `count`, stop (rate 0) after that many ticks."""
        ex = self.exchanges[venue]
        ex.rate, ex.budget = rate, count

    async def drained(self, venue: str, within: float = 30.0) -> None:
        """Wait until a burst started with `set_rate(..., count=N)` has been fully sent."""
        ex = self.exchanges[venue]
        deadline = time.monotonic() + within
        while ex.budget:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{venue}: {ex.budget} ticks of the burst still unsent")
            await asyncio.sleep(0.005)

    async def send_raw(self, venue: str, frame: str | bytes) -> int:
        """Send one arbitrary frame (hostile-input tests) to every open connection of `venue`; returns
        how many took it (a connection closing under the send, e.g. just after a reconnect, is skipped)."""
        sent = 0
        for conn in list(self.exchanges[venue].conns):
            try:
                await conn.send(frame)
            except ConnectionError:  # aiohttp's "Cannot write to closing transport" included
                continue
            sent += not conn.closed
        return sent

    async def fault(self, venue: str, action: str, count: int = 1, seconds: float | None = None,
                    rate: float | None = None, symbol: str | None = None) -> None:
        """Inject a fault (see ACTIONS). `seconds` bounds stall/refuse/mute (None: until `resume`).

        skew: shift the exchange's timestamps by `seconds` (> 0: its clock is ahead, < 0: behind,
        0: back to true time); `resume` leaves it. mute: send nothing for `symbol` (unified
        symbol) for `seconds`, not even a subscribe snapshot; the other symbols keep their share.
        """
        ex = self.exchanges[venue]
        now = time.monotonic()
        until = math.inf if seconds is None else now + seconds
        if action == "close":
            await asyncio.gather(*(conn.close(1001, b"simulated close") for conn in list(ex.conns)))
        elif action == "stall":
            ex.stalled_until = until
        elif action == "refuse":
            ex.refuse_until = until
        elif action == "resume":
            ex.stalled_until = ex.refuse_until = 0.0
            ex.spoil_queue.clear()
            ex.muted.clear()
        elif action == "skew":
            if seconds is None or not math.isfinite(seconds):
                raise ValueError("action 'skew' needs seconds (0 restores the true time)")
            ex.skew_ms = round(seconds * 1000)
        elif action == "mute":
            if symbol not in ex.subs:
                raise ValueError(f"action 'mute' needs the symbol of one of {venue}'s markets, not {symbol!r}")
            ex.muted[symbol] = until
        elif action == "malformed":
            for i in range(count):
                frame = MALFORMED_FRAMES[i % len(MALFORMED_FRAMES)]
                for conn in list(ex.conns):
                    await conn.send(frame)
        elif action in BAD_KINDS:
            ex.spoil_queue.extend([action] * count)
        elif action == "rate":
            if rate is None:
                raise ValueError("action 'rate' needs rate")
            self.set_rate(venue, rate, count if count > 1 else None)
        else:
            raise ValueError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
        logger.bind(component="sim").info(f"{venue}: fault {action} count={count} seconds={seconds}"
                                          + (f" symbol={symbol}" if symbol is not None else ""))

    # feed -------------------------------------------------------------------------------------
    async def _feed(self, ex: ExchangeState) -> None:
        due = 0.0
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_interval)
            now = time.monotonic()
            due = min(due + (now - last) * ex.rate, max(ex.rate * 0.25, 1.0))  # at most 250 ms behind
            last = now
            if ex.stalled:
                due = 0.0
                continue
            n = int(due)
            if ex.budget is not None:
                n = min(n, ex.budget)
            done = 0
            while done < n:
                tick = ex.next_quote()
                if tick is None:  # every symbol is muted: nothing to send (a burst waits for them)
                    break
                q, good = tick
                # record before delivering: a client subscribing while this frame is being sent
                # gets it as its snapshot (`current()`), otherwise it would never see it
                if good:
                    ex.last_good[q.symbol] = q
                else:
                    ex.bad_sent += 1
                await self._deliver(ex, q)
                ex.sent += 1
                done += 1
            due -= n  # what muting left unsent is dropped, as if those ticks had gone out
            if ex.budget is not None:
                ex.budget -= done
                if ex.budget <= 0:  # what the cap left due is dropped: a burst is exactly `count` ticks
                    ex.rate, ex.budget, due = 0.0, None, 0.0

    async def _deliver(self, ex: ExchangeState, q: Quote) -> None:
        for conn, channel in list(ex.subs[q.symbol]):
            if conn.closed:
                ex.drop(conn)
                continue
            try:
                await conn.send(ex.venue.encode(conn, channel, q))
                ex.frames += 1
            except (ConnectionError, RuntimeError):
                ex.drop(conn)

    # http handlers ---------------------------------------------------------------------------
    def _exchange(self, request: web.Request) -> ExchangeState:
        ex = self.exchanges.get(request.match_info["venue"])
        if ex is None:
            raise web.HTTPNotFound(text=f"no simulated exchange {request.match_info['venue']!r}")
        return ex

    async def _http_markets(self, request: web.Request) -> web.Response:
        ex = self._exchange(request)
        return web.Response(body=orjson.dumps(ex.markets), content_type="application/json")

    async def _http_state(self, request: web.Request) -> web.Response:
        body = {
            name: {**ex.state(), "last_good": {s: [q.last, q.bid, q.ask, q.volume, q.ts_ms]
                                               for s, q in ex.last_good.items()}}
            for name, ex in self.exchanges.items()
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _http_control(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            if not isinstance(body, dict):
                raise TypeError("control body must be a JSON object")
            # numbers from JSON are untrusted: a string rate would kill the feed task after a 200
            seconds, rate = (None if body.get(k) is None else float(body[k]) for k in ("seconds", "rate"))
            symbol = body.get("symbol")
            if symbol is not None and not isinstance(symbol, str):
                raise TypeError("symbol must be a string")
            await self.fault(body["exchange"], body["action"], int(body.get("count", 1)), seconds, rate, symbol)
        except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _http_venue(self, request: web.Request) -> web.StreamResponse:
        ex = self._exchange(request)
        tail = request.match_info["tail"]
        if request.headers.get("Upgrade", "").lower() != "websocket":
            resp = await ex.venue.rest(request, tail.lstrip("/"))
            if resp is None:
                raise web.HTTPNotFound(text=f"{ex.venue.id}: no simulated endpoint {tail!r}")
            return resp
        if time.monotonic() < ex.refuse_until:
            ex.connections_refused += 1
            raise web.HTTPServiceUnavailable(text="simulated outage: connections refused")
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        try:
            await ws.prepare(request)
        except ConnectionError:
            # The client went away during the handshake (it is reconnecting, or we are stopping). The
            # half-prepared ws must not be returned: aiohttp would close it and log "Call .prepare()
            # first" with a traceback. Cut the connection and return a plain response, whose sending
            # then fails with the ConnectionError aiohttp expects and ignores.
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503, text="websocket handshake interrupted")
        conn = Conn(ws, tail, ex, request.transport, request.query, request.headers)
        ex.conns.add(conn)
        ex.connections_accepted += 1
        try:
            await ex.venue.on_open(conn)
            async for msg in ws:
                if ex.stalled:  # a dead-but-open socket: read and ignore everything
                    continue
                if msg.type == WSMsgType.TEXT:
                    await ex.venue.on_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            ex.drop(conn)
        return ws


async def serve(exchanges: list[SimExchange], host: str, port: int, seed: int = 1) -> None:
    """Run until cancelled (the `tickerctl sim` command)."""
    async with Simulator(exchanges, host, port, seed) as sim:
        log = logger.bind(component="sim")
        log.info(f"simulator on {sim.http_url}: " + ", ".join(
            f"{n} ({len(e.symbols)} symbols, {e.rate:g} ticks/s)" for n, e in sim.exchanges.items()))
        await asyncio.Event().wait()

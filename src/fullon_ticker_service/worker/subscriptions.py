"""The exchange's subscriptions: one watch loop per group of symbols, reconnects, and the watchdog.

`add` plans the calls (channels.plan: per stream, symbols grouped by the socket ccxt routes them
to, then chunked) and starts one loop per call. A loop subscribes with the watch call; once data
arrives it waits on a sentinel future of that call's connection (ccxt rejects every pending future
of a connection that fails), so it does not re-arm the watch after every frame; on any error it
backs off (jittered, capped) and subscribes again (ccxt never resubscribes by itself). The watch
call's value is not used: tickers reach us through the intake's hooks.

Nothing dies silently: every exception from a watch call, ccxt's or not, is one log line, counted,
backed off and retried; a loop that ends for any reason is noticed by the watchdog and restarted.
The watchdog also forces a reconnect when a stream, or one symbol, is silent too long, because
ccxt's keepalive can take minutes to notice a dead socket and a malformed frame silently stops
ccxt's receive loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import ccxt
from loguru import logger

from fullon_ticker_service.backoff import delay
from fullon_ticker_service.channels import Stream, plan
from fullon_ticker_service.config import ExchangeSettings
from fullon_ticker_service.worker.exchange import routes
from fullon_ticker_service.worker.intake import Intake

STABLE_AFTER = 30.0  # seconds of working connection before the backoff attempt count resets
SENTINEL = "fullon_ticker:sentinel:"  # message hash of the future that waits for a connection to fail
_CURRENT: ContextVar[Subscription | None] = ContextVar("subscription", default=None)


@dataclass
class Subscription:
    """One watch call, kept alive: its stream, route, symbols and its own failure record."""

    stream: Stream
    route: str
    symbols: list[str]
    task: asyncio.Task[None] | None = None
    url: str = ""  # the connection ccxt used for the call (learnt when it is made)
    attempt: int = 0
    connected_at: float = 0.0
    forced: bool = False  # its connection was failed by us (watchdog), not by the exchange
    failures_in_row: int = 0
    errors: int = 0
    last_error: str = ""

    @property
    def name(self) -> str:
        return f"{self.stream.kind}:{self.symbols[0]}+{len(self.symbols) - 1}"


class Subscriptions:
    def __init__(self, exchange: Any, streams: list[Stream], cfg: ExchangeSettings, intake: Intake,
                 note_error: Callable[[str], None]) -> None:
        self.exchange = exchange
        self.streams = streams
        self.cfg = cfg
        self.intake = intake
        self.note_error = note_error
        self.log = logger.bind(exchange=intake.name)
        self.subs: list[Subscription] = []
        self.reconnects = 0
        self.stale_reconnects = 0
        self.restarted = 0  # loops that ended unexpectedly and were started again
        self._last_symbol_kick = 0.0
        self._closing = False
        _track_urls(exchange)

    @property
    def failing(self) -> bool:
        """A subscription failed `max_retries` reconnects in a row: the worker reports status `error`."""
        limit = self.cfg.max_retries
        return limit > 0 and any(s.failures_in_row >= limit for s in self.subs)

    async def add(self, symbols: list[str]) -> None:
        """Subscribe `symbols` on every stream, grouped as ccxt routes them."""
        markets = self.exchange.markets or {}
        for stream in self.streams:
            urls = await routes(self.exchange, stream, symbols)
            for route, part in plan(stream, symbols, markets, urls):
                self._start(Subscription(stream, route, part))

    def _start(self, sub: Subscription) -> None:
        sub.task = asyncio.create_task(self._watch(sub), name=f"watch:{sub.name}")
        if sub not in self.subs:
            self.subs.append(sub)

    async def update(self, added: set[str], removed: set[str]) -> None:
        """Apply a symbol change without dropping unaffected subscriptions: a subscription that holds
        a removed symbol is dropped and its other symbols subscribed again."""
        added = set(added)
        for sub in [s for s in self.subs if removed & set(s.symbols)]:
            await self._drop(sub)
            added |= {s for s in sub.symbols if s not in removed}
        if added:
            await self.add(sorted(added))

    def close(self) -> list[asyncio.Task[None]]:
        """Cancel every watch loop; returns their tasks to wait for."""
        self._closing = True
        tasks = [s.task for s in self.subs if s.task]
        for t in tasks:
            t.cancel()
        return tasks

    async def _drop(self, sub: Subscription) -> None:
        self.subs.remove(sub)
        if sub.task:
            sub.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sub.task
        stream = sub.stream
        if stream.unwatch:
            arg: Any = sub.symbols[0] if stream.per_symbol else sub.symbols
            try:
                await asyncio.wait_for(getattr(self.exchange, stream.unwatch_method)(arg, dict(stream.params)), 5)
            except Exception as exc:  # best effort: data for unwanted symbols is ignored anyway
                self.log.debug(f"{stream.unwatch_method} failed: {type(exc).__name__}: {exc}")

    # --- one subscription's loop ----------------------------------------------------------------
    async def _watch(self, sub: Subscription) -> None:
        _CURRENT.set(sub)  # this task's watch calls tell `sub` their connection's URL
        stream = sub.stream
        watch = getattr(self.exchange, stream.method)
        arg: Any = sub.symbols[0] if stream.per_symbol else list(sub.symbols)
        while not self._closing:
            call = asyncio.ensure_future(watch(arg, dict(stream.params)))
            try:
                if await self._first_data(sub, call):  # the call returned: ccxt parsed the data
                    call.result()
                    self._connected(sub)
                    await self._until_connection_fails(sub)
                else:  # data came through the native decoder, which resolves no ccxt future
                    self._connected(sub)
                    await call  # pending until the connection fails
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # our own cancellation
                await self._failed(sub, "ccxt cancelled the subscription")
            except Exception as exc:  # ccxt's errors and anything else raised inside a watch call
                await self._failed(sub, f"{type(exc).__name__}: {exc}")
            finally:
                if not call.done():
                    call.cancel()

    async def _first_data(self, sub: Subscription, call: asyncio.Future[Any]) -> bool:
        """Wait for the call to return (True) or for data of its stream to reach any of its symbols
        (False), whichever is first."""
        arrival = self.intake.arrival(sub.stream.kind, sub.symbols)
        try:
            await asyncio.wait({call, arrival}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            arrival.cancel()
        return call.done()

    async def _until_connection_fails(self, sub: Subscription) -> None:
        """Wait, without re-arming the watch, until the call's connection fails (ccxt rejects every
        pending future of a failing connection, ours too). Raises what it failed with."""
        client = getattr(self.exchange, "clients", {}).get(sub.url)
        if client is None:  # connection unknown: fall back to waiting on the next update
            return
        key = f"{SENTINEL}{id(sub)}"
        sentinel = client.future(key)
        try:
            if client.closed():  # it failed before we started waiting
                raise ccxt.NetworkError("connection closed")
            await sentinel
        finally:
            client.futures.pop(key, None)

    def _connected(self, sub: Subscription) -> None:
        now = time.monotonic()
        sub.forced = False
        sub.failures_in_row = 0
        if sub.attempt:
            if not sub.connected_at:
                sub.connected_at = now
                self.reconnects += 1
                self.log.info(f"resubscribed {len(sub.symbols)} {sub.stream.kind} symbols after "
                              f"{sub.attempt} attempt(s)")
            elif now - sub.connected_at >= STABLE_AFTER:
                sub.attempt, sub.connected_at = 0, 0.0

    async def _failed(self, sub: Subscription, error: str) -> None:
        # a reconnect we forced (watchdog) is not the exchange failing: no backoff growth, no failure,
        # not the worker's last error (the watchdog said why in its own line)
        if sub.forced:
            sub.attempt = 1
        else:
            sub.attempt += 1
            sub.failures_in_row += 1
            sub.last_error = error[:300]
            self.note_error(error)
        sub.forced = False
        sub.connected_at = 0.0
        sub.errors += 1
        wait = delay(sub.attempt, self.cfg.reconnect_delay, self.cfg.reconnect_max_delay)
        self.log.warning(f"subscription of {len(sub.symbols)} {sub.stream.kind} symbols failed ({error[:200]}); "
                         f"attempt {sub.attempt}, retry in {wait:.2f}s")
        await asyncio.sleep(wait)

    # --- the watchdog ---------------------------------------------------------------------------
    def force_reconnect(self, why: str, subs: list[Subscription] | None = None) -> None:
        """Fail the connections of `subs` (default: every open connection) so their watch loops
        reconnect and resubscribe. Every subscription on a failed connection is marked forced."""
        clients = getattr(self.exchange, "clients", {})
        urls = {s.url for s in subs} if subs is not None else set(clients)
        if "" in urls:  # a subscription whose connection is not known yet: fail them all
            urls = set(clients)
        failing = [clients[u] for u in urls if u in clients]
        self.log.warning(f"forcing reconnect of {len(failing)} connection(s): {why}")
        for sub in self.subs:
            if sub.url in urls or subs is None:
                sub.forced = True
        for client in failing:
            with contextlib.suppress(Exception):
                client.on_error(ccxt.NetworkError(f"watchdog: {why}"))

    def restart_ended(self) -> None:
        """A watch loop that ended (returned, or raised past our handlers) is logged and restarted."""
        if self._closing:
            return
        for sub in self.subs:
            if sub.task is not None and sub.task.done():
                why = "returned" if sub.task.cancelled() or sub.task.exception() is None else \
                    f"raised {type(sub.task.exception()).__name__}: {sub.task.exception()}"
                self.restarted += 1
                self.log.error(f"subscription of {len(sub.symbols)} {sub.stream.kind} symbols ended ({why}); "
                               f"restarting it")
                self.note_error(f"subscription ended ({why})")
                self._start(sub)

    async def watchdog(self) -> None:
        """Restart ended loops; force a reconnect when a stream (or the whole exchange), or any one
        symbol, is silent too long."""
        period = max(0.1, min(1.0, self.cfg.stale_after / 4))
        while True:
            await asyncio.sleep(period)
            self.restart_ended()
            if self.intake.wanted:
                self._kick_silent(time.monotonic())

    def _kick_silent(self, now: float) -> None:
        cfg, intake = self.cfg, self.intake
        # a stream silent while another one flows is a dead subscription too (e.g. a resubscribe the
        # exchange ignored): judged per stream, not only on the exchange's newest frame
        kinds = sorted({s.stream.kind for s in self.subs})
        silent = [k for k in kinds if now - intake.stream_last[k] >= cfg.stale_after]
        if silent:
            quiet = min(now - intake.stream_last[k] for k in silent)
            what = "data" if len(silent) == len(kinds) else f"{'/'.join(silent)} data"
            self.stale_reconnects += 1
            self.force_reconnect(f"no {what} for {quiet:.1f}s", [s for s in self.subs if s.stream.kind in silent])
            for k in silent:  # give the reconnect a full period before judging again
                intake.stream_last[k] = now
            return
        limit = cfg.symbol_stale_after
        if limit and now - self._last_symbol_kick >= limit:
            stale = intake.silent(now, limit)
            if stale:
                self._last_symbol_kick = now
                self.stale_reconnects += 1
                self.force_reconnect(f"{len(stale)} symbol(s) silent for {limit:g}s, e.g. {stale[0]}")

    def snapshot(self) -> dict[str, Any]:
        """The subscriptions' part of the health record."""
        return {"method": ",".join(s.method for s in self.streams), "streams": [s.kind for s in self.streams],
                "subscriptions": len(self.subs), "reconnects": self.reconnects,
                "stale_reconnects": self.stale_reconnects, "subscription_restarts": self.restarted,
                "failing_subscriptions": sum(1 for s in self.subs if s.failures_in_row)}


def _track_urls(exchange: Any) -> None:
    """Every watch call tells the subscription that made it (a context variable of its task) which
    connection it went to, so the loop can wait on that connection."""
    for name in ("watch", "watch_multiple"):
        real = getattr(exchange, name)

        def wrapper(url: str, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            sub = _CURRENT.get()
            if sub is not None:
                sub.url = url
            return _real(url, *args, **kwargs)

        setattr(exchange, name, wrapper)

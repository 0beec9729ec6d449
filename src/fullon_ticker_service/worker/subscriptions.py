"""The exchange's subscriptions: one watch loop per chunk of symbols, reconnects, and the watchdog.

Each chunk runs its own loop: an error -> jittered capped backoff -> the next watch call
reconnects and resubscribes (ccxt never resubscribes by itself). The watch call's return value
is not used: tickers reach us through the intake's hook. The watchdog forces a reconnect when the
exchange (or one symbol) is silent too long, because ccxt's keepalive can take minutes to notice a
dead socket and a malformed frame silently stops ccxt's receive loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt
from loguru import logger

from fullon_ticker_service.backoff import delay
from fullon_ticker_service.channels import Plan, chunked
from fullon_ticker_service.config import ExchangeSettings
from fullon_ticker_service.worker.intake import Intake

STABLE_AFTER = 30.0  # seconds of working connection before the backoff attempt count resets


@dataclass
class Chunk:
    symbols: list[str]
    task: asyncio.Task[None] | None = None
    attempt: int = 0
    connected_at: float = 0.0
    forced: bool = False  # its connection was failed by us (watchdog), not by the exchange


class Subscriptions:
    def __init__(self, exchange: Any, plan: Plan, cfg: ExchangeSettings, intake: Intake,
                 note_error: Callable[[str], None]) -> None:
        self.exchange = exchange
        self.plan = plan
        self.cfg = cfg
        self.intake = intake
        self.note_error = note_error
        self.log = logger.bind(exchange=intake.name)
        self.chunks: list[Chunk] = []
        self.reconnects = 0
        self.stale_reconnects = 0
        self.failures_in_row = 0
        self._last_symbol_kick = 0.0
        self._closing = False

    @property
    def failing(self) -> bool:
        """Failed reconnects in a row reached `max_retries`: the worker reports status `error`."""
        return self.failures_in_row >= self.cfg.max_retries > 0

    def add(self, symbols: list[str]) -> None:
        for part in chunked(symbols, self.plan.chunk):
            chunk = Chunk(part)
            chunk.task = asyncio.create_task(self._watch(chunk), name=f"watch:{part[0]}+{len(part) - 1}")
            self.chunks.append(chunk)

    async def update(self, added: set[str], removed: set[str]) -> None:
        """Apply a symbol change without dropping unaffected subscriptions: a chunk that holds a
        removed symbol is dropped and its other symbols subscribed again."""
        added = set(added)
        for chunk in [c for c in self.chunks if removed & set(c.symbols)]:
            await self._drop(chunk)
            added |= {s for s in chunk.symbols if s not in removed}
        if added:
            self.add(sorted(added))

    def close(self) -> list[asyncio.Task[None]]:
        """Cancel every watch loop; returns their tasks to wait for."""
        self._closing = True
        tasks = [c.task for c in self.chunks if c.task]
        for t in tasks:
            t.cancel()
        return tasks

    async def _drop(self, chunk: Chunk) -> None:
        self.chunks.remove(chunk)
        if chunk.task:
            chunk.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await chunk.task
        if self.plan.unwatch:
            method = "un_watch_ticker" if self.plan.method == "watch_ticker" else "un_watch_tickers"
            arg: Any = chunk.symbols[0] if self.plan.method == "watch_ticker" else chunk.symbols
            try:
                await asyncio.wait_for(getattr(self.exchange, method)(arg, dict(self.plan.params)), 5)
            except Exception as exc:  # best effort: data for unwanted symbols is ignored anyway
                self.log.debug(f"{method} failed: {type(exc).__name__}: {exc}")

    async def _watch(self, chunk: Chunk) -> None:
        plan = self.plan
        watch = getattr(self.exchange, plan.method)
        while not self._closing:
            arg: Any = chunk.symbols[0] if plan.method == "watch_ticker" else list(chunk.symbols)
            try:
                await watch(arg, dict(plan.params))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # our own cancellation
                await self._failed(chunk, "ccxt cancelled the subscription")
                continue
            except (ccxt.NetworkError, ccxt.ExchangeError) as exc:
                # ExchangeError covers subscription rejections (e.g. BadSymbol, UnsubscribeError)
                await self._failed(chunk, f"{type(exc).__name__}: {exc}")
                continue
            now = time.monotonic()
            chunk.forced = False
            if chunk.attempt:
                if not chunk.connected_at:
                    chunk.connected_at = now
                    self.reconnects += 1
                    self.failures_in_row = 0
                    self.log.info(f"resubscribed {len(chunk.symbols)} symbols after {chunk.attempt} attempt(s)")
                elif now - chunk.connected_at >= STABLE_AFTER:
                    chunk.attempt, chunk.connected_at = 0, 0.0

    async def _failed(self, chunk: Chunk, error: str) -> None:
        # a reconnect we forced (silence watchdog) is not the exchange failing: do not grow the backoff
        chunk.attempt = 1 if chunk.forced else chunk.attempt + 1
        chunk.forced = False
        chunk.connected_at = 0.0
        self.failures_in_row += 1
        self.note_error(error)
        wait = delay(chunk.attempt, self.cfg.reconnect_delay, self.cfg.reconnect_max_delay)
        self.log.warning(f"subscription of {len(chunk.symbols)} symbols failed ({error[:200]}); "
                         f"attempt {chunk.attempt}, retry in {wait:.2f}s")
        await asyncio.sleep(wait)

    def force_reconnect(self, why: str) -> None:
        """Fail every open connection so the watch loops reconnect and resubscribe."""
        clients = list(getattr(self.exchange, "clients", {}).values())
        self.log.warning(f"forcing reconnect of {len(clients)} connection(s): {why}")
        for chunk in self.chunks:
            chunk.forced = True
        for client in clients:
            with contextlib.suppress(Exception):
                client.on_error(ccxt.NetworkError(f"watchdog: {why}"))

    async def watchdog(self) -> None:
        """Force a reconnect when the exchange, or any one symbol, has been silent too long."""
        cfg, intake = self.cfg, self.intake
        period = max(0.1, min(1.0, cfg.stale_after / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            silent = now - intake.last_any
            if silent >= cfg.stale_after and intake.wanted:
                self.stale_reconnects += 1
                self.force_reconnect(f"no data for {silent:.1f}s")
                intake.last_any = now  # give the reconnect a full period before judging again
                continue
            limit = cfg.symbol_stale_after
            if limit and intake.wanted and now - self._last_symbol_kick >= limit:
                stale = intake.silent(now, limit)
                if stale:
                    self._last_symbol_kick = now
                    self.stale_reconnects += 1
                    self.force_reconnect(f"{len(stale)} symbol(s) silent for {limit:g}s, e.g. {stale[0]}")

    def snapshot(self) -> dict[str, Any]:
        """The subscriptions' part of the health record."""
        return {"method": self.plan.method, "subscriptions": len(self.chunks), "reconnects": self.reconnects,
                "stale_reconnects": self.stale_reconnects}

"""The hot path: every ticker and bid/ask ccxt stores -> normalise, validate, never older, merge
-> the writer.

ccxt's multi-symbol watches lose wake-ups under load (ccxt issue 30220): a `watch_tickers` loop
wakes far less often than frames arrive. So we do not consume what the watch call returns.
Instead `exchange.tickers` and `exchange.bidsasks` are replaced by dict subclasses whose
`__setitem__` hands every parsed entry to `on_ticker` / `on_bidask` the moment ccxt stores it
(ccxt.pro's handlers store with `self.tickers[symbol] = parsed` / `self.bidsasks[symbol] = ...`).
Each stream keeps its own never-older rule; `tick.merge` makes the one fullon tick of a symbol.
The intake also owns the wanted-symbol set and what it knows of each symbol's freshness.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter, deque
from typing import Any

from loguru import logger

from fullon_ticker_service.channels import BIDASK, TICKER
from fullon_ticker_service.config import ExchangeSettings
from fullon_ticker_service.tick import (
    MALFORMED,
    NO_PRICE,
    OLDER,
    Tick,
    merge,
    normalise,
    quote,
    validate,
    validate_quote,
)
from fullon_ticker_service.worker.writer import TickWriter

REJECT_LOG_EVERY = 10.0  # at most one rejection summary line per this many seconds


class TickerSink(dict):  # type: ignore[type-arg]
    """`exchange.tickers` replacement: every store by ccxt is also reported to `on_set`."""

    __slots__ = ("on_set",)

    def __init__(self, on_set: Any, initial: dict[str, Any] | None = None) -> None:
        super().__init__(initial or {})
        self.on_set = on_set

    def __setitem__(self, symbol: str, ticker: Any) -> None:
        dict.__setitem__(self, symbol, ticker)
        self.on_set(symbol, ticker)


def _drop(symbol: str, ticker: Any) -> None:
    """What a closed intake does with a ticker: nothing."""


class Intake:
    def __init__(self, exchange: str, cfg: ExchangeSettings, writer: TickWriter) -> None:
        self.name = exchange
        self.cfg = cfg
        self.writer = writer
        self.log = logger.bind(exchange=exchange)
        self.wanted: set[str] = set()
        self.unknown: list[str] = []  # catalog symbols the exchange does not list
        self.tick_part: dict[str, Tick] = {}  # the latest accepted ticker-stream tick per symbol
        self.quote_part: dict[str, Tick] = {}  # the latest accepted bid/ask quote per symbol
        self.last_seen: dict[str, float] = {}  # monotonic arrival per symbol (any ticker)
        self.arrived: dict[str, dict[str, float]] = {TICKER: {}, BIDASK: {}}  # per stream: monotonic arrival
        self.last_any = time.monotonic()
        self.stream_last = {TICKER: self.last_any, BIDASK: self.last_any}  # per stream: newest arrival, any symbol
        self.first_tick_at: float | None = None  # monotonic, None: nothing arrived yet
        self.added_at: dict[str, float] = {}  # epoch time each wanted symbol was added (its start grace)
        self.ticks = 0
        self.rejected: Counter[str] = Counter()
        self.rejected_by_symbol: Counter[str] = Counter()
        # exchange time - arrival time of recent exchange-stamped updates (accepted or not): the clock offset
        self.offsets: deque[float] = deque(maxlen=256)
        self._unlogged: Counter[str] = Counter()
        self._last_reject_log = 0.0
        self._sinks: list[TickerSink] = []
        self._waiters: list[tuple[str, frozenset[str], asyncio.Future[None]]] = []

    def hook(self, exchange: Any) -> None:
        """From now on every ticker (bid/ask) ccxt stores on `exchange` comes through `on_ticker`
        (`on_bidask`)."""
        exchange.tickers = TickerSink(self.on_ticker, exchange.tickers)
        exchange.bidsasks = TickerSink(self.on_bidask, getattr(exchange, "bidsasks", None) or {})
        self._sinks += [exchange.tickers, exchange.bidsasks]

    def close(self) -> None:
        """Take no more ticks: frames ccxt still parses (until its sockets close) are dropped, not
        buffered, so nothing is accepted after the final flush."""
        for sink in self._sinks:
            sink.on_set = _drop

    # --- the hot path -----------------------------------------------------------------------
    def on_ticker(self, symbol: str, ticker: Any) -> None:
        """Called synchronously from ccxt's parser for every ticker it stores."""
        self._take(symbol, ticker, TICKER)

    def on_bidask(self, symbol: str, ticker: Any) -> None:
        """Called synchronously from ccxt's parser for every best bid/ask it stores."""
        self._take(symbol, ticker, BIDASK)

    def _take(self, symbol: str, raw: Any, stream: str) -> None:
        """Normalise, validate, never older than this stream's last, merge with the other stream,
        hand to the writer; or count the rejection."""
        mono = time.monotonic()
        self.last_any = self.stream_last[stream] = mono
        if symbol not in self.wanted:
            return
        self.last_seen[symbol] = self.arrived[stream][symbol] = mono
        if self._waiters:
            self._wake(stream, symbol)
        if self.first_tick_at is None:
            self.first_tick_at = mono
        now = time.time()
        ticker = stream == TICKER
        try:
            part = normalise(self.name, raw, now) if ticker else quote(raw, now)
            if part["time_source"] == "exchange":
                self.offsets.append(part["time"] - now)
            reason = validate(part, now, self.cfg.max_skew) if ticker else validate_quote(part, now, self.cfg.max_skew)
        except Exception:  # never let our code break ccxt's message handler
            reason, part = MALFORMED, None
        parts = self.tick_part if ticker else self.quote_part
        if reason is None:
            prev = parts.get(symbol)
            if prev is not None and part["time"] < prev["time"]:  # type: ignore[index]
                reason = OLDER
        if reason is not None:
            self.reject(symbol, reason)
            return
        parts[symbol] = part  # type: ignore[assignment]
        merged = merge(self.name, symbol, self.tick_part.get(symbol), self.quote_part.get(symbol))
        if merged["price"] is None:  # a one-sided quote and nothing else: no price to store
            self.reject(symbol, NO_PRICE)
            return
        self.ticks += 1
        self.writer.put(symbol, merged)

    def arrival(self, stream: str, symbols: list[str]) -> asyncio.Future[None]:
        """A future resolved when data of `stream` next arrives for any of `symbols` (whether or not
        it is accepted): how a subscription learns its call works when no ccxt future resolves."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((stream, frozenset(symbols), future))
        return future

    def _wake(self, stream: str, symbol: str) -> None:
        keep = []
        for waiter in self._waiters:
            kind, symbols, future = waiter
            if future.done():
                continue
            if kind == stream and symbol in symbols:
                future.set_result(None)
            else:
                keep.append(waiter)
        self._waiters = keep

    def reject(self, symbol: str, reason: str) -> None:
        self.rejected[reason] += 1
        self.rejected_by_symbol[symbol] += 1
        self._unlogged[reason] += 1
        mono = time.monotonic()
        if mono - self._last_reject_log >= REJECT_LOG_EVERY:
            summary = ", ".join(f"{k}={v}" for k, v in sorted(self._unlogged.items()))
            self.log.warning(f"rejected ticks (latest {symbol}: {reason}); since last report: {summary}")
            self._unlogged.clear()
            self._last_reject_log = mono

    # --- the wanted set ---------------------------------------------------------------------
    def set_wanted(self, symbols: set[str], markets: dict[str, Any]) -> tuple[set[str], set[str]]:
        """Filter to listed markets; returns (added, removed) relative to the current set."""
        listed = {s for s in symbols if s in markets}
        for s in sorted(symbols - listed):
            if s not in self.unknown:
                self.log.error(f"symbol {s!r} is not listed by {self.name}; skipped")
                self.unknown.append(s)
        added, removed = listed - self.wanted, self.wanted - listed
        self.wanted = listed
        now, epoch = time.monotonic(), time.time()
        for s in added:
            self.last_seen.setdefault(s, now)
            self.added_at[s] = epoch
        for s in removed:
            self.last_seen.pop(s, None)
            self.arrived[TICKER].pop(s, None)
            self.arrived[BIDASK].pop(s, None)
            self.added_at.pop(s, None)
            self.rejected_by_symbol.pop(s, None)
            self.tick_part.pop(s, None)
            self.quote_part.pop(s, None)
        return added, removed

    def fed_by(self) -> dict[str, list[str]]:
        """Which streams have fed each wanted symbol: {"ticker+bidask": [...], "ticker": [...],
        "bidask": [...], "none": [...]} (the health record's `streams`)."""
        out: dict[str, list[str]] = {"ticker+bidask": [], "ticker": [], "bidask": [], "none": []}
        for s in sorted(self.wanted):
            out[self.streams_of(s) or "none"].append(s)
        return out

    def clock_offset(self) -> float | None:
        """Median of (exchange time - arrival time) over recent exchange-stamped updates: how far the
        exchange's clock (plus its latency) is from ours. None with fewer than 5 samples."""
        return round(statistics.median(self.offsets), 3) if len(self.offsets) >= 5 else None

    def streams_of(self, symbol: str) -> str:
        """Which streams have fed a symbol: "ticker+bidask", "ticker", "bidask" or ""."""
        t, q = symbol in self.tick_part, symbol in self.quote_part
        return "ticker+bidask" if t and q else "ticker" if t else "bidask" if q else ""

    def silent(self, now: float, limit: float) -> list[str]:
        """Wanted symbols that have not ticked for `limit` seconds (monotonic `now`)."""
        return [s for s in self.wanted if now - self.last_seen.get(s, now) >= limit]

    def snapshot(self, now: float) -> dict[str, Any]:
        """The intake's part of the health record (monotonic `now`)."""
        ages = sorted(((now - self.last_seen.get(s, now), s) for s in self.wanted), reverse=True)
        return {"symbols": len(self.wanted), "unknown_symbols": self.unknown[:20], "ticks": self.ticks,
                "rejected": dict(self.rejected),
                # None until the first frame: "no tick received yet", not the age of the process
                "last_tick_age_s": None if self.first_tick_at is None else round(now - self.last_any, 3),
                "stalest": [[s, round(a, 3)] for a, s in ages[:5]], "fed_by": self.fed_by(),
                "clock_offset_s": self.clock_offset()}

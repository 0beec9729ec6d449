"""The hot path: every ticker ccxt stores -> normalise, validate, never older -> the writer.

ccxt's multi-symbol watches lose wake-ups under load (ccxt issue 30220): a `watch_tickers` loop
wakes far less often than frames arrive. So we do not consume what the watch call returns.
Instead `exchange.tickers` is replaced by a dict subclass whose `__setitem__` hands every parsed
ticker to `on_ticker` the moment ccxt stores it (all ccxt.pro ticker handlers store with
`self.tickers[symbol] = parsed`). The intake also owns the wanted-symbol set and what it knows of
each symbol's freshness (newest accepted exchange time, last arrival).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from loguru import logger

from fullon_ticker_service.config import ExchangeSettings
from fullon_ticker_service.tick import MALFORMED, OLDER, normalise, validate
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
        self.last_time: dict[str, float] = {}  # newest accepted tick time per symbol
        self.last_seen: dict[str, float] = {}  # monotonic arrival per symbol (any ticker)
        self.last_any = time.monotonic()
        self.ticks = 0
        self.rejected: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._last_reject_log = 0.0
        self._sinks: list[TickerSink] = []

    def hook(self, exchange: Any) -> None:
        """From now on every ticker ccxt stores on `exchange` comes through `on_ticker`."""
        sink = TickerSink(self.on_ticker, exchange.tickers)
        exchange.tickers = sink
        self._sinks.append(sink)

    def close(self) -> None:
        """Take no more ticks: frames ccxt still parses (until its sockets close) are dropped, not
        buffered, so nothing is accepted after the final flush."""
        for sink in self._sinks:
            sink.on_set = _drop

    # --- the hot path -----------------------------------------------------------------------
    def on_ticker(self, symbol: str, ticker: Any) -> None:
        """Called synchronously from ccxt's parser for every ticker it stores."""
        mono = time.monotonic()
        self.last_any = mono
        if symbol not in self.wanted:
            return
        self.last_seen[symbol] = mono
        now = time.time()
        try:
            tick = normalise(self.name, ticker, now)
            reason = validate(tick, now, self.cfg.max_skew)
        except Exception:  # never let our code break ccxt's message handler
            reason, tick = MALFORMED, None
        if reason is None and tick is not None and tick["time"] < self.last_time.get(symbol, 0.0):
            reason = OLDER
        if reason is not None:
            self.reject(symbol, reason)
            return
        self.last_time[symbol] = tick["time"]  # type: ignore[index]
        self.ticks += 1
        self.writer.put(symbol, tick)  # type: ignore[arg-type]

    def reject(self, symbol: str, reason: str) -> None:
        self.rejected[reason] += 1
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
        now = time.monotonic()
        for s in added:
            self.last_seen.setdefault(s, now)
        for s in removed:
            self.last_seen.pop(s, None)
            self.last_time.pop(s, None)
        return added, removed

    def silent(self, now: float, limit: float) -> list[str]:
        """Wanted symbols that have not ticked for `limit` seconds (monotonic `now`)."""
        return [s for s in self.wanted if now - self.last_seen.get(s, now) >= limit]

    def snapshot(self, now: float) -> dict[str, Any]:
        """The intake's part of the health record (monotonic `now`)."""
        ages = sorted(((now - self.last_seen.get(s, now), s) for s in self.wanted), reverse=True)
        return {"symbols": len(self.wanted), "unknown_symbols": self.unknown[:20], "ticks": self.ticks,
                "rejected": dict(self.rejected), "last_tick_age_s": round(now - self.last_any, 3),
                "stalest": [[s, round(a, 3)] for a, s in ages[:5]]}

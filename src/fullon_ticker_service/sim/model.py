"""The simulated market: one random-walk quote per symbol (pure, seeded, deterministic)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Quote:
    """One ticker update as the simulator sends it. Prices are kept on a 1e-8 grid."""

    symbol: str  # unified ccxt symbol
    last: float
    bid: float
    ask: float
    open: float  # 24h open: change = last - open
    high: float
    low: float
    volume: float  # base volume, 24h
    ts_ms: int  # the exchange timestamp carried in the frame (ms since epoch)
    seq: int  # per-symbol sequence number (ids, checksums)

    @property
    def quote_volume(self) -> float:
        return round(self.volume * self.last, 8)

    @property
    def change(self) -> float:
        return round(self.last - self.open, 8)

    @property
    def percentage(self) -> float:
        return round((self.last - self.open) / self.open * 100, 4)

    @property
    def mid(self) -> float:
        return round((self.bid + self.ask) / 2, 8)


# Faults applied to a quote before it is encoded (the venue encodes whatever it is given).
BAD_KINDS = ("nan", "negative", "crossed", "zero", "older")


def spoil(q: Quote, kind: str) -> Quote:
    """A quote with one defect the worker must reject (kind from BAD_KINDS)."""
    if kind == "nan":
        return replace(q, last=math.nan)
    if kind == "negative":
        return replace(q, last=-q.last, bid=-q.bid, ask=-q.ask)
    if kind == "zero":
        return replace(q, last=0.0, bid=0.0, ask=0.0)
    if kind == "crossed":
        return replace(q, bid=round(q.ask * 1.01, 8))
    if kind == "older":
        # a fresh-looking price carrying a timestamp one minute in the past
        return replace(q, last=round(q.last * 1.05, 8), bid=round(q.bid * 1.05, 8),
                       ask=round(q.ask * 1.05, 8), ts_ms=q.ts_ms - 60_000)
    raise ValueError(f"unknown bad-value kind {kind!r} (known: {', '.join(BAD_KINDS)})")


class Walk:
    """Per-symbol geometric random walk with bid < last < ask; reproducible from `seed`."""

    def __init__(self, symbols: list[str], seed: int = 1) -> None:
        self._rng = random.Random(seed)
        self.quotes: dict[str, Quote] = {}
        for i, sym in enumerate(symbols):
            price = round(10 ** self._rng.uniform(-1, 4.5), 8 if i else 2)
            self.quotes[sym] = Quote(sym, price, round(price * 0.9999, 8), round(price * 1.0001, 8),
                                     price, price, price, round(self._rng.uniform(1e3, 1e6), 4), 0, 0)

    def step(self, symbol: str, ts_ms: int) -> Quote:
        q = self.quotes[symbol]
        last = round(q.last * math.exp(self._rng.gauss(0, 0.0005)), 8)
        spread = last * self._rng.uniform(0.00002, 0.0005)
        bid = round(last - spread * self._rng.uniform(0.1, 1.0), 8)
        ask = round(last + spread * self._rng.uniform(0.1, 1.0), 8)
        if not bid < last < ask:  # tiny prices can round onto the last price
            gap = max(last * 0.0001, 1e-8)
            bid, ask = round(last - gap, 8), round(last + gap, 8)
        ts = max(ts_ms, q.ts_ms)  # never step backwards, even if the wall clock does
        nq = Quote(symbol, last, bid, ask, q.open, max(q.high, last), min(q.low, last),
                   round(q.volume + self._rng.uniform(0, 5), 4), ts, q.seq + 1)
        self.quotes[symbol] = nq
        return nq

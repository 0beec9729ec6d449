"""The simulated market: one random-walk quote per symbol (pure, seeded, deterministic).

Prices start near the real level of their base (a fixed table for known coins, a log-uniform
spread below ~30 for synthetic ones, chosen from the base name so every venue agrees) and
walk in small steps (about a basis point a tick) on a tick grid of six significant digits,
with a spread of a few basis points. Every price sits on the symbol's tick grid, every value on
the 1e-8 grid the venues print.
"""

from __future__ import annotations

import math
import random
import zlib
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


# Reference prices in USD (a recent, plausible level; what matters is the order of magnitude).
REF_PRICES: dict[str, float] = {
    "BTC": 67_250.0, "ETH": 3_480.0, "SOL": 152.4, "XRP": 0.5850, "ADA": 0.4520, "DOGE": 0.14830,
    "LTC": 82.40, "DOT": 6.950, "LINK": 14.620, "AVAX": 34.20, "TRX": 0.12140, "ATOM": 8.710,
    "BNB": 585.0, "BCH": 410.5, "XLM": 0.10820, "ETC": 26.10, "EOS": 0.7150, "SUI": 1.0520,
    "NEAR": 5.410, "APT": 8.820, "UNI": 7.950, "FIL": 5.120, "XMR": 165.3, "SHIB": 0.00001812,
    "PEPE": 0.00001105, "TON": 6.840, "MATIC": 0.5620, "ARB": 0.8150, "OP": 1.7800,
}
STABLES = frozenset({"USD", "USDT", "USDC", "BUSD", "DAI", "FDUSD", "TUSD", "USDE"})
MAJORS = frozenset({"BTC", "ETH"})
# synthetic bases: 10**U(SYNTH_LOG10) USD, i.e. 0.0001 .. ~30, three in four below 1
SYNTH_LOG10 = (-4.0, 1.5)


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a unified symbol: BTC/USDT, BTC/USDT:USDT, BTC/USD:BTC-271231."""
    base, _, rest = symbol.partition("/")
    return base, rest.partition(":")[0]


def _unit(name: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by `name` (stable across runs and Python versions)."""
    return zlib.crc32(f"{salt}{name}".encode()) / 2**32


def ref_price(currency: str) -> float:
    """The USD level a currency starts near (stablecoins 1, known coins the table, others synthetic)."""
    if currency in STABLES:
        return 1.0
    if currency in REF_PRICES:
        return REF_PRICES[currency]
    lo, hi = SYNTH_LOG10
    return float(f"{10 ** (lo + (hi - lo) * _unit(currency)):.4g}")


def start_price(base: str, quote: str) -> float:
    """Where `base/quote` starts: the base's USD level over the quote's (1 for stablecoins)."""
    return ref_price(base) / ref_price(quote)


def tick_size(price: float) -> float:
    """The price grid of a market trading near `price`: six significant digits, at least 1e-8."""
    if not price > 0 or not math.isfinite(price):
        return 1e-8
    return 10.0 ** max(-8, math.floor(math.log10(price)) - 5)


def _decimals(tick: float) -> int:
    return max(0, -math.floor(math.log10(tick) + 1e-9))


def _on_grid(x: float, tick: float) -> float:
    return round(round(x / tick) * tick, _decimals(tick))


def _volume(v: float) -> float:
    """A base volume rounded to 4 decimals, fewer when large (keeps 15 significant digits)."""
    digits = len(str(int(v))) if v >= 1 else 0
    return round(v, max(0, min(4, 14 - digits)))


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
    """Per-symbol geometric random walk on a tick grid with bid < last < ask; reproducible from `seed`.

    Each step moves `last` by a normal log-return (1 bp for BTC/ETH, 1.5 bp for other known
    coins, 2.5 bp for synthetic ones) and quotes bid/ask 0.5-2.5 bp either side (at least one
    tick), so the spread is a few basis points. The base volume grows by one trade of a few
    hundred dollars per step.
    """

    def __init__(self, symbols: list[str], seed: int = 1) -> None:
        self._rng = random.Random(seed)
        self.quotes: dict[str, Quote] = {}
        self.ticks: dict[str, float] = {}
        self._sigma: dict[str, float] = {}
        for sym in symbols:
            base, quote = split_symbol(sym)
            ref = start_price(base, quote)
            tick = self.ticks[sym] = tick_size(ref)
            known = base in REF_PRICES
            self._sigma[sym] = 1e-4 if base in MAJORS else 1.5e-4 if known else 2.5e-4
            # venues and markets of one coin differ by a few bps, as their books do
            price = max(_on_grid(ref * math.exp(self._rng.gauss(0, 0.001)), tick), 3 * tick)
            gap = max(tick, _on_grid(price * 1e-4, tick))
            usd_volume = 10 ** self._rng.uniform(8.5, 9.7) if known else 10 ** self._rng.uniform(5.0, 7.5)
            volume = _volume(usd_volume / (price * ref_price(quote)))
            self.quotes[sym] = Quote(sym, price, _on_grid(price - gap, tick), _on_grid(price + gap, tick),
                                     price, price, price, volume, 0, 0)

    def step(self, symbol: str, ts_ms: int) -> Quote:
        q = self.quotes[symbol]
        rng = self._rng
        tick = min(self.ticks[symbol], tick_size(q.last))  # a price far below its start: finer grid
        last = _on_grid(q.last * math.exp(rng.gauss(0, self._sigma[symbol])), tick)
        last = max(last, 3 * tick)
        bid = _on_grid(last * (1 - rng.uniform(0.5e-4, 2.5e-4)), tick)
        ask = _on_grid(last * (1 + rng.uniform(0.5e-4, 2.5e-4)), tick)
        if not bid < last:
            bid = _on_grid(last - tick, tick)
        if not ask > last:
            ask = _on_grid(last + tick, tick)
        trade = rng.uniform(20, 800) / (last * ref_price(split_symbol(symbol)[1]))  # base units
        ts = max(ts_ms, q.ts_ms)  # never step backwards, even if the wall clock does
        nq = Quote(symbol, last, bid, ask, q.open, max(q.high, last), min(q.low, last),
                   _volume(q.volume + trade), ts, q.seq + 1)
        self.quotes[symbol] = nq
        return nq

"""A ccxt ticker -> the fullon tick (pure): normalise, then validate.

The fullon tick (fullon_orm `Tick.to_dict()`) is the JSON stored in `tickers:{exchange}`:
symbol, exchange, price, volume, time (epoch seconds), bid, ask, last, change, percentage.
We add `time_source`: "exchange" when the exchange stamped the ticker, "received" when it
did not (Kraken v2, Gate spot, Hyperliquid, Binance bookTicker...) and we used arrival time.
"""

from __future__ import annotations

import math
from typing import Any

Tick = dict[str, Any]

# Rejection reasons, also the keys of the per-reason counters in the health record.
NO_PRICE = "no_price"
NOT_FINITE = "not_finite"
NOT_POSITIVE = "not_positive"
CROSSED = "crossed"
FUTURE = "future"
OLDER = "older"
BAD_VOLUME = "bad_volume"
MALFORMED = "malformed"
REASONS = (NO_PRICE, NOT_FINITE, NOT_POSITIVE, CROSSED, FUTURE, OLDER, BAD_VOLUME, MALFORMED)


def _num(value: Any) -> float | None:
    """ccxt gives floats or None; anything else (str, bool) is treated as a number or NaN."""
    if value is None:
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _optional(value: Any) -> float | None:
    """Informational fields: a non-finite value becomes null rather than rejecting the tick."""
    out = _num(value)
    return out if out is None or math.isfinite(out) else None


def normalise(exchange: str, ticker: dict[str, Any], received: float) -> Tick:
    """Map a ccxt unified ticker to the fullon tick. `received` is the arrival time (epoch s)."""
    bid = _num(ticker.get("bid"))
    ask = _num(ticker.get("ask"))
    last = _num(ticker.get("last"))
    price = last
    if price is None:
        price = _num(ticker.get("close"))
    if price is None and bid is not None and ask is not None:
        price = (bid + ask) / 2
    stamp = ticker.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and stamp > 0:
        when, source = stamp / 1000.0, "exchange"
    else:
        when, source = received, "received"
    volume = _num(ticker.get("baseVolume"))
    return {
        "symbol": ticker.get("symbol"),
        "exchange": exchange,
        "price": price,
        "volume": 0.0 if volume is None else volume,
        "time": when,
        "bid": bid,
        "ask": ask,
        "last": last,
        "change": _optional(ticker.get("change")),
        "percentage": _optional(ticker.get("percentage")),
        "time_source": source,
    }


def validate(tick: Tick, now: float, max_skew: float) -> str | None:
    """Return None when the tick may be stored, else the rejection reason.

    A crossed quote (bid > ask) is rejected: no consumer can act on it and it is the classic
    symptom of a half-applied update. bid == ask is accepted (locked markets exist).
    """
    price = tick["price"]
    if price is None:
        return NO_PRICE
    for key in ("price", "bid", "ask", "last"):
        value = tick[key]
        if value is None:
            continue
        if not math.isfinite(value):
            return NOT_FINITE
        if value <= 0:
            return NOT_POSITIVE
    volume = tick["volume"]
    if not math.isfinite(volume) or volume < 0:
        return BAD_VOLUME
    bid, ask = tick["bid"], tick["ask"]
    if bid is not None and ask is not None and bid > ask:
        return CROSSED
    if tick["time"] > now + max_skew:
        return FUTURE
    return None

"""ccxt tickers and bid/ask quotes -> the fullon tick (pure): normalise, validate, merge.

The fullon tick (fullon_orm `Tick.to_dict()`) is the JSON stored in `tickers:{exchange}`:
exactly symbol, exchange, price, volume, time (epoch seconds), bid, ask, last, change,
percentage (`FULLON_FIELDS`; fullon reads it with `Tick.from_dict`, so nothing else goes in).

A symbol can be fed by two streams: the ticker stream (`exchange.tickers`: last, volume, change)
and the best bid/ask stream (`exchange.bidsasks`: bookTicker, bbo, ticker_lite...). Each keeps its
own never-older rule; `merge` makes one fullon tick of the latest of each: last/volume/change from
the ticker, bid/ask from whichever stream is newer, price = last, else close, else mid.
Internally a tick also says where its time came from (`time_source`: "exchange", or "received"
when the exchange gave none and arrival time was used) and keeps `close`; neither is stored.
"""

from __future__ import annotations

import math
from typing import Any

Tick = dict[str, Any]
FULLON_FIELDS = ("symbol", "exchange", "price", "volume", "time", "bid", "ask", "last", "change", "percentage")

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
    when, source = _when(ticker, received)
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
        "close": _num(ticker.get("close")),
    }


def _when(ticker: dict[str, Any], received: float) -> tuple[float, str]:
    stamp = ticker.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and stamp > 0:
        return stamp / 1000.0, "exchange"
    return received, "received"


def quote(ticker: dict[str, Any], received: float) -> Tick:
    """A bid/ask stream update (ccxt's `bidsasks` entry) -> {time, bid, ask, time_source}."""
    when, source = _when(ticker, received)
    return {"time": when, "bid": _num(ticker.get("bid")), "ask": _num(ticker.get("ask")), "time_source": source}


def validate_quote(q: Tick, now: float, max_skew: float) -> str | None:
    """None when the bid/ask update may be used, else the rejection reason (as `validate`)."""
    if q["bid"] is None and q["ask"] is None:
        return NO_PRICE
    return _prices((q["bid"], q["ask"])) or _book_and_clock(q, now, max_skew)


def merge(exchange: str, symbol: str, t: Tick | None, q: Tick | None) -> Tick:
    """One fullon tick (exactly FULLON_FIELDS) from the latest ticker `t` and bid/ask quote `q` of a
    symbol (either may be None, not both). bid/ask come as a pair from the newer stream (the quote
    when the ticker carries neither); time is the newer of the two, so it never goes backwards."""
    if t is None:
        assert q is not None
        bid, ask, when = q["bid"], q["ask"], q["time"]
        return {"symbol": symbol, "exchange": exchange, "price": _mid(bid, ask), "volume": 0.0, "time": when,
                "bid": bid, "ask": ask, "last": None, "change": None, "percentage": None}
    bid, ask, when = t["bid"], t["ask"], t["time"]
    if q is not None and (q["time"] >= when or (bid is None and ask is None)):
        bid, ask = q["bid"], q["ask"]
    if q is not None and q["time"] > when:
        when = q["time"]
    price = t["last"] if t["last"] is not None else t["close"]
    if price is None:
        price = _mid(bid, ask)
    return {"symbol": symbol, "exchange": exchange, "price": price, "volume": t["volume"], "time": when,
            "bid": bid, "ask": ask, "last": t["last"], "change": t["change"], "percentage": t["percentage"]}


def _mid(bid: float | None, ask: float | None) -> float | None:
    """The mid price, or None for a one-sided quote (no price is invented)."""
    return (bid + ask) / 2 if bid is not None and ask is not None else None


def validate(tick: Tick, now: float, max_skew: float) -> str | None:
    """Return None when the tick may be stored, else the rejection reason.

    A crossed quote (bid > ask) is rejected: no consumer can act on it and it is the classic
    symptom of a half-applied update. bid == ask is accepted (locked markets exist).
    """
    if tick["price"] is None:
        return NO_PRICE
    reason = _prices((tick["price"], tick["bid"], tick["ask"], tick["last"]))
    if reason:
        return reason
    volume = tick["volume"]
    if not math.isfinite(volume) or volume < 0:
        return BAD_VOLUME
    return _book_and_clock(tick, now, max_skew)


def _prices(values: tuple[float | None, ...]) -> str | None:
    """Every price given must be a finite positive number."""
    for value in values:
        if value is None:
            continue
        if not math.isfinite(value):
            return NOT_FINITE
        if value <= 0:
            return NOT_POSITIVE
    return None


def _book_and_clock(x: Tick, now: float, max_skew: float) -> str | None:
    """Not crossed, and not from the future (beyond the accepted clock skew)."""
    bid, ask = x["bid"], x["ask"]
    if bid is not None and ask is not None and bid > ask:
        return CROSSED
    if x["time"] > now + max_skew:
        return FUTURE
    return None

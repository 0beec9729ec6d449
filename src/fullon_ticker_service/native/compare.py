"""Field-by-field comparison of a decoded ticker with the one ccxt stored (tests, shadow checks)."""

from __future__ import annotations

import math
from typing import Any

# The fields `fullon_ticker_service.tick.normalise()` reads.
USED_FIELDS = ("symbol", "timestamp", "last", "close", "bid", "ask", "baseVolume", "change",
               "percentage")


def same(a: Any, b: Any) -> bool:
    """Exact equality that also tells None from 0, int from float and True from 1; NaN == NaN."""
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return False
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def diff(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    """(mismatches, omitted): `mismatches` lists (field, ours, ccxt's) for every field both have
    that differs, plus every field we have and ccxt has not; `omitted` lists the fields ccxt has
    and we left out by design (e.g. `datetime`, Bybit bid/ask `info`)."""
    if ours is None or theirs is None:
        if ours is theirs:
            return [], []
        return [("<ticker>", ours, theirs)], []
    mismatches = []
    for k, v in ours.items():
        if k not in theirs:
            mismatches.append((k, v, "<absent>"))
        elif not same(v, theirs[k]):
            mismatches.append((k, v, theirs[k]))
    omitted = [k for k in theirs if k not in ours]
    return mismatches, omitted

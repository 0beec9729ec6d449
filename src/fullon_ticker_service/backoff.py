"""Reconnect/restart delays: capped exponential backoff with full jitter (pure)."""

from __future__ import annotations

import random


def delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1-based): uniform in [base/2, min(cap, base*2**(n-1))].

    Half-jitter keeps a floor (no hot loop even on an unlucky draw) while spreading reconnects
    of many workers that lost the same exchange at the same moment.
    """
    if attempt <= 0 or base <= 0:
        return 0.0
    ceiling = min(cap, base * 2 ** min(attempt - 1, 30))
    floor = min(base / 2, ceiling)
    return (rng or random).uniform(floor, ceiling)

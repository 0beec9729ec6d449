"""backoff.delay: capped exponential backoff with half jitter."""

from __future__ import annotations

import random

import pytest

from fullon_ticker_service.backoff import delay

DRAWS = 400


@pytest.mark.parametrize(("attempt", "base", "cap"), [(0, 1.0, 60.0), (-3, 1.0, 60.0), (5, 0.0, 60.0),
                                                      (2, -1.0, 60.0)],
                         ids=["attempt-0", "negative-attempt", "zero-base", "negative-base"])
def test_no_delay(attempt: int, base: float, cap: float) -> None:
    """Attempt 0 (or a non-positive base) means retry at once: delay 0."""
    assert delay(attempt, base, cap, random.Random(1)) == 0.0


@pytest.mark.parametrize(("attempt", "base", "cap", "low", "high"), [
    (1, 1.0, 60.0, 0.5, 1.0),
    (2, 1.0, 60.0, 0.5, 2.0),
    (3, 1.0, 60.0, 0.5, 4.0),
    (6, 1.0, 60.0, 0.5, 32.0),
    (7, 1.0, 60.0, 0.5, 60.0),  # 64 capped to 60
    (50, 1.0, 60.0, 0.5, 60.0),  # huge exponent still capped
    (4, 5.0, 30.0, 2.5, 30.0),  # 40 capped to 30
    (1, 5.0, 2.0, 2.0, 2.0),  # cap below base/2: floor is the cap
], ids=["n1", "n2", "n3", "n6", "n7-capped", "n50-capped", "base5-capped", "cap-below-floor"])
def test_delay_bounds(attempt: int, base: float, cap: float, low: float, high: float) -> None:
    """Every draw lies in [base/2, min(cap, base*2**(n-1))], and draws spread over that range."""
    rng = random.Random(attempt * 1000 + int(base))
    draws = [delay(attempt, base, cap, rng) for _ in range(DRAWS)]
    assert min(draws) >= low and max(draws) <= high
    if high > low:
        width = high - low
        assert min(draws) < low + 0.1 * width and max(draws) > high - 0.1 * width


def test_delay_grows_with_attempts_until_cap() -> None:
    """The largest delay seen at attempt n exceeds the ceiling of attempt n-1 until the cap is reached."""
    rng = random.Random(7)
    highest = [max(delay(n, 1.0, 20.0, rng) for _ in range(DRAWS)) for n in range(1, 8)]
    ceilings = [min(20.0, 2 ** (n - 1)) for n in range(1, 8)]  # 1 2 4 8 16 20 20
    for n in range(1, 5):  # attempts 2..5: strictly above the previous ceiling
        assert highest[n] > ceilings[n - 1], (n + 1, highest)
    assert all(h <= 20.0 for h in highest)
    assert highest[6] > 16.0


def test_delay_deterministic_with_seed() -> None:
    """Two generators with the same seed give the same delays; another seed gives others."""
    a = [delay(n, 2.0, 60.0, random.Random(42)) for n in range(1, 10)]
    b = [delay(n, 2.0, 60.0, random.Random(42)) for n in range(1, 10)]
    c = [delay(n, 2.0, 60.0, random.Random(43)) for n in range(1, 10)]
    assert a == b
    assert a != c


def test_delay_without_rng_uses_module_random() -> None:
    """Without an rng the module-level random is used, within the same bounds."""
    random.seed(5)
    first = delay(3, 1.0, 60.0)
    random.seed(5)
    assert delay(3, 1.0, 60.0) == first
    assert 0.5 <= first <= 4.0

"""sim/model.py: the simulator's random walk and its fault injection."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fullon_ticker_service import tick
from fullon_ticker_service.sim.model import BAD_KINDS, Quote, Walk, spoil

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "S0003/USDT"]
T0 = 1_763_700_000_000


def _run(seed: int, steps: int = 300) -> list[Quote]:
    walk = Walk(SYMBOLS, seed=seed)
    return [walk.step(SYMBOLS[i % len(SYMBOLS)], T0 + i * 10) for i in range(steps)]


def test_initial_quotes_are_ordered() -> None:
    """Every symbol starts with bid < last < ask, positive prices and a positive volume."""
    walk = Walk(SYMBOLS, seed=3)
    assert set(walk.quotes) == set(SYMBOLS)
    for q in walk.quotes.values():
        assert 0 < q.bid < q.last < q.ask
        assert q.volume > 0 and q.seq == 0 and q.ts_ms == 0


@pytest.mark.parametrize("seed", [1, 2, 99])
def test_step_keeps_bid_below_last_below_ask(seed: int) -> None:
    """Each step keeps 0 < bid < last < ask on the 1e-8 grid, high/low bracket last, volume never falls."""
    walk = Walk(SYMBOLS, seed=seed)
    for i in range(2000):
        sym = SYMBOLS[i % len(SYMBOLS)]
        before = walk.quotes[sym]
        q = walk.step(sym, T0 + i)
        assert 0 < q.bid < q.last < q.ask, q
        for price in (q.bid, q.last, q.ask):
            assert round(price, 8) == price
        assert q.low <= q.last <= q.high and q.open == before.open
        assert q.volume >= before.volume
        assert q.seq == before.seq + 1
        assert walk.quotes[sym] is q


def test_step_moves_the_price() -> None:
    """Steps change the last price (the walk is not constant)."""
    quotes = [q for q in _run(seed=1) if q.symbol == "ETH/USDT"]
    assert len({q.last for q in quotes}) > len(quotes) // 2


def test_timestamps_never_go_backwards() -> None:
    """A step with an older wall-clock time keeps the previous timestamp instead of going back."""
    walk = Walk(["BTC/USDT"], seed=1)
    stamps = [walk.step("BTC/USDT", t).ts_ms for t in (T0, T0 + 50, T0 + 20, T0 - 1_000, T0 + 60)]
    assert stamps == [T0, T0 + 50, T0 + 50, T0 + 50, T0 + 60]


def test_walk_is_deterministic_for_a_seed() -> None:
    """The same seed gives the same quotes; another seed gives different ones."""
    assert _run(seed=5) == _run(seed=5)
    assert Walk(SYMBOLS, seed=5).quotes == Walk(SYMBOLS, seed=5).quotes
    assert _run(seed=5) != _run(seed=6)


def test_step_keeps_order_for_tiny_prices() -> None:
    """Even a price of a few 1e-8 keeps bid < last < ask (the fallback the step has for tiny prices)."""
    walk = Walk(["PEPE/USDT"], seed=1)
    q = walk.quotes["PEPE/USDT"]
    walk.quotes["PEPE/USDT"] = replace(q, last=1e-6, bid=9.9e-7, ask=1.01e-6, open=1e-6, high=1e-6, low=1e-6)
    for i in range(50):
        q = walk.step("PEPE/USDT", T0 + i)
        assert 0 < q.bid < q.last < q.ask, q


def test_quote_derived_fields() -> None:
    """change, percentage, mid and quote_volume are computed from the quote's own prices."""
    q = Quote("BTC/USDT", last=110.0, bid=109.0, ask=111.5, open=100.0, high=112.0, low=99.0, volume=2.5,
              ts_ms=T0, seq=1)
    assert (q.change, q.percentage, q.mid, q.quote_volume) == (10.0, 10.0, 110.25, 275.0)


# --- spoil -----------------------------------------------------------------------------------

def _good() -> Quote:
    return Walk(["BTC/USDT"], seed=4).step("BTC/USDT", T0)


def test_spoil_nan() -> None:
    """`nan` replaces only the last price with NaN."""
    q = _good()
    bad = spoil(q, "nan")
    assert math.isnan(bad.last) and (bad.bid, bad.ask, bad.ts_ms) == (q.bid, q.ask, q.ts_ms)


def test_spoil_negative() -> None:
    """`negative` flips the sign of last, bid and ask."""
    q = _good()
    bad = spoil(q, "negative")
    assert (bad.last, bad.bid, bad.ask) == (-q.last, -q.bid, -q.ask)


def test_spoil_zero() -> None:
    """`zero` sets last, bid and ask to 0."""
    bad = spoil(_good(), "zero")
    assert (bad.last, bad.bid, bad.ask) == (0.0, 0.0, 0.0)


def test_spoil_crossed() -> None:
    """`crossed` puts the bid above the ask."""
    q = _good()
    bad = spoil(q, "crossed")
    assert bad.bid > bad.ask == q.ask and bad.last == q.last


def test_spoil_older() -> None:
    """`older` carries a timestamp one minute back with fresh-looking, still ordered prices."""
    q = _good()
    bad = spoil(q, "older")
    assert bad.ts_ms == q.ts_ms - 60_000
    assert bad.last == pytest.approx(q.last * 1.05) and bad.bid < bad.last < bad.ask


def test_spoil_unknown_kind() -> None:
    """An unknown kind raises ValueError naming it and the known kinds."""
    with pytest.raises(ValueError, match=r"unknown bad-value kind 'huge' \(known: nan, negative"):
        spoil(_good(), "huge")


@pytest.mark.parametrize(("kind", "reason"), [("nan", "not_finite"), ("negative", "not_positive"),
                                              ("zero", "not_positive"), ("crossed", "crossed"), ("older", None)])
def test_spoiled_quote_is_rejected_by_validate(kind: str, reason: str | None) -> None:
    """Each defect is caught by tick.validate with its reason (`older` is left to the worker's order check)."""
    assert set(BAD_KINDS) == {"nan", "negative", "zero", "crossed", "older"}
    q = spoil(_good(), kind)
    ticker = {"symbol": q.symbol, "timestamp": q.ts_ms, "last": q.last, "bid": q.bid, "ask": q.ask,
              "baseVolume": q.volume, "change": q.change, "percentage": q.percentage}
    t = tick.normalise("binance", ticker, received=q.ts_ms / 1000)
    assert tick.validate(t, now=q.ts_ms / 1000, max_skew=10.0) == reason


# --- realistic levels ------------------------------------------------------------------------

def test_known_bases_start_near_their_real_level() -> None:
    """BTC in the tens of thousands, ETH a few thousand, SOL in the hundreds, XRP/ADA/DOGE below a
    few dollars; stablecoin quotes are 1:1 and a crypto quote divides (ETH/BTC)."""
    from fullon_ticker_service.sim.model import start_price

    walk = Walk(["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USD", "DOGE/USDC:USDC", "ETH/BTC",
                 "BTC/USD:BTC-281229"], seed=1)
    last = {s: q.last for s, q in walk.quotes.items()}
    assert 10_000 < last["BTC/USDT"] < 100_000 and 10_000 < last["BTC/USD:BTC-281229"] < 100_000
    assert 1_000 < last["ETH/USDT"] < 10_000
    assert 50 < last["SOL/USDT"] < 1_000
    assert all(0.01 < last[s] < 5 for s in ("XRP/USDT", "ADA/USD", "DOGE/USDC:USDC"))
    assert 0.01 < last["ETH/BTC"] < 0.2
    assert start_price("BTC", "USDT") == start_price("BTC", "USD")  # every venue starts BTC at one level
    for s, q in walk.quotes.items():  # a seed moves the start by a few bps only
        assert q.last == pytest.approx(start_price(*s.split(":")[0].split("/")), rel=0.01)


def test_synthetic_bases_spread_log_uniformly_mostly_below_one() -> None:
    """Synthetic bases get a fixed price from their name: 1e-4 .. ~30, most of them below 1."""
    from fullon_ticker_service.sim.model import ref_price

    prices = [ref_price(f"S{i:04d}") for i in range(12, 412)]
    assert prices == [ref_price(f"S{i:04d}") for i in range(12, 412)]  # deterministic
    assert all(1e-4 <= p <= 32 for p in prices)
    assert 0.6 < sum(p < 1 for p in prices) / len(prices) < 0.9
    decades = {math.floor(math.log10(p)) for p in prices}
    assert decades == {-4, -3, -2, -1, 0, 1}  # spread over every decade


@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/USDT", "XRP/USDT", "S0013/USDT", "S0015/USDT"])
def test_walk_moves_a_little_on_a_tick_grid_with_a_spread_of_a_few_bps(symbol: str) -> None:
    """Per step last moves by about a basis point (never 1 %); prices stay on the symbol's tick
    grid (six significant digits, >= 1e-8); the spread is a few bps (at least one tick)."""
    from fullon_ticker_service.sim.model import tick_size

    walk = Walk([symbol], seed=7)
    tick = walk.ticks[symbol]
    assert tick == tick_size(walk.quotes[symbol].last) >= 1e-8
    prev = walk.quotes[symbol]
    moves, spreads = [], []
    for i in range(3000):
        q = walk.step(symbol, T0 + i)
        for price in (q.last, q.bid, q.ask):
            assert abs(price / tick - round(price / tick)) < 1e-6, (price, tick)
        moves.append(abs(math.log(q.last / prev.last)))
        spreads.append((q.ask - q.bid) / q.last)
        assert q.ask - q.bid >= tick * 0.999
        prev = q
    assert max(moves) < 0.003 and 1e-5 < sum(moves) / len(moves) < 5e-4
    median_spread = sorted(spreads)[len(spreads) // 2]
    assert 1e-4 <= median_spread <= 8e-4, median_spread  # 1..8 bps
    assert abs(math.log(q.last / walk.quotes[symbol].open)) < 0.1  # a session drifts by percents, not more


def test_tick_size() -> None:
    """Six significant digits, never below 1e-8."""
    from fullon_ticker_service.sim.model import tick_size

    assert [tick_size(p) for p in (67_250.0, 3_480.0, 152.4, 0.585, 0.0002738, 1e-5)] == \
        [0.1, 0.01, 0.001, 1e-6, 1e-8, 1e-8]

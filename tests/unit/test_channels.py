"""channels.plan_for / chunked: which ccxt method, params and chunk size per exchange."""

from __future__ import annotations

from typing import Any

import pytest

from fullon_ticker_service.channels import PLANS, Plan, chunked, plan_for

HAS_BOTH = {"watchTickers": True, "watchTicker": True, "unWatchTickers": True}

PLAN_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], Plan]] = [
    ("binance", "binance", {}, {}, Plan("watch_tickers", {"name": "ticker"}, 100, True)),
    ("binanceusdm", "binanceusdm", {}, {}, Plan("watch_tickers", {"name": "ticker"}, 100, True)),
    ("okx", "okx", {}, {}, Plan("watch_tickers", {}, 50, True)),
    ("bybit", "bybit", {}, {}, Plan("watch_tickers", {}, 10, True)),
    ("kraken", "kraken", {}, {}, Plan("watch_tickers", {}, 50, False)),
    ("hyperliquid", "hyperliquid", {}, {}, Plan("watch_ticker", {}, 1, True)),
    ("coinbase-no-unwatch", "coinbase", {}, {}, Plan("watch_ticker", {}, 1, False)),
    ("table-ignores-has", "binance", {"watchTickers": False}, {}, Plan("watch_tickers", {"name": "ticker"}, 100)),
    ("chunk-override", "binance", {}, {"chunk": 25}, Plan("watch_tickers", {"name": "ticker"}, 25, True)),
    ("channel-override", "binance", {}, {"channel": "miniTicker"},
     Plan("watch_tickers", {"name": "miniTicker"}, 100, True)),
    ("channel-added", "okx", {}, {"channel": "bbo-tbt"}, Plan("watch_tickers", {"name": "bbo-tbt"}, 50, True)),
    ("method-override-forces-chunk-1", "binance", {}, {"method": "watch_ticker", "chunk": 40},
     Plan("watch_ticker", {"name": "ticker"}, 1, True)),
    ("method-watch_tickers-on-coinbase", "coinbase", {}, {"method": "watch_tickers"},
     Plan("watch_tickers", {}, 1, False)),
    ("method-watch_tickers-with-chunk", "hyperliquid", {}, {"method": "watch_tickers", "chunk": 30},
     Plan("watch_tickers", {}, 30, True)),
    ("unknown-with-watchTickers", "gate", HAS_BOTH, {}, Plan("watch_tickers", {}, 50, True)),
    ("unknown-no-unwatch", "gate", {"watchTickers": True}, {}, Plan("watch_tickers", {}, 50, False)),
    ("unknown-only-watchTicker", "bitfinex", {"watchTicker": True, "watchTickers": False}, {},
     Plan("watch_ticker", {}, 1, False)),
    ("unknown-empty-has", "foo", {}, {}, Plan("watch_ticker", {}, 1, False)),
    ("unknown-chunk-override", "gate", HAS_BOTH, {"chunk": 5}, Plan("watch_tickers", {}, 5, True)),
]


@pytest.mark.parametrize(("ccxt_id", "has", "overrides", "expected"), [c[1:] for c in PLAN_CASES],
                         ids=[c[0] for c in PLAN_CASES])
def test_plan_for(ccxt_id: str, has: dict[str, Any], overrides: dict[str, Any], expected: Plan) -> None:
    """plan_for uses the per-exchange table, config overrides, and `has` flags for unknown exchanges."""
    assert plan_for(ccxt_id, has, **overrides) == expected


def test_plan_for_does_not_mutate_table() -> None:
    """A channel override returns new params and leaves the shared PLANS table untouched."""
    plan = plan_for("binance", {}, channel="bookTicker")
    plan.params["extra"] = 1
    assert PLANS["binance"].params == {"name": "ticker"}
    assert plan_for("binance", {}).params == {"name": "ticker"}


@pytest.mark.parametrize(("n", "size", "expected_sizes"), [
    (0, 10, []),
    (1, 10, [1]),
    (10, 10, [10]),
    (11, 10, [10, 1]),
    (250, 100, [100, 100, 50]),
    (5, 1, [1, 1, 1, 1, 1]),
    (7, 3, [3, 3, 1]),
])
def test_chunked(n: int, size: int, expected_sizes: list[int]) -> None:
    """chunked splits a list into consecutive pieces of `size`, keeping order and every symbol once."""
    symbols = [f"S{i}/USDT" for i in range(n)]
    chunks = chunked(symbols, size)
    assert [len(c) for c in chunks] == expected_sizes
    assert [s for c in chunks for s in c] == symbols


@pytest.mark.parametrize("size", [0, -4])
def test_chunked_non_positive_size_keeps_symbols(size: int) -> None:
    """A size below 1 is treated as 1 (the guard in chunked), so no symbol is lost."""
    symbols = ["A/USDT", "B/USDT", "C/USDT"]
    assert chunked(symbols, size) == [["A/USDT"], ["B/USDT"], ["C/USDT"]]

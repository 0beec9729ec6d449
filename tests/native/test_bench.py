"""Prints the micro-benchmark (tests/native/bench_decode.py) - a measurement, not a timed assertion."""

from __future__ import annotations

import pytest

from tests.native import bench_decode


@pytest.mark.slow
async def test_print_decode_benchmark(capsys):
    rows = await bench_decode.run(quick=True)
    assert {r[1] for r in rows} >= {"24hrTicker", "bookTicker", "tickers", "bbo-tbt", "orderbook.1"}
    with capsys.disabled():
        print("\n" + bench_decode.table(rows))

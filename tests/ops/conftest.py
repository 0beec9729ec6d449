"""Fixtures of the ops tests: the supervisor tests' `procs` (tickerctl as processes) and a small simulator."""

from __future__ import annotations

import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.supervisor.conftest import procs  # noqa: F401  (re-exported fixture)


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=6, rate=30), SimExchange("okx", symbols=6, rate=30)]) as s:
        yield s

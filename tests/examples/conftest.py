"""A real worker writing real simulator tickers into the test's Redis database."""

from __future__ import annotations

import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.worker.helpers import all_match, settings_for, start_worker, stored

VENUE = "binance"


@pytest.fixture
async def live(redis_db):
    """Simulator -> ccxt -> worker process -> Redis, then the feed stops so the cached values
    hold still and the examples' output can be compared with Redis value for value."""
    async with Simulator([SimExchange(VENUE, symbols=6, rate=0)]) as sim:
        proc = start_worker(settings_for(sim, VENUE), VENUE, sim.symbols(VENUE))
        try:
            await eventually(lambda: all_match(redis_db, sim, VENUE), 40, 0.05, "the snapshot in redis")
            sim.set_rate(VENUE, 200, count=60)
            await sim.drained(VENUE)
            await eventually(lambda: all_match(redis_db, sim, VENUE), 15, 0.05, "the burst in redis")
            assert len(await stored(redis_db, VENUE)) == 6
            yield sim
        finally:
            proc.kill()
            proc.join(5)

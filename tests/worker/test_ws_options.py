"""Websocket options reach ccxt through an exchange's `ccxt` table: the permessage-deflate offer that
ccxt 4.5 makes by default (and Binance, like the simulator, accepts) can be turned off, and the
worker then collects as before (README, "Websocket compression")."""

from __future__ import annotations

import dataclasses

import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.worker.helpers import all_match, settings_for, start_worker


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=6, rate=100)]) as s:
        yield s


def negotiated(sim: Simulator) -> set[int]:
    """The deflate window bits each open connection negotiated (0: no compression)."""
    return {conn.ws.compress for conn in sim.exchanges["binance"].conns if not conn.closed}


@pytest.mark.parametrize("ws, compressed", [(None, True), ({"compress": 0}, False)],
                         ids=["ccxt-default", "compress-0"])
async def test_the_deflate_offer_follows_the_ccxt_options(sim, redis_db, ws, compressed):
    ccxt = sim.ccxt_config("binance")
    if ws is not None:
        ccxt = {**ccxt, "options": {**ccxt.get("options", {}), "ws": ws}}
    settings = settings_for(sim, "binance")
    ex = dataclasses.replace(settings.exchanges["binance"], ccxt=ccxt)
    settings = dataclasses.replace(settings, exchanges={"binance": ex})
    proc = start_worker(settings, "binance", sim.symbols("binance"))
    try:
        await eventually(lambda: negotiated(sim), 30, 0.1, "the worker's connections")
        assert all(bool(bits) is compressed for bits in negotiated(sim)), negotiated(sim)
        sim.set_rate("binance", 0)
        await eventually(lambda: all_match(redis_db, sim, "binance"), 15, 0.1, "the last values sent")
    finally:
        proc.kill()
        proc.join(5)

"""The native decoder inside the worker: on by default where one exists, checked against ccxt on a
sample of frames, and switched off for good (until restart) at the first difference."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fullon_ticker_service.config import ExchangeSettings
from fullon_ticker_service.launch import WorkerSpec
from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.worker import Worker
from fullon_ticker_service.worker import exchange as exchanges
from tests.conftest import eventually
from tests.worker.helpers import all_match, health_of, settings_for, start_worker


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=8, rate=200), SimExchange("okx", symbols=8, rate=200),
                          SimExchange("bybit", symbols=8, rate=200)]) as s:
        yield s


@pytest.mark.parametrize("venue", ["binance", "okx", "bybit"])
async def test_a_real_worker_decodes_natively_and_its_shadow_checks_agree(sim, redis_db, venue):
    """decoder "native" by default: frames decoded without ccxt, 1 in 20 also parsed by ccxt and
    compared, no difference, and Redis holds what the simulator sent."""
    proc = start_worker(settings_for(sim, venue, shadow_every=20), venue, sim.symbols(venue))
    try:
        async def checked():
            h = await health_of(redis_db, venue)
            return h and h.get("shadow_checks", 0) >= 5 and h

        h = await eventually(checked, 30, 0.2, "shadow checks done")
        assert h["decoder"] == "native" and h["decoder_frames"] > 50 and h["decoder_mismatches"] == 0, h
        sim.set_rate(venue, 0)
        await eventually(lambda: all_match(redis_db, sim, venue), 10, 0.1, "the last values sent")
    finally:
        proc.kill()
        proc.join(5)


async def test_the_ccxt_decoder_setting_keeps_ccxt_for_every_frame(sim, redis_db):
    proc = start_worker(settings_for(sim, "binance", decoder="ccxt"), "binance", sim.symbols("binance"))
    try:
        h = await eventually(lambda: health_of(redis_db, "binance"), 30, 0.2, "a health record")
        assert h["decoder"] == "ccxt" and "decoder_frames" not in h
        await eventually(lambda: all_match(redis_db, sim, "binance"), 10, 0.1, "values")
    finally:
        proc.kill()
        proc.join(5)


async def test_a_difference_is_said_once_counted_and_ccxt_takes_over(sim, redis_db, caplog):
    """A decoder that gets one field wrong (as a future exchange format change could make it):
    the first shadow check catches it, the worker logs both values in one line, counts it, and from
    then on ccxt parses every frame: values keep arriving, right."""
    settings = settings_for(sim, "binance", shadow_every=1)
    worker = Worker(WorkerSpec("binance", tuple(sim.symbols("binance")), settings))
    cfg: ExchangeSettings = settings.exchange("binance")
    worker.exchange, _ = exchanges.build("binance", cfg)
    await exchanges.load_markets(worker.exchange, cfg, lambda e: None)
    await exchanges.open_loop(worker.exchange)
    worker.intake.hook(worker.exchange)
    worker.intake.set_wanted(set(sim.symbols("binance")), worker.exchange.markets)
    worker.decoder.install(worker.exchange)
    decode = worker.decoder.installed.decoder.decode

    def wrong(msg: Any, client: Any = None) -> Any:  # every last price off by one tick
        out = decode(msg, client)
        return None if out is None else [(s, sym, {**t, "last": (t["last"] or 0) + 0.01}) for s, sym, t in out]

    worker.decoder.installed.decoder.decode = wrong
    try:
        await worker.exchange.watch_tickers(sim.symbols("binance"), {"name": "ticker"})
        await eventually(lambda: worker.decoder.installed is None, 10, 0.05, "the decoder switched off")
        h = worker.decoder.snapshot()
        assert h["decoder"] == "ccxt" and h["decoder_mismatches"] == 1 and "decoder_frames" not in h
        assert "last: ours" in h["decoder_fallback"]
        before = worker.intake.ticks
        await asyncio.sleep(0.5)
        assert worker.intake.ticks > before  # ccxt's parses keep flowing into the intake
        sym = sim.symbols("binance")[0]
        await eventually(lambda: worker.intake.tick_part.get(sym, {}).get("last") == sim.last_good("binance")[sym].last,
                         5, 0.05, "ccxt's (right) value")
    finally:
        worker.exchange.timeout_on_exit = 0
        await worker.exchange.close()
        await worker.redis.aclose()

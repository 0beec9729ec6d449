"""No silent death: the subscription loops of a worker, in-process, with real ccxt.pro and the simulator.

The faults injected here are ones real ccxt produced in the field and the simulator cannot make on
demand: a non-ccxt exception raised from inside a watch call (KuCoin's AttributeError with markets
from a snapshot), and a subscription task that simply ends. Everything else is real: ccxt.pro
connecting to the simulator, the intake's hooks, the watch loops and the watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any

import pytest
import redis.asyncio as aredis

from fullon_ticker_service.channels import BIDASK
from fullon_ticker_service.config import ExchangeSettings
from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.worker import exchange as exchanges
from fullon_ticker_service.worker.intake import Intake
from fullon_ticker_service.worker.ownership import Lease
from fullon_ticker_service.worker.subscriptions import Subscriptions
from fullon_ticker_service.worker.writer import TickWriter
from tests.conftest import eventually


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=6, rate=60)]) as s:
        yield s


@pytest.fixture
async def parts(sim):
    """A real ccxt binance on the simulator, hooked into an intake whose writer holds ticks (no lease)."""
    cfg = ExchangeSettings(ccxt=sim.ccxt_config("binance"), markets=f"{sim.http_url}/binance/markets",
                           reconnect_delay=0.1, reconnect_max_delay=0.2, stale_after=5.0, max_retries=3)
    exchange, streams = exchanges.build("binance", cfg)
    await exchanges.load_markets(exchange, cfg, lambda e: None)
    redis = aredis.Redis(port=1)  # never used: the writer holds ticks until a lease it never gets
    writer = TickWriter(redis, "binance", "tst", Lease(redis, "tst", "binance", "h", 5000))
    intake = Intake("binance", cfg, writer)
    intake.hook(exchange)
    intake.set_wanted(set(sim.symbols("binance")), exchange.markets)
    errors: list[str] = []
    subs = Subscriptions(exchange, streams, cfg, intake, errors.append)
    watchdog = asyncio.create_task(subs.watchdog())
    yield exchange, intake, subs, errors
    watchdog.cancel()
    await asyncio.gather(*subs.close(), watchdog, return_exceptions=True)
    exchange.timeout_on_exit = 0
    await exchange.close()
    await redis.aclose()


def fresh(intake: Intake, since: dict[str, Any]) -> bool:
    """Every symbol got a newer ticker-stream tick than in `since`."""
    return all(s in intake.tick_part and intake.tick_part[s] is not since.get(s) for s in intake.wanted)


async def test_a_non_ccxt_exception_in_a_watch_call_is_logged_counted_and_resubscribed(parts):
    """A TypeError out of watch_tickers (not a ccxt error) used to end the loop silently; now it is
    one error line, counted on that subscription, backed off, and the loop subscribes again."""
    exchange, intake, subs, errors = parts
    real, calls = exchange.watch_tickers, []

    async def flaky(symbols: Any, params: Any = None) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("'NoneType' object is not subscriptable")
        return await real(symbols, params)

    exchange.watch_tickers = flaky
    await subs.add(sorted(intake.wanted))
    await eventually(lambda: fresh(intake, {}), 10, what="every symbol ticking after the failure")
    ticker_sub = next(s for s in subs.subs if s.stream.kind == "ticker")
    assert ticker_sub.errors == 1 and ticker_sub.last_error.startswith("TypeError:")
    assert any(e.startswith("TypeError: 'NoneType'") for e in errors)
    assert ticker_sub.failures_in_row == 0  # reset by the successful resubscribe
    assert not subs.failing


async def test_a_subscription_task_that_ends_is_noticed_and_restarted(parts):
    """A loop that returns or is cancelled from outside (not by our close) is restarted by the
    watchdog within one period, and its symbols tick again."""
    _, intake, subs, errors = parts
    await subs.add(sorted(intake.wanted))
    await eventually(lambda: fresh(intake, {}), 10, what="first ticks")
    ticker_sub = next(s for s in subs.subs if s.stream.kind == "ticker")
    ticker_sub.task.cancel()  # ends, as a task killed by a stray cancellation would
    with contextlib.suppress(asyncio.CancelledError):
        await ticker_sub.task
    before = dict(intake.tick_part)
    await eventually(lambda: subs.restarted == 1, 5, what="the ended loop restarted")
    assert "subscription ended" in errors[-1]
    await eventually(lambda: fresh(intake, before), 10, what="its symbols ticking again")

    bidask_sub = next(s for s in subs.subs if s.stream.kind == "bidask")
    bidask_sub.task.cancel()
    bidask_sub.task = asyncio.create_task(asyncio.sleep(0))  # a loop that simply returned
    await eventually(lambda: subs.restarted == 2, 5, what="the returned loop restarted")


async def test_one_failing_subscription_does_not_fail_the_others_or_count_forced_reconnects(parts):
    """Failures are counted per subscription; a reconnect forced by the watchdog is not a failure."""
    _, intake, subs, _ = parts
    await subs.add(sorted(intake.wanted))
    await eventually(lambda: fresh(intake, {}), 10, what="first ticks")
    for _ in range(3):
        subs.force_reconnect("test")
        before = dict(intake.tick_part)
        await eventually(lambda b=before: fresh(intake, b), 10, what="ticking after a forced reconnect")
    await eventually(lambda: all(s.failures_in_row == 0 for s in subs.subs), 5, what="no failure left counted")
    assert not subs.failing
    assert all(s.errors >= 1 for s in subs.subs)  # the forced reconnects did fail their connections


async def test_a_stream_that_goes_silent_while_another_flows_is_resubscribed(sim, parts):
    """An exchange that stops one stream (e.g. ignored a resubscribe) while the other keeps flowing:
    the exchange as a whole is not silent, but the watchdog reconnects the silent stream within
    about `stale_after`, and it flows again. Not counted as an error."""
    _, intake, subs, errors = parts
    subs.cfg = dataclasses.replace(subs.cfg, stale_after=1.0)
    await subs.add(sorted(intake.wanted))
    await eventually(lambda: all(s in intake.arrived[BIDASK] for s in intake.wanted), 10, what="first quotes")
    venue = sim.exchanges["binance"]
    for symbol in venue.symbols:  # the exchange forgets every bookTicker subscription, keeps the tickers
        for conn, channel in list(venue.subs[symbol]):
            if channel == "bookTicker":
                del venue.subs[symbol][(conn, channel)]
    cut = time.monotonic()
    ticks = intake.ticks
    await eventually(lambda: subs.stale_reconnects >= 1, 4, what="the silent bid/ask stream kicked")
    assert intake.ticks > ticks  # tickers kept flowing: only the stream was silent
    await eventually(lambda: all(intake.arrived[BIDASK][s] > cut for s in intake.wanted), 5,
                     what="bid/ask flowing again")
    assert not errors and not subs.failing

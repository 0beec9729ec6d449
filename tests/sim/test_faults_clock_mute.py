"""The `skew` and `mute` faults, seen through real ccxt.pro.

skew: the exchange's timestamps run N seconds ahead (N > 0) or behind (N < 0); 0 restores.
mute: one symbol gets nothing (no updates, no subscribe snapshot) for N seconds or until
`resume`, while the other symbols keep flowing. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import ccxt.pro as ccxtpro
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.sim.server import ACTIONS
from tests.conftest import assert_matches_quote, eventually

WATCH = {"binance": {"name": "ticker"}, "okx": {}, "bybit": {}}


async def release(sim: Simulator, venue: str, count: int) -> None:
    sim.set_rate(venue, 100, count=count)
    await asyncio.wait_for(sim.drained(venue), 3)


def make(sim: Simulator, venue: str):
    ex = getattr(ccxtpro, venue)(sim.ccxt_config(venue))
    ex.set_markets(sim.markets(venue))
    return ex


def same_kind(sim: Simulator, venue: str, n: int) -> list[str]:
    """The first `n` symbols of the first market's kind (one watch call = one socket on bybit)."""
    markets = sim.markets(venue)
    kind = (markets[0]["type"], markets[0]["linear"])
    return [m["symbol"] for m in markets if (m["type"], m["linear"]) == kind][:n]


def test_actions_list_the_new_faults():
    assert "skew" in ACTIONS and "mute" in ACTIONS


@pytest.mark.parametrize("venue", sorted(WATCH))
async def test_skew_shifts_exchange_timestamps(venue):
    """After skew N, ccxt's exchange timestamps are N s off the wall clock; 0 restores them."""
    async with Simulator([SimExchange(venue, symbols=4, rate=0)]) as sim:
        ex = make(sim, venue)
        symbols = same_kind(sim, venue, 2)
        try:
            await asyncio.wait_for(ex.watch_tickers(symbols, WATCH[venue]), 5)
            await eventually(lambda: sim.exchanges[venue].state()["subscriptions"] == 2, 5, what="subscribed")
            for seconds in (30, -45.5, 0):
                await sim.fault(venue, "skew", seconds=seconds)
                assert sim.exchanges[venue].state()["skew"] == seconds
                sent_at = time.time() * 1000
                await release(sim, venue, 4)  # one tick per symbol
                good = sim.last_good(venue)
                await eventually(lambda good=good: all(ex.tickers.get(s, {}).get("timestamp") == good[s].ts_ms
                                                       for s in symbols), what=f"ticks stamped with skew {seconds}")
                for s in symbols:
                    assert_matches_quote(ex.tickers[s], good[s])
                    assert abs(ex.tickers[s]["timestamp"] - sent_at - seconds * 1000) < 1500
        finally:
            await ex.close()


async def test_skew_over_http_and_its_errors():
    """POST /_sim/control {"action":"skew","seconds":N} sets it; without seconds it is a 400."""
    async with Simulator([SimExchange("binance", symbols=1, rate=0)]) as sim, aiohttp.ClientSession() as http:
        url = f"{sim.http_url}/_sim/control"
        async with http.post(url, json={"exchange": "binance", "action": "skew", "seconds": -7.25}) as r:
            assert r.status == 200 and await r.json() == {"ok": True}
        assert sim.exchanges["binance"].skew_ms == -7250
        async with http.post(url, json={"exchange": "binance", "action": "skew"}) as r:
            assert r.status == 400 and "needs seconds" in (await r.json())["error"]
        await sim.fault("binance", "resume")  # resume leaves the clock as it is
        async with http.get(f"{sim.http_url}/_sim/state") as r:
            assert (await r.json())["binance"]["skew"] == -7.25
        q = sim.exchanges["binance"].current(sim.symbols("binance")[0])
        assert abs(q.ts_ms - (time.time() * 1000 - 7250)) < 1500


async def test_mute_stops_one_symbol_until_resume():
    """A muted symbol gets nothing, not even a new subscriber's snapshot; the others keep their
    share of the ticks; `resume` lets it flow again."""
    venue = "binance"
    async with Simulator([SimExchange(venue, symbols=3, rate=0)]) as sim:
        ex, late = make(sim, venue), make(sim, venue)
        s0, s1, s2 = symbols = sim.symbols(venue)
        try:
            await asyncio.wait_for(ex.watch_tickers(symbols, WATCH[venue]), 5)
            await eventually(lambda: all(s in ex.tickers for s in symbols), 5, what="all snapshots")
            held = dict(sim.last_good(venue))
            await sim.fault(venue, "mute", symbol=s0)
            assert sim.exchanges[venue].state()["muted"] == [s0]
            sent = sim.exchanges[venue].sent
            await release(sim, venue, 6)
            assert sim.exchanges[venue].sent - sent == 6  # all six went to the two others
            good = sim.last_good(venue)
            assert good[s0] is held[s0] and good[s1].seq == held[s1].seq + 3 and good[s2].seq == held[s2].seq + 3
            await eventually(lambda: all(ex.tickers[s]["last"] == good[s].last for s in (s1, s2)), what="s1, s2")
            assert ex.tickers[s0]["timestamp"] == held[s0].ts_ms

            # a new subscriber gets the others' snapshots but nothing for the muted symbol
            await asyncio.wait_for(late.watch_tickers(symbols, WATCH[venue]), 5)
            await eventually(lambda: s1 in late.tickers and s2 in late.tickers, 5, what="late snapshots")
            await asyncio.sleep(0.2)
            assert s0 not in late.tickers

            await sim.fault(venue, "resume")
            assert sim.exchanges[venue].state()["muted"] == []
            await release(sim, venue, 3)
            good = sim.last_good(venue)
            await eventually(lambda: ex.tickers[s0]["last"] == good[s0].last and late.tickers.get(s0), what="s0 again")
            assert_matches_quote(ex.tickers[s0], good[s0])
        finally:
            await ex.close()
            await late.close()


async def test_mute_for_seconds_ends_by_itself_and_http_errors():
    """mute with seconds ends on its own; over HTTP a symbol is required and must be the exchange's."""
    venue = "okx"
    async with Simulator([SimExchange(venue, symbols=2, rate=0)]) as sim, aiohttp.ClientSession() as http:
        ex = make(sim, venue)
        s0, s1 = sim.symbols(venue)
        url = f"{sim.http_url}/_sim/control"
        try:
            await asyncio.wait_for(ex.watch_tickers([s0, s1]), 5)
            await eventually(lambda: s0 in ex.tickers and s1 in ex.tickers, 5, what="snapshots")
            async with http.post(url, json={"exchange": venue, "action": "mute", "symbol": s1, "seconds": 0.6}) as r:
                assert r.status == 200
            for bad in ({"symbol": "NOPE/USDT"}, {}, {"symbol": 5}):
                async with http.post(url, json={"exchange": venue, "action": "mute", **bad}) as r:
                    assert r.status == 400, bad
            held = sim.last_good(venue)[s1]
            await release(sim, venue, 2)
            assert sim.last_good(venue)[s1] is held  # both ticks went to s0
            await asyncio.sleep(0.7)
            assert sim.exchanges[venue].state()["muted"] == []
            await release(sim, venue, 2)
            good = sim.last_good(venue)
            assert good[s1].seq == held.seq + 1
            await eventually(lambda: ex.tickers[s1]["last"] == good[s1].last, what="s1 flowing again")
        finally:
            await ex.close()


@pytest.mark.parametrize("venue", ["kraken", "coinbase", "hyperliquid"])
async def test_muted_symbol_gets_no_subscribe_snapshot(venue):
    """Venues that build their own subscribe snapshots leave a muted symbol out as well."""
    async with Simulator([SimExchange(venue, symbols=2, rate=0)]) as sim:
        ex = make(sim, venue)
        s0, s1 = sim.symbols(venue)
        try:
            await sim.fault(venue, "mute", symbol=s0)
            await asyncio.wait_for(ex.watch_tickers([s0, s1]), 5)
            await eventually(lambda: s1 in ex.tickers, 5, what="the unmuted symbol's snapshot")
            await asyncio.sleep(0.2)
            assert s0 not in ex.tickers
        finally:
            await ex.close()

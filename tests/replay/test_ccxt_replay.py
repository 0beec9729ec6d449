"""Real, unmodified ccxt.pro against the replay server: every captured ticker / bid-ask of 16 venues.

Per venue: ccxt built with only the server's URL overrides (``srv.ccxt_config``) and the manifest
markets (``set_markets``) subscribes every symbol that has ticker or bid/ask frames (calls grouped
by the socket ccxt picks, see plans.py); the test ends when every (symbol, dict) that ``expected()``
produces is in ``exchange.tickers`` / ``exchange.bidsasks`` and equal to the value ccxt parsed
last, which is what ccxt keeps. Each venue is bounded by VENUE_BUDGET_S.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from tests.replay.captures import CAPTURES_DIR, VENUES
from tests.replay.expected import compute, last_value, newest_value
from tests.replay.plans import PLANS, Plan, group_calls, maybe_await

pytestmark = pytest.mark.skipif(not (CAPTURES_DIR / "manifest.json").exists(),
                                reason=f"captures not found in {CAPTURES_DIR}")

VENUE_BUDGET_S = 20.0

# ccxt keeps the value it parsed last (exchange.tickers[symbol] is overwritten per frame), not the
# newest by timestamp. Where a symbol's captured frames of one channel are not in time order (they
# come from different sources/years), the two differ; every other (symbol, dict) ends on a value
# that is both. Keyed by (venue, plan name): "symbol/dict".
LAST_IS_NOT_NEWEST: dict[tuple[str, str], set[str]] = {
    ("binance", "miniTicker"): {"BTC/USDT/ticker"},
    ("binanceusdm", "24hrTicker + bookTicker"): {"BTC/USDT:USDT/ticker"},
    ("binanceusdm", "miniTicker"): {"BTC/USDT:USDT/ticker"},
    ("htx", "bbo"): {"BTC/USDT/ticker"},
}
REPORT: dict[str, dict[str, Any]] = {}  # filled per venue, printed by tests/replay/conftest.py


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


async def _run_plan(srv: Any, venue: str, plan: Plan, deadline: float) -> dict[str, Any]:
    import ccxt.pro

    cap = srv.capture(venue)
    detail = compute(venue, srv.now_ms, plan.channels, srv.socket_urls(venue))
    assert not detail.errors, f"{venue}: ccxt raised on captured frames: {detail.errors}"
    expected = detail.plain()
    config = _merge(srv.ccxt_config(venue), plan.options)
    cls = getattr(ccxt.pro, cap.ccxt_class)

    probe = cls(config)
    probe.set_markets(srv.markets(venue))
    await maybe_await(probe.open())  # kucoin's REST negotiation needs the loop before the first watch
    try:
        calls = []
        for call in plan.calls:
            groups = await asyncio.wait_for(
                group_calls(probe, call, cap.symbols(channel=call.channel), cap.by_symbol),
                max(0.1, deadline - time.monotonic()))
            calls += [(call, url, syms) for url, syms in groups]
    finally:
        await asyncio.wait_for(probe.close(), 10)

    exchange = cls(config)
    exchange.set_markets(srv.markets(venue))
    await maybe_await(exchange.open())
    tasks: list[asyncio.Task[Any]] = []
    frames_needed = {f.n for f in cap.data_frames(plan.channels) if f.book is not None}
    try:
        for call, _, syms in calls:
            arg: Any = syms[0] if call.per_symbol else syms
            tasks.append(asyncio.create_task(getattr(exchange, call.method)(arg, call.kwargs())))

        def sent() -> set[int]:
            return {n for c in srv.connections(venue) for n in c.sent}

        def mismatches() -> list[str]:
            bad = []
            for symbol, books in expected.items():
                for book, seq in books.items():
                    store = exchange.tickers if book == "ticker" else exchange.bidsasks
                    if store.get(symbol) != last_value(seq):
                        bad.append(f"{symbol}/{book}")
            return bad

        while True:
            for t in tasks:
                if t.done() and not t.cancelled() and (exc := t.exception()) is not None:
                    raise AssertionError(f"{venue} {plan.name}: a ccxt call failed: {exc!r}") from exc
            if frames_needed <= sent() and not mismatches():
                break
            if time.monotonic() > deadline:
                missing = sorted(frames_needed - sent())
                pytest.fail(f"{venue} {plan.name}: after the venue budget, frames never sent: {missing[:20]}; "
                            f"not matching: {mismatches()[:20]}; server: {srv.state(venue)['connections']}")
            await asyncio.sleep(0.02)
        if venue == "htx":  # the server pings on connect; ccxt must answer {"pong": ts}
            while not any(c.pongs for c in srv.connections(venue)):
                assert time.monotonic() < deadline, f"htx: no pong for {srv.state(venue)}"
                await asyncio.sleep(0.02)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.wait_for(exchange.close(), 10)

    newest_differs = sorted(f"{s}/{b}" for s, books in expected.items() for b, seq in books.items()
                            if newest_value(seq) is not last_value(seq))
    assert set(newest_differs) == LAST_IS_NOT_NEWEST.get((venue, plan.name), set()), newest_differs
    return {
        "calls": [f"{call.describe()} x{len(syms)} -> /{re.sub(r'/[0-9]+$', '/<n>', url.split('/', 3)[-1])}"
                  for call, url, syms in calls],
        "ticker": sorted(s for s, b in expected.items() if "ticker" in b),
        "bidask": sorted(s for s, b in expected.items() if "bidask" in b),
        "unparsed": detail.unparsed, "rejected": detail.rejected, "newest_differs": newest_differs,
    }


@pytest.mark.parametrize("venue", VENUES)
async def test_ccxt_receives_every_captured_frame(venue: str) -> None:
    from tests.replay.server import ReplayServer

    started = time.monotonic()
    deadline = started + VENUE_BUDGET_S
    report: dict[str, Any] = {"plans": {}}
    async with ReplayServer(venues=[venue]) as srv:
        cap = srv.capture(venue)
        for plan in PLANS[venue]:
            report["plans"][plan.name] = await _run_plan(srv, venue, plan, deadline)
        # every symbol with ticker or bid/ask frames was subscribed and parsed by some plan
        covered = {s for p in report["plans"].values() for s in p["ticker"] + p["bidask"]}
        with_frames = {s for f in cap.data_frames() if f.book is not None for s in f.symbols}
        assert with_frames <= covered, f"{venue}: never parsed: {sorted(with_frames - covered)}"
        unserved = sorted({f"{f.channel} frame {f.n} ({f.meta.get('ccxt_method')})" for f in cap.frames
                           if f.channel is not None and f.book is None and f.kind != "heartbeat"})
        report.update(seconds=round(time.monotonic() - started, 2), unserved=unserved,
                      shift_ms=cap.shift_ms, rejected_paths=srv.state(venue)["rejected_paths"])
    REPORT[venue] = report
    assert not report["rejected_paths"], f"{venue}: ccxt connected to paths we do not serve: {report['rejected_paths']}"


async def test_markets_are_served_over_http() -> None:
    """A worker configured with `markets = "<url>"` loads the manifest list from the server."""
    import aiohttp

    from tests.replay.server import ReplayServer

    async with ReplayServer(venues=["okx", "kucoin"]) as srv, aiohttp.ClientSession() as session:
        async with session.get(srv.markets_url("okx")) as r:
            assert r.status == 200
            assert await r.json() == srv.markets("okx")
        async with session.post(f"{srv.http_url}/kucoin/api/v1/bullet-public") as r:
            body = await r.json()
            assert body["data"]["instanceServers"][0]["endpoint"] == f"{srv.ws_url}/kucoin/endpoint"


def _diff_leaves(a: Any, b: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any, Any]]:
    """(path, a, b) of every differing leaf of two raw-token JSON trees of the same shape."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path  # same keys, same order
        return [d for k in a for d in _diff_leaves(a[k], b[k], (*path, k))]
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff_leaves(x, y, (*path, i))]
    return [] if (a == b and type(a) is type(b)) else [(path, a, b)]


def test_frames_keep_number_tokens_and_shift_times() -> None:
    """Only the venue's time fields change, all by one constant (order and spacing kept), the newest
    frame lands on `now`, and every other token (numbers included) is byte-identical."""
    from tests.replay.captures import TIME_FIELDS, _parse_iso, _raw_lines, load, loads_raw

    now = int(time.time() * 1000)
    for venue in VENUES:
        cap = load(venue, now)
        fields = TIME_FIELDS[venue]
        times = [t for f in cap.frames for t in f.times_ms]
        if times:
            assert 0 <= now - max(times) < 1000, venue
        for f, original in zip(cap.frames, _raw_lines(venue)[0], strict=True):
            for path, old, new in _diff_leaves(loads_raw(original), loads_raw(f.text)):
                key = path[-1]
                assert key in fields, (venue, f.n, path)
                unit = fields[key]
                if unit == "iso":
                    delta = (_parse_iso(new)[0] - _parse_iso(old)[0]).total_seconds() * 1000
                    assert len(new) == len(old), (venue, f.n, old, new)
                else:
                    delta = (int(new) - int(old)) * (1000 if unit == "s" else 1)
                    assert type(new) is type(old), (venue, f.n, path)  # a JSON string stays a string
                assert delta == cap.shift_ms, (venue, f.n, path, old, new)

"""Fault matrix, the exchange misbehaves: closes sockets, stalls, sends bad frames, refuses connections.

binance (the simulator) is the victim, okx the bystander that must keep advancing. Worker settings
are short (reconnect 0.2 s doubling to 1 s) so each row's bound follows from the configuration.
The refuse outage lasts FAULT_OUTAGE_S (default 8 s; the issue's 30 s with FAULT_OUTAGE_S=30).
"""

from __future__ import annotations

import time

from tests.conftest import eventually
from tests.faults.helpers import (
    OUTAGE_S,
    Advancing,
    fault_config,
    fresh,
    health_record,
    log_lines,
    ps,
    record,
    running,
)
from tests.worker.helpers import all_match

RECONNECT, RECONNECT_MAX = 0.2, 1.0  # write_config's [defaults]: the worker's reconnect backoff


async def start(sim, rc, redis_server, procs, tmp_path, **binance):
    """binance (+ its overrides) and okx under a real supervisor; returns (config, sup, ps rows)."""
    cat = {"binance": {"symbols": sim.symbols("binance"), **binance}, "okx": {"symbols": sim.symbols("okx")}}
    cfg = fault_config(tmp_path / "c.toml", sim, cat, redis_server.url)
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, ("binance", "okx")), 60, 0.3, "binance and okx running")
    await eventually(lambda: all_match(rc, sim, "binance"), 10, what="binance values in redis")
    return cfg, sup, rows


def state(sim, venue="binance"):
    return sim.exchanges[venue].state()


async def assert_unharmed(cfg, rows, sup):
    """No crash anywhere: same worker pids, no restart, both running."""
    now = await ps(cfg)
    for n in ("binance", "okx"):
        assert now[n]["status"] == "running" and now[n]["restarts"] == 0, now[n]
        assert now[n]["pid"] == rows[n]["pid"], (now[n], rows[n])
    assert sup.poll() is None


async def test_exchange_closes_every_socket_reconnect_within_backoff(sim, rc, redis_server, procs, tmp_path):
    """Row: the exchange closes every socket (three times in a row) -> the worker reconnects,
    resubscribes and stores fresh ticks within its backoff each time; no crash, okx unaffected."""
    cfg, sup, rows = await start(sim, rc, redis_server, procs, tmp_path)
    symbols = sim.symbols("binance")
    resumed = []
    async with Advancing(rc, {"okx": sim.symbols("okx")}) as adv:
        for attempt in range(1, 4):
            accepted = state(sim)["connections_accepted"]
            t0, wall = time.monotonic(), time.time()
            await sim.fault("binance", "close")
            await eventually(lambda a=accepted: state(sim)["connections_accepted"] > a  # 24hrTicker + bookTicker
                             and state(sim)["subscriptions"] == 2 * len(symbols), 10, 0.01, "resubscribed")
            t_resub = time.monotonic() - t0
            await eventually(lambda w=wall: fresh(rc, "binance", symbols, w), 10, 0.01, "fresh ticks stored")
            t_fresh = time.monotonic() - t0
            # the attempt count grows while the connection is younger than STABLE_AFTER (30 s)
            ceiling = min(RECONNECT_MAX, RECONNECT * 2 ** (attempt - 1))
            assert t_resub <= ceiling + 1.0, f"close {attempt}: resubscribed after {t_resub:.2f}s"
            assert t_fresh <= ceiling + 1.5, f"close {attempt}: fresh data after {t_fresh:.2f}s"
            resumed.append((round(t_resub, 3), round(t_fresh, 3)))
    await eventually(lambda: all_match(rc, sim, "binance"), 10, what="binance equals the last quotes sent")
    h = await eventually(lambda: _with(health_record(rc, "binance"), lambda h: h["reconnects"] >= 3), 5,
                         what="3 reconnects in the health record")
    assert h["status"] == "running" and h["stale_reconnects"] == 0
    await assert_unharmed(cfg, rows, sup)
    assert adv.max_gap["okx"] < 1.0, adv.max_gap
    record("exchange closes every socket", resubscribed_s=[r[0] for r in resumed],
           all_symbols_fresh_s=[r[1] for r in resumed], okx_max_gap_s=adv.max_gap["okx"])


async def _with(awaitable, check):
    value = await awaitable
    return value if value and check(value) else None


async def test_exchange_stalls_watchdog_reconnects_within_twice_threshold(sim, rc, redis_server, procs, tmp_path):
    """Row: the socket stays open but silent (pings unanswered) -> the watchdog detects it within
    2x stale_after and reconnects; once the exchange answers again every symbol resumes."""
    stale_after = 2.0
    cfg, sup, rows = await start(sim, rc, redis_server, procs, tmp_path, stale_after=stale_after)
    symbols = sim.symbols("binance")
    async with Advancing(rc, {"okx": sim.symbols("okx")}) as adv:
        accepted = state(sim)["connections_accepted"]
        t0 = time.monotonic()
        await sim.fault("binance", "stall")  # until resumed
        await eventually(lambda: state(sim)["connections_accepted"] > accepted, 2 * stale_after + 2, 0.01,
                         "a reconnect forced by the watchdog")
        t_detect = time.monotonic() - t0
        await eventually(lambda: _with(health_record(rc, "binance"), lambda h: h["stale_reconnects"] >= 1),
                         3, 0.05, "the watchdog's reconnect counted in the health record")
        await sim.fault("binance", "resume")
        t1, wall = time.monotonic(), time.time()
        await eventually(lambda: fresh(rc, "binance", symbols, wall), 2 * stale_after + 5, 0.01,
                         "binance resumed after the stall")
        t_resume = time.monotonic() - t1
    assert t_detect <= 2 * stale_after, f"stall detected after {t_detect:.2f}s (stale_after {stale_after}s)"
    # the reconnect made during the stall subscribed into silence; at worst one more watchdog period
    assert t_resume <= stale_after + RECONNECT_MAX + 1.5, f"resumed {t_resume:.2f}s after the stall ended"
    await eventually(lambda: all_match(rc, sim, "binance"), 10, what="binance equals the last quotes sent")
    await assert_unharmed(cfg, rows, sup)
    assert adv.max_gap["okx"] < 1.0, adv.max_gap
    record("exchange stalls", stale_after_s=stale_after, detected_s=t_detect, resumed_after_stall_end_s=t_resume,
           okx_max_gap_s=adv.max_gap["okx"])


async def test_bad_frames_rejected_counted_last_good_kept(sim, rc, redis_server, procs, tmp_path):
    """Row: negative, zero, crossed and older-timestamp quotes are rejected and counted per reason
    while Redis keeps the last good value of each symbol; NaN and garbage frames (which break
    ccxt's receive loop) are counted `malformed` and the worker reconnects and resumes. No crash.

    The ticker stream only: Binance spot's bookTicker carries no timestamp, so an out-of-order
    bid/ask on it cannot be told from a new one (tests/worker counts both streams)."""
    # the feed is driven tick by tick (rate 0), so no staleness watchdog must fire in between
    cfg, sup, rows = await start(sim, rc, redis_server, procs, tmp_path, stale_after=120.0, streams=["ticker"])
    sim.set_rate("binance", 0)
    sim.set_rate("binance", 200, count=16)
    await sim.drained("binance")
    await eventually(lambda: all_match(rc, sim, "binance"), 10, what="baseline values")
    before = sim.last_good("binance")
    base = dict((await health_record(rc, "binance"))["rejected"])
    bad = {"negative": 2, "zero": 2, "crossed": 2, "older": 2}  # one bad quote for each of the 8 symbols
    for kind, n in bad.items():
        await sim.fault("binance", kind, count=n)
    t0 = time.monotonic()
    sim.set_rate("binance", 200, count=8)
    await sim.drained("binance")
    want = {"not_positive": 2, "no_price": 2, "crossed": 2, "older": 2}

    async def counted():
        h = await health_record(rc, "binance")
        got = {k: h["rejected"].get(k, 0) - base.get(k, 0) for k in want} if h else {}
        return got == want and got

    await eventually(counted, 5, 0.05, f"rejections counted {want}")
    t_counted = time.monotonic() - t0
    assert sim.last_good("binance") == before  # the simulator sent no good quote in that burst
    assert await all_match(rc, sim, "binance"), "a rejected quote reached redis"

    # NaN and garbage: ccxt's parser raises inside its receive loop -> malformed + reconnect
    for fault in ("nan", "malformed"):
        accepted = state(sim)["connections_accepted"]
        malformed = (await health_record(rc, "binance"))["rejected"].get("malformed", 0)
        t1 = time.monotonic()
        if fault == "nan":
            await sim.fault("binance", "nan", count=1)
            sim.set_rate("binance", 200, count=1)
            await sim.drained("binance")
        else:
            await sim.fault("binance", "malformed", count=3)
        await eventually(lambda a=accepted: state(sim)["connections_accepted"] > a
                         and state(sim)["subscriptions"] == 8, 10, 0.01, f"reconnect after {fault}")
        t_reconnect = time.monotonic() - t1
        await eventually(lambda m=malformed: _with(health_record(rc, "binance"),
                                                   lambda h: h["rejected"].get("malformed", 0) > m),
                         5, 0.05, f"{fault} counted as malformed")
        assert await all_match(rc, sim, "binance"), f"redis changed by {fault}"
        record("bad frames", **{f"{fault}_reconnect_s": t_reconnect})
    t2, wall = time.monotonic(), time.time()
    sim.set_rate("binance", 200, count=16)
    await sim.drained("binance")
    await eventually(lambda: fresh(rc, "binance", sim.symbols("binance"), wall), 10, 0.01, "fresh values after")
    assert await all_match(rc, sim, "binance")
    await assert_unharmed(cfg, rows, sup)
    record("bad frames", rejected_counted_s=t_counted, resumed_s=time.monotonic() - t2,
           rejected=(await health_record(rc, "binance"))["rejected"])


async def test_exchange_refuses_connections_jittered_bounded_retries(sim, rc, redis_server, procs, tmp_path):
    """Row: every connection refused (HTTP 503) for FAULT_OUTAGE_S -> the worker retries with
    jittered capped backoff (bounded attempts: each waits >= reconnect_delay/2), `ps` shows it
    `error` with the failing reconnects and their error meanwhile, and it resumes within one capped
    backoff of the exchange's return."""
    cfg, sup, rows = await start(sim, rc, redis_server, procs, tmp_path)
    symbols = sim.symbols("binance")
    refused0 = state(sim)["connections_refused"]
    async with Advancing(rc, {"okx": sim.symbols("okx")}) as adv:
        t0, wall0 = time.monotonic(), time.time()
        await sim.fault("binance", "refuse", seconds=OUTAGE_S)
        await sim.fault("binance", "close")

        async def stale():  # reconnects failing max_retries in a row: `error`, with why
            r = (await ps(cfg))["binance"]
            return r["status"] == "error" and "failed reconnects" in r["detail"] and r

        r = await eventually(stale, OUTAGE_S, 0.2, "ps shows binance failing during the outage")
        t_stale = time.monotonic() - t0
        assert "503" in r["last_error"] or "refused" in r["last_error"].lower(), r
        await eventually(lambda: not state(sim)["refusing"], OUTAGE_S + 2, 0.02, "the end of the outage")
        t_end, wall_end = time.monotonic(), time.time()
        refused = state(sim)["connections_refused"] - refused0
        # generous deadline so the number is measured even when the bound below is missed
        await eventually(lambda: fresh(rc, "binance", symbols, wall_end), 45, 0.01,
                         "binance resumed after the outage")
        t_resume = time.monotonic() - t_end
    outage = t_end - t0
    retries = [float(m.group(1)) for t, m in log_lines(sup.log, r"retry in ([\d.]+)s", "binance")
               if wall0 <= t <= wall_end + 0.5]
    record("exchange refuses connections", outage_s=outage, attempts=refused,
           attempts_per_s=refused / outage, retry_delays_s=retries, ps_stale_after_s=t_stale,
           resumed_after_outage_s=t_resume, okx_max_gap_s=adv.max_gap["okx"])
    # no hot loop: every retry waits at least reconnect_delay/2 (one connection: 8 symbols, one chunk)
    assert 2 <= refused <= outage / (RECONNECT / 2) + 2, f"{refused} attempts in {outage:.1f}s"
    assert len(retries) >= 2, retries
    assert all(RECONNECT / 2 - 0.005 <= d <= RECONNECT_MAX + 0.005 for d in retries), retries  # floor and cap
    assert len(set(retries)) > 1 and max(retries) > RECONNECT, retries  # jittered, and it grew
    assert adv.max_gap["okx"] < 1.0, adv.max_gap
    # back within one capped backoff of the exchange's return (not ccxt's own, longer, dial backoff)
    assert t_resume <= RECONNECT_MAX + 1.5, f"resumed {t_resume:.2f}s after the exchange came back"
    await eventually(lambda: running(cfg, ("binance",)), 5, 0.2, "ps running again")
    await eventually(lambda: all_match(rc, sim, "binance"), 10, what="binance equals the last quotes sent")
    await assert_unharmed(cfg, rows, sup)

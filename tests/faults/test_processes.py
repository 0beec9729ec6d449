"""Fault matrix, worker processes: kill -9, a crash loop at start, configuration errors.

Real `tickerctl up` (a process) -> real spawned worker processes -> real ccxt.pro against the
in-process simulator -> a private redis-server. Assertions read Redis and `tickerctl ps --json`;
every wait is a condition with a deadline. Measured times go to helpers.RESULTS.
"""

from __future__ import annotations

import os
import signal
import time

from tests.conftest import eventually
from tests.faults.helpers import (
    Advancing,
    ahealth,
    fault_config,
    fresh,
    health_record,
    log_lines,
    ps,
    record,
    running,
)
from tests.supervisor.helpers import alive, worker_pids
from tests.worker.helpers import all_match, stored

EXCHANGES = ("binance", "okx", "bybit")


def catalog(sim, names=EXCHANGES, **extra):
    return {n: {"symbols": sim.symbols(n), **extra} for n in names}


async def test_kill9_worker_restarts_after_backoff_others_keep_advancing(sim, rc, redis_server, procs, tmp_path):
    """Row: one worker `kill -9` -> restarted after its backoff; okx and bybit never stop advancing."""
    base = 0.3
    cfg = fault_config(tmp_path / "c.toml", sim, catalog(sim), redis_server.url, supervisor={"restart_base": base})
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, EXCHANGES), 60, 0.3, "3 running workers")
    await eventually(lambda: all_match(rc, sim, "binance"), 10, what="binance values in redis")
    victim = rows["binance"]["pid"]
    others = {n: sim.symbols(n) for n in ("okx", "bybit")}

    async with Advancing(rc, others) as adv:
        await eventually(lambda: min(adv.advances.values()) >= 3, 10, what="others advancing before the kill")
        t_kill, wall_kill = time.monotonic(), time.time()
        os.kill(victim, signal.SIGKILL)
        new = await eventually(lambda: [p for p in worker_pids(sup.pid) if p not in
                                        {victim, rows["okx"]["pid"], rows["bybit"]["pid"]}],
                               15, 0.01, "a new binance worker process")
        t_spawn = time.monotonic() - t_kill

        async def restarted():
            r = (await ps(cfg)).get("binance")
            return r and r["status"] == "running" and r["pid"] == new[0] and r["ticks"] > 0 and r

        r = await eventually(restarted, 30, 0.1, "binance running again (ps)")
        t_running = time.monotonic() - t_kill
        symbols = sim.symbols("binance")
        await eventually(lambda: fresh(rc, "binance", symbols, wall_kill), 10, 0.02,
                         "every binance symbol written by the new worker")
        t_data = time.monotonic() - t_kill
        await eventually(lambda: min(adv.advances.values()) >= 3, 5, what="others advancing after")

    assert r["restarts"] == 1 and not alive(victim)
    # the supervisor's decision, then the spawn no earlier than that backoff
    ((_, m),) = log_lines(sup.log, r"binance: crashed \(killed by signal 9\); restart 1 in ([\d.]+)s", "supervisor")
    backoff = float(m.group(1))
    assert base / 2 - 0.05 <= backoff <= base + 0.05
    assert t_spawn >= backoff - 0.06, f"respawned after {t_spawn:.3f}s, backoff was {backoff}s"
    assert t_spawn <= backoff + 1.5, f"respawn took {t_spawn:.3f}s for a {backoff}s backoff"
    # the others never paused: at 40 ticks/s each, 1 s without a new tick would be a stall
    assert max(adv.max_gap.values()) < 1.0, adv.max_gap
    after = await ps(cfg)
    for n in ("okx", "bybit"):
        assert after[n]["status"] == "running" and after[n]["restarts"] == 0 and after[n]["pid"] == rows[n]["pid"]
    await eventually(lambda: all_match(rc, sim, "binance"), 10, what="binance equals the last quotes sent")
    record("kill -9 worker", backoff_s=backoff, respawn_s=t_spawn, running_in_ps_s=t_running,
           all_symbols_fresh_s=t_data, others_max_gap_s=max(adv.max_gap.values()))


async def test_crash_loop_backs_off_capped_jittered_then_parks(sim, rc, redis_server, procs, tmp_path):
    """Row: a worker crashing at every start: delays within [base/2, min(cap, base*2^(n-1))] (so
    capped), drawn (jitter), growing; the supervisor waits each one; parked `failed` after
    max_crashes; binance runs on untouched."""
    base, cap, max_crashes = 0.2, 1.6, 5
    cat = {**catalog(sim, ("binance",)),
           "crashy": {"venue": "okx", "symbols": sim.symbols("okx"), "markets": "", "ccxt": {"urls": 7}}}
    cfg = fault_config(tmp_path / "c.toml", sim, cat, redis_server.url,
                       supervisor={"restart_base": base, "restart_cap": cap, "max_crashes": max_crashes})
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, ("binance",)), 60, 0.3, "binance running")
    binance_pid = rows["binance"]["pid"]
    seen: set[str] = set()
    t0 = time.monotonic()

    async def parked():
        r = (await ps(cfg)).get("crashy")
        if r:
            seen.add(r["status"])
        return r and r["status"] == "failed" and r

    async with Advancing(rc, {"binance": sim.symbols("binance")}) as adv:
        r = await eventually(parked, 90, 0.1, "crashy parked as failed")
        t_parked = time.monotonic() - t0
        spawns_at_park = len(log_lines(sup.log, r"crashy: started worker pid", "supervisor"))
        # parked means parked: no new start for longer than the longest backoff (+ a supervisor tick)
        await eventually(lambda: time.monotonic() - t0 > t_parked + cap + 1.0, cap + 5, 0.1, "a quiet period")
        assert len(log_lines(sup.log, r"crashy: started worker pid", "supervisor")) == spawns_at_park

    assert r["restarts"] == max_crashes and (r["pid"] is None or not alive(r["pid"])), r
    assert {"backoff", "failed"} <= seen, seen
    crashes = log_lines(sup.log, r"crashy: crashed \(exit code 1\); restart (\d+) in ([\d.]+)s", "supervisor")
    starts = log_lines(sup.log, r"crashy: started worker pid", "supervisor")
    assert [int(m.group(1)) for _, m in crashes] == list(range(1, max_crashes + 1))
    assert len(starts) == max_crashes + 1 == spawns_at_park
    assert log_lines(sup.log, rf"crashy: parked as failed: {max_crashes + 1} crashes", "supervisor")
    delays = [float(m.group(2)) for _, m in crashes]  # logged with 0.1 s resolution
    ceilings = [min(cap, base * 2 ** n) for n in range(max_crashes)]
    for d, ceiling in zip(delays, ceilings, strict=True):
        assert base / 2 - 0.05 <= d <= ceiling + 0.05, (delays, ceilings)  # capped at `cap` too
    assert max(delays[2:]) > ceilings[0] + 0.05, delays  # grows past what attempt 1 may draw
    assert any(d < c - 0.05 for d, c in zip(delays, ceilings, strict=True)), delays  # jitter, not fixed
    # the supervisor honours each delay: spawn n+1 comes no earlier than crash n + its delay
    gaps = [start - crash for (crash, _), (start, _) in zip(crashes, starts[1:], strict=True)]
    for gap, d in zip(gaps, delays, strict=True):
        assert d - 0.06 <= gap <= d + 1.0, (gaps, delays)
    # others unaffected
    rows = await ps(cfg)
    assert rows["binance"]["status"] == "running" and rows["binance"]["restarts"] == 0
    assert rows["binance"]["pid"] == binance_pid
    assert adv.max_gap["binance"] < 1.0, adv.max_gap
    await eventually(lambda: all_match(rc, sim, "binance"), 10, what="binance values")
    assert await rc.hlen("tickers:crashy") == 0
    assert sup.poll() is None
    record("crash loop at start", delays_s=delays, spawn_gaps_s=[round(g, 3) for g in gaps],
           parked_after_s=t_parked, binance_max_gap_s=adv.max_gap["binance"])
    # a parked exchange says why, in `ps` and `tickerctl health` (the crash, not only "failed")
    code, out = await ahealth(cfg)
    assert code == 1 and out.startswith("crashy: failed") and "binance" not in out
    assert "TypeError" in r["last_error"] or "crash" in r["last_error"], r
    assert out.startswith("crashy: failed: "), out


async def test_unknown_exchange_and_unlisted_symbols_are_parked_with_reason(sim, rc, redis_server, procs, tmp_path):
    """Row: an exchange id ccxt does not know, an exchange none of whose symbols is listed ->
    parked `failed` with the reason, never restarted; a symbol the exchange does not list ->
    skipped with the reason (health `unknown_symbols`), the exchange's other symbols and the other
    exchanges run."""
    cat = {
        "binance": {"symbols": [*sim.symbols("binance"), "NOPE/USDT"]},
        "bybit": {"symbols": sim.symbols("bybit")},
        "okx": {"symbols": ["NOPE/USDT", "ZZZ/USDT"]},
        "nosuchx": {"venue": "nosuchexchange", "symbols": ["BTC/USDT"]},
    }
    cfg = fault_config(tmp_path / "c.toml", sim, cat, redis_server.url)
    t0 = time.monotonic()
    sup = procs("up", "-c", str(cfg))

    async def settled():
        rows = await ps(cfg)
        parked = all(rows.get(n, {}).get("status") == "failed" for n in ("okx", "nosuchx"))
        return parked and await running(cfg, ("binance", "bybit")) and rows

    rows = await eventually(settled, 60, 0.3, "two parked, two running")
    t_settled = time.monotonic() - t0
    assert "unknown ccxt exchange id 'nosuchexchange'" in rows["nosuchx"]["last_error"]
    assert "none of the symbols is listed by okx: NOPE/USDT, ZZZ/USDT" in rows["okx"]["last_error"]
    for n in ("okx", "nosuchx"):
        assert rows[n]["restarts"] == 0 and (rows[n]["pid"] is None or not alive(rows[n]["pid"])), rows[n]
    assert rows["binance"]["symbols"] == len(sim.symbols("binance"))  # the listed ones only
    h = await health_record(rc, "binance")
    assert h["unknown_symbols"] == ["NOPE/USDT"] and h["status"] == "running"
    assert log_lines(sup.log, r"symbol 'NOPE/USDT' is not listed by binance; skipped", "binance")
    for n in ("binance", "bybit"):
        await eventually(lambda n=n: all_match(rc, sim, n), 10, what=f"{n} values")
    assert set(await stored(rc, "binance")) == set(sim.symbols("binance"))
    assert await rc.hlen("tickers:okx") == 0 and await rc.hlen("tickers:nosuchx") == 0
    code, out = await ahealth(cfg)
    assert code == 1 and sorted(line.split(":")[0] for line in out.splitlines()) == ["nosuchx", "okx"]
    assert len(worker_pids(sup.pid)) == 2 and sup.poll() is None
    record("unknown exchange / unlisted symbol", settled_s=t_settled)

"""Fault matrix, the stores fail: Redis killed and restarted empty, PostgreSQL down while running
and at `up`. Each test owns its servers (tests/servers.py), so it can kill them.

The Redis outage lasts FAULT_OUTAGE_S (default 8 s; the issue's 30 s with FAULT_OUTAGE_S=30).
Its supervisor settings are scaled-down production ones: start_grace and heartbeat_timeout 5 s,
shorter than the outage, as the defaults (60 s / 30 s) are shorter than a 30 s outage of a service
that has run a minute; health_interval 2 s (default 5 s), so a worker may need up to 2 s after
Redis' return to rewrite its health record, as it does in production.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
from redis.exceptions import RedisError

from tests.conftest import eventually
from tests.faults.helpers import (
    OUTAGE_S,
    Advancing,
    ahealth,
    fault_config,
    health_record,
    log_lines,
    ps,
    record,
    running,
    ticker_times,
)
from tests.supervisor.helpers import alive, worker_pids
from tests.supervisor.test_catalog_pg import db_init, seed_file
from tests.worker.helpers import all_match

EXCHANGES = ("binance", "okx", "bybit")


async def test_redis_killed_then_restarted_empty(sim, rc, redis_server, procs, tmp_path):
    """Row: Redis killed for FAULT_OUTAGE_S, restarted empty -> the workers stay up (same pids, no
    restart) and keep collecting; within 1 s of Redis' return every symbol of every exchange holds
    at least the newest value sent before the return; health records and `ps` come back."""
    cat = {n: {"symbols": sim.symbols(n)} for n in EXCHANGES}
    cfg = fault_config(tmp_path / "c.toml", sim, cat, redis_server.url, health_interval=2.0,
                       supervisor={"start_grace": 5.0, "heartbeat_timeout": 5.0})
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, EXCHANGES), 60, 0.3, "3 running workers")
    for n in EXCHANGES:
        await eventually(lambda n=n: all_match(rc, sim, n), 10, what=f"{n} values")
    pids = {n: rows[n]["pid"] for n in EXCHANGES}
    sent_before = {n: sim.exchanges[n].sent for n in EXCHANGES}

    redis_server.kill()
    t0 = time.monotonic()
    while time.monotonic() - t0 < OUTAGE_S:  # the outage itself; every 0.1 s: nobody died
        assert all(alive(p) for p in pids.values()) and sup.poll() is None, "a process died during the outage"
        await asyncio.sleep(0.1)
    assert all(sim.exchanges[n].sent - sent_before[n] > 10 * OUTAGE_S for n in EXCHANGES)  # ticks kept coming
    newest = {n: sim.last_good(n) for n in EXCHANGES}  # what must be in Redis within 1 s of its return
    redis_server.start()
    t_back = time.monotonic()

    async def refilled():
        for n in EXCHANGES:
            try:
                times = await ticker_times(rc, n, list(newest[n]))
            except (RedisError, OSError):  # our client, reconnecting
                return False
            if any(times.get(s, 0.0) < q.ts_ms / 1000 for s, q in newest[n].items()):
                return False
        return True

    await eventually(refilled, 10, 0.01, "every symbol's newest value back in redis")
    t_refill = time.monotonic() - t_back

    async def health_back():
        recs = {n: await health_record(rc, n) for n in EXCHANGES}
        return all(r and r["redis"] == "up" for r in recs.values()) and recs

    recs = await eventually(health_back, 10, 0.02, "health records back")
    t_health = time.monotonic() - t_back
    await eventually(lambda: running(cfg, EXCHANGES), 10, 0.1, "ps shows all running again")
    t_ps = time.monotonic() - t_back
    # the supervisor must not mistake "record missing because Redis was wiped" for a hung worker
    await eventually(lambda: time.monotonic() - t_back > 3.0, 5, 0.1, "3 s with Redis back")
    rows_after = await ps(cfg)
    record("redis killed, restarted empty", outage_s=OUTAGE_S, refill_s=t_refill, health_back_s=t_health,
           ps_running_s=t_ps, restarts={n: rows_after[n]["restarts"] for n in EXCHANGES})
    assert t_refill < 1.0, f"refill took {t_refill:.2f}s"
    for n in EXCHANGES:
        assert recs[n]["pid"] == pids[n], f"{n}: health record from another process"
        assert rows_after[n]["restarts"] == 0 and rows_after[n]["pid"] == pids[n], rows_after[n]
        assert rows_after[n]["status"] == "running"
    assert not log_lines(sup.log, r"no heartbeat|crashed", "supervisor")
    for n in EXCHANGES:
        sim.set_rate(n, 0)
    for n in EXCHANGES:
        await eventually(lambda n=n: all_match(rc, sim, n), 10, what=f"{n} equals the last quotes sent")


def _create_db(server, name="fullon"):
    with psycopg.connect(server.url(), autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return server.url(name)


async def test_postgres_stopped_during_run_keeps_catalog_then_applies_changes(sim, rc, redis_server, pg_server,
                                                                            procs, tmp_path):
    """Row: PostgreSQL stopped while running -> workers keep collecting the last catalog (no
    restart, no gap) while the supervisor retries with backoff; a change made once it is back
    (a symbol added, one removed) is applied."""
    url = _create_db(pg_server)
    b, o = sim.symbols("binance"), sim.symbols("okx")
    cfg = fault_config(tmp_path / "c.toml", sim, {"binance": {}, "okx": {}}, redis_server.url, database_url=url)
    out = db_init(cfg, seed_file(tmp_path / "seed.toml", {"binance": b[:4], "okx": o[:4]}))
    assert out.returncode == 0, out.stderr
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, ("binance", "okx")), 60, 0.3, "both running from PostgreSQL")

    async with Advancing(rc, {"binance": b[:4], "okx": o[:4]}) as adv:
        pg_server.kill()
        t0, wall0 = time.monotonic(), time.time()

        def retries():
            return [(t, float(m.group(1))) for t, m in log_lines(
                sup.log, r"catalog from PostgreSQL failed .*; keeping the last catalog; retry in ([\d.]+)s",
                "supervisor") if t >= wall0 - 0.1]

        await eventually(lambda: len(retries()) >= 3, 30, 0.1, "three failed catalog reads, retried")
        t_down = time.monotonic() - t0
        now = await ps(cfg)
        for n in ("binance", "okx"):
            assert now[n]["status"] == "running" and now[n]["pid"] == rows[n]["pid"] and now[n]["restarts"] == 0
        pg_server.start()
        wall_back = time.time()
        with psycopg.connect(url, autocommit=True) as c:
            cat_b = c.execute("SELECT cat_ex_id FROM cat_exchanges WHERE name='binance'").fetchone()[0]
            cat_o = c.execute("SELECT cat_ex_id FROM cat_exchanges WHERE name='okx'").fetchone()[0]
            c.execute("INSERT INTO symbols (symbol, cat_ex_id, base, quote) VALUES (%s, %s, 'X', 'Y')", (b[5], cat_b))
            c.execute("DELETE FROM symbols WHERE symbol=%s AND cat_ex_id=%s", (o[0], cat_o))
        t_back = time.monotonic()

        async def applied():
            return await rc.hexists("tickers:binance", b[5]) and not await rc.hexists("tickers:okx", o[0])

        await eventually(applied, 40, 0.05, "the catalog change applied after PostgreSQL came back")
        t_apply = time.monotonic() - t_back
    waits = retries()
    # the change lands by the first retry after the return (+ one supervisor tick and the worker)
    last_t, last_wait = [w for w in waits if w[0] <= wall_back][-1]
    bound = max(0.0, last_t + last_wait - wall_back) + 1.5
    record("postgres stopped during run", retries_while_down=len(waits), retry_waits_s=[w for _, w in waits],
           down_s=t_down, change_applied_after_back_s=t_apply, bound_s=bound,
           max_gap_s=max(adv.max_gap.values()))
    assert max(adv.max_gap.values()) < 1.0, adv.max_gap  # collection never paused
    for i, (_, w) in enumerate(waits, start=1):
        assert 0.5 - 0.05 <= w <= min(30.0, 2 ** (i - 1)) + 0.05, waits  # backoff 1 s doubling, cap 30 s
    assert t_apply <= bound, f"change applied {t_apply:.2f}s after PostgreSQL came back (bound {bound:.2f}s)"

    async def counted():  # `ps` shows each worker's last report: the new count comes with its next one
        now = await ps(cfg)
        return now if (now["binance"]["symbols"], now["okx"]["symbols"]) == (5, 3) else None

    now = await eventually(counted, 10, 0.1, "ps to show 5 binance and 3 okx symbols")
    for n in ("binance", "okx"):
        assert now[n]["status"] == "running" and now[n]["pid"] == rows[n]["pid"] and now[n]["restarts"] == 0


async def test_postgres_down_at_up_retries_then_starts(sim, rc, redis_server, pg_server, procs, tmp_path):
    """Row: PostgreSQL down when `tickerctl up` starts -> the supervisor stays up, says why in one
    line per retry (backoff growing), reports no exchange, and starts every worker once it is back."""
    url = _create_db(pg_server)
    b, o = sim.symbols("binance"), sim.symbols("okx")
    cfg = fault_config(tmp_path / "c.toml", sim, {"binance": {}, "okx": {}}, redis_server.url, database_url=url)
    assert db_init(cfg, seed_file(tmp_path / "seed.toml", {"binance": b[:4], "okx": o[:4]})).returncode == 0
    pg_server.kill()
    sup = procs("up", "-c", str(cfg))

    def failures():
        return [(t, m) for t, m in log_lines(
            sup.log, r"catalog from PostgreSQL failed \((.*)\); no catalog yet; retry in ([\d.]+)s", "supervisor")]

    await eventually(lambda: len(failures()) >= 3, 30, 0.1, "three failed catalog reads at start")
    assert sup.poll() is None
    first_error = failures()[0][1].group(1)
    assert "connection" in first_error.lower() and "127.0.0.1" in first_error, first_error
    assert await ps(cfg) == {} and worker_pids(sup.pid) == []
    code, out = await ahealth(cfg)
    assert code == 1 and "no exchange is being collected" in out, out
    pg_server.start()
    t_back, wall_back = time.monotonic(), time.time()
    rows = await eventually(lambda: running(cfg, ("binance", "okx")), 60, 0.2, "both running once PG is back")
    t_running = time.monotonic() - t_back
    (t_catalog, _), = [x for x in log_lines(sup.log, r"catalog: 2 exchanges, 8 symbols", "supervisor")]
    waits = [(t, float(m.group(2))) for t, m in failures()]
    last_t, last_wait = [w for w in waits if w[0] <= wall_back][-1]
    record("postgres down at up", retries_before_back=len(waits), retry_waits_s=[w for _, w in waits],
           catalog_after_back_s=t_catalog - wall_back, running_after_back_s=t_running,
           message=first_error[:120])
    for i, (_, w) in enumerate(waits, start=1):
        assert 0.5 - 0.05 <= w <= min(30.0, 2 ** (i - 1)) + 0.05, waits
    assert t_catalog <= max(wall_back, last_t + last_wait) + 1.0, "catalog not read at the first retry after"
    assert all(r["restarts"] == 0 for r in rows.values())
    for n in ("binance", "okx"):
        await eventually(lambda n=n: _has_all(rc, n, sim.symbols(n)[:4]), 10, what=f"{n} ticks")


async def _has_all(rc, exchange, symbols):
    return len(await ticker_times(rc, exchange, symbols)) == len(symbols)

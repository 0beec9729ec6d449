"""The real supervisor (`tickerctl up`), real worker processes, real Redis, the simulator."""

from __future__ import annotations

import os
import signal
import time

import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.supervisor.helpers import alive, health, ps_json, row, running, worker_pids, write_config


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=8, rate=40), SimExchange("okx", symbols=8, rate=40),
                          SimExchange("bybit", symbols=8, rate=40)]) as s:
        yield s


def catalog(sim, names=("binance", "okx", "bybit")):
    return {n: {"symbols": sim.symbols(n)} for n in names}



async def ticker_time(redis_db, exchange, symbol):
    raw = await redis_db.get(f"ticker_time:{exchange}:{symbol}")
    return float(raw) if raw else 0.0


async def test_up_collects_all_and_kill9_worker_comes_back(sim, redis_db, procs, tmp_path):
    """Three exchanges collect; a worker killed with -9 is restarted while the others keep writing."""
    cfg = write_config(tmp_path / "c.toml", sim, catalog(sim))
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, ("binance", "okx", "bybit")), 40, 0.3, "3 running workers")
    for name in ("binance", "okx", "bybit"):
        assert await redis_db.hlen(f"tickers:{name}") == 8
    assert health(cfg) == (0, "ok: 3 exchanges running, every symbol fresh\n")
    victim = rows["binance"]["pid"]
    okx_sym = sim.symbols("okx")[0]
    before = await ticker_time(redis_db, "okx", okx_sym)
    os.kill(victim, signal.SIGKILL)

    async def restarted():
        r = row(cfg, "binance")
        return r and r["restarts"] >= 1 and r["status"] == "running" and r["pid"] != victim and r

    await eventually(restarted, 30, 0.3, "binance restarted")
    assert await ticker_time(redis_db, "okx", okx_sym) > before  # okx kept writing meanwhile
    assert sup.poll() is None


async def test_sigterm_stops_everything_cleanly(sim, redis_db, procs, tmp_path):
    """SIGTERM: every worker flushes and stops, health says stopped, the supervisor exits 0."""
    cfg = write_config(tmp_path / "c.toml", sim, catalog(sim, ("binance", "okx")))
    sup = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "2 running workers")
    workers = worker_pids(sup.pid)
    assert len(workers) == 2
    sup.send_signal(signal.SIGTERM)
    await eventually(lambda: sup.poll() is not None, 15, what="supervisor exit")
    assert sup.returncode == 0, sup.log.read_text()[-2000:]
    assert not any(alive(p) for p in workers)
    assert {r["status"] for r in ps_json(cfg)} == {"stopped"}
    code, out = health(cfg)
    assert code == 1 and "no supervisor is running" in out


async def test_sigkill_of_supervisor_leaves_no_worker(sim, redis_db, procs, tmp_path):
    """Workers notice their supervisor died and exit within 2 s; a new `up` starts cleanly."""
    cfg = write_config(tmp_path / "c.toml", sim, catalog(sim, ("binance", "okx")))
    sup = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "2 running workers")
    workers = worker_pids(sup.pid)
    sup.kill()
    t0 = time.monotonic()
    await eventually(lambda: not any(alive(p) for p in workers), 5, 0.05, "orphans gone")
    assert time.monotonic() - t0 < 2.0
    sup.wait(5)
    again = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "running again after a new up")
    assert again.poll() is None


async def test_second_up_refuses(sim, redis_db, procs, tmp_path):
    """A second supervisor for the same namespace refuses to start; the first is unaffected."""
    cfg = write_config(tmp_path / "c.toml", sim, catalog(sim, ("binance",)))
    first = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance",)), 40, 0.3, "first supervisor running")
    second = procs("up", "-c", str(cfg))
    assert second.wait(20) == 2
    assert "already runs" in second.log.read_text()
    assert first.poll() is None and row(cfg, "binance")["status"] == "running"


async def test_unknown_exchange_is_parked_others_run(sim, redis_db, procs, tmp_path):
    """An exchange id ccxt does not know is parked as failed with the reason; others run."""
    cat = {**catalog(sim, ("binance",)), "nosuchx": {"venue": "nosuchexchange", "symbols": ["BTC/USDT"]}}
    cfg = write_config(tmp_path / "c.toml", sim, cat)
    procs("up", "-c", str(cfg))

    async def parked():
        r = row(cfg, "nosuchx")
        return r and r["status"] == "failed" and r

    r = await eventually(parked, 30, 0.3, "nosuchx parked")
    assert "unknown ccxt exchange id" in r["last_error"] and r["restarts"] == 0
    await eventually(lambda: running(cfg, ("binance",)), 30, 0.3, "binance running")
    code, out = health(cfg)
    assert code == 1 and out.startswith("nosuchx: failed: ") and "binance" not in out


async def test_crash_loop_backs_off_then_parks(sim, redis_db, procs, tmp_path):
    """A worker that crashes at every start backs off (growing delays) and is parked as failed."""
    cat = {**catalog(sim, ("binance",)), "crashy": {"venue": "binance", "symbols": ["BTC/USDT"],
                                                    "markets": "", "ccxt": {"urls": 7}}}
    cfg = write_config(tmp_path / "c.toml", sim, cat, supervisor={"max_crashes": 3, "restart_base": 1.0})
    sup = procs("up", "-c", str(cfg))
    seen = set()

    async def parked():
        r = row(cfg, "crashy")
        if r:
            seen.add(r["status"])
        return r and r["status"] == "failed" and r

    r = await eventually(parked, 60, 0.2, "crashy parked")
    assert r["restarts"] == 3 and "backoff" in seen
    await eventually(lambda: running(cfg, ("binance",)), 30, 0.3, "binance unaffected")
    assert sup.poll() is None


async def test_sigkill_while_a_worker_is_still_starting_leaves_no_worker(sim, redis_db, procs, tmp_path):
    """A worker still waiting for its markets (a server that accepts and never answers) must not
    outlive its supervisor either: it watches the control pipe from its first moment."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections complete in the backlog; no reply ever comes
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/markets"
        cfg = write_config(tmp_path / "c.toml", sim, {"binance": {"symbols": sim.symbols("binance"),
                                                                  "markets": url}})
        sup = procs("up", "-c", str(cfg))
        workers = await eventually(lambda: worker_pids(sup.pid), 30, 0.1, "a worker process")
        sup.kill()
        t0 = time.monotonic()
        await eventually(lambda: not any(alive(p) for p in workers), 5, 0.05, "starting worker gone")
        assert time.monotonic() - t0 < 2.0
    finally:
        silent.close()


async def test_a_wedged_worker_told_to_restart_by_a_reload_is_killed_after_stop_timeout(sim, redis_db, procs,
                                                                                       tmp_path):
    """SIGSTOP a worker, change its exchange's settings, SIGHUP: the frozen worker cannot act on its
    SIGTERM, so after `stop_timeout` it is SIGKILLed and a new worker collects (it used to stay
    `stopping` forever: only catalog removals and the supervisor's own stop had a deadline)."""
    cfg = write_config(tmp_path / "c.toml", sim, catalog(sim, ("binance", "okx")), supervisor={"stop_timeout": 3.0})
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "2 running workers")
    frozen = rows["binance"]["pid"]
    os.kill(frozen, signal.SIGSTOP)
    try:
        cat = catalog(sim, ("binance", "okx"))
        cat["binance"]["stale_after"] = 7.0
        write_config(cfg, sim, cat, supervisor={"stop_timeout": 3.0})
        hup_at = time.monotonic()
        sup.send_signal(signal.SIGHUP)
        await eventually(lambda: not alive(frozen), 15, 0.1, "the frozen worker killed")
        gone_after = time.monotonic() - hup_at
        assert 3.0 <= gone_after < 6.0, gone_after  # the deadline, then SIGKILL at the next tick

        async def replaced():
            r = (await running(cfg, ("binance",))) or {}
            return r.get("binance", {}).get("pid") not in (None, frozen) and r
        await eventually(replaced, 30, 0.3, "a new binance worker running")
    finally:
        if alive(frozen):
            os.kill(frozen, signal.SIGCONT)
    assert "binance: did not stop within 3s; SIGKILL" in sup.log.read_text()

"""Fault matrix, the supervisor itself: SIGTERM and SIGKILL under load, two `up` at once.

"Under load": each of the three simulated exchanges sends LOAD ticks/s (8 symbols each) and `ps`
must show every worker processing them before the signal is sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import eventually
from tests.faults.helpers import RUNTIME_DIR, fault_config, fresh, health_record, log_lines, ps, record, running
from tests.supervisor.helpers import alive, env, worker_pids
from tests.worker.helpers import all_match

EXCHANGES = ("binance", "okx", "bybit")
LOAD = 400.0  # ticks/s per exchange
STOP_TIMEOUT = 8.0  # write_config's supervisor.stop_timeout


def up_elsewhere(cfg, log, runtime_dir) -> subprocess.Popen[bytes]:
    """`tickerctl up` as if from another environment: same config (Redis, namespace), other runtime dir."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "fullon_ticker_service.cli", "up", "-c", str(cfg)],
                                env={**env(), "XDG_RUNTIME_DIR": str(runtime_dir)}, stdout=out,
                                stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a supervisor started outside the `procs` fixture; SIGKILL it and its workers if needed."""
    kids = worker_pids(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pid in kids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


async def start_loaded(sim, redis_server, procs, tmp_path):
    cfg = fault_config(tmp_path / "c.toml", sim, {n: {"symbols": sim.symbols(n)} for n in EXCHANGES},
                       redis_server.url, supervisor={"stop_timeout": STOP_TIMEOUT})
    sup = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, EXCHANGES), 60, 0.3, "3 running workers")
    for n in EXCHANGES:
        sim.set_rate(n, LOAD)

    async def loaded():
        rows = await ps(cfg)
        return all(rows[n]["ticks_per_s"] > LOAD / 4 for n in EXCHANGES) and rows

    rows = await eventually(loaded, 20, 0.2, f"every worker processing ~{LOAD:g} ticks/s")
    return cfg, sup, rows


async def test_sigterm_under_load_flushes_and_exits_zero(sim, rc, redis_server, procs, tmp_path):
    """Row: SIGTERM to the supervisor under load -> every worker flushes (nothing pending in its final
    record) and exits within stop_timeout; health `stopped`; fullon's active list emptied; exit 0."""
    cfg, sup, rows = await start_loaded(sim, redis_server, procs, tmp_path)
    workers = worker_pids(sup.pid)
    assert sorted(workers) == sorted(rows[n]["pid"] for n in EXCHANGES)
    t0 = time.monotonic()
    sup.send_signal(signal.SIGTERM)
    await eventually(lambda: not any(alive(p) for p in workers), STOP_TIMEOUT + 5, 0.02, "workers exited")
    t_workers = time.monotonic() - t0
    await eventually(lambda: sup.poll() is not None, STOP_TIMEOUT + 5, 0.02, "supervisor exited")
    t_exit = time.monotonic() - t0
    record("SIGTERM under load", load_ticks_per_s=LOAD * len(EXCHANGES), workers_gone_s=t_workers,
           supervisor_exit_s=t_exit, exit_code=sup.returncode)
    assert sup.returncode == 0, sup.log.read_text()[-3000:]
    assert t_exit < STOP_TIMEOUT, f"took {t_exit:.2f}s (deadline {STOP_TIMEOUT}s)"
    assert not log_lines(sup.log, r"did not stop in time|final flush failed", None)
    for n in EXCHANGES:
        h = await health_record(rc, n)
        assert h["status"] == "stopped" and h["pid"] == rows[n]["pid"], h
        assert h["pending"] == 0 and h["written"] > 0 and h["redis"] == "up", h
        assert log_lines(sup.log, r"stopped \(exit 0\)", n)
    assert await rc.hlen("process:active:tick") == 0 and await rc.hlen("process:components") == 0
    assert {r["status"] for r in (await ps(cfg)).values()} == {"stopped"}


async def test_sigkill_supervisor_orphans_gone_in_2s_new_up_clean(sim, rc, redis_server, procs, tmp_path):
    """Row: SIGKILL to the supervisor under load -> no worker process remains after 2 s; a new `up`
    starts cleanly (lock free, fresh workers, no restarts) and collects again."""
    cfg, sup, _ = await start_loaded(sim, redis_server, procs, tmp_path)
    workers = worker_pids(sup.pid)
    assert len(workers) == 3
    t0 = time.monotonic()
    sup.kill()
    await eventually(lambda: not any(alive(p) for p in workers), 10, 0.02, "orphaned workers gone")
    t_gone = time.monotonic() - t0
    sup.wait(5)
    wall = time.time()
    t1 = time.monotonic()
    again = procs("up", "-c", str(cfg))

    async def clean():
        rows = await running(cfg, EXCHANGES)
        return rows and all(rows[n]["pid"] not in workers and rows[n]["restarts"] == 0 for n in EXCHANGES) and rows

    new_rows = await eventually(clean, 60, 0.2, "a new up running every exchange")
    t_up = time.monotonic() - t1
    for n in EXCHANGES:
        await eventually(lambda n=n: fresh(rc, n, sim.symbols(n), wall), 10, 0.05, f"{n} fresh after the new up")
    record("SIGKILL supervisor", load_ticks_per_s=LOAD * len(EXCHANGES), orphans_gone_s=t_gone, new_up_running_s=t_up)
    assert t_gone <= 2.0, f"orphans lived {t_gone:.2f}s"
    assert again.poll() is None
    assert sorted(worker_pids(again.pid)) == sorted(r["pid"] for r in new_rows.values() if r["exchange"] in EXCHANGES)


async def test_two_ups_at_once_second_refuses_first_unaffected(sim, rc, redis_server, procs, tmp_path):
    """Row: two `tickerctl up` started at the same instant on one namespace -> exactly one refuses
    (exit 2, says why) and starts no worker; the other runs every exchange undisturbed."""
    cfg = fault_config(tmp_path / "c.toml", sim, {n: {"symbols": sim.symbols(n)} for n in EXCHANGES},
                       redis_server.url)
    a, b = procs("up", "-c", str(cfg)), procs("up", "-c", str(cfg))
    t0 = time.monotonic()
    await eventually(lambda: a.poll() is not None or b.poll() is not None, 20, 0.02, "one of them to give up")
    t_refused = time.monotonic() - t0
    loser, winner = (a, b) if a.poll() is not None else (b, a)
    assert loser.returncode == 2 and "already runs" in loser.log.read_text(), loser.log.read_text()[-2000:]
    rows = await eventually(lambda: running(cfg, EXCHANGES), 60, 0.3, "the winner running every exchange")
    assert winner.poll() is None
    assert sorted(worker_pids(winner.pid)) == sorted(rows[n]["pid"] for n in EXCHANGES)
    assert all(rows[n]["restarts"] == 0 for n in EXCHANGES)
    for n in EXCHANGES:
        await eventually(lambda n=n: all_match(rc, sim, n), 10, what=f"{n} values")
    record("two ups at once", refused_after_s=t_refused)


async def test_second_up_same_redis_namespace_other_runtime_dir_refuses(sim, rc, redis_server, procs, tmp_path):
    """Row, second half: "on the same Redis namespace" -- a second `up` for the same Redis and
    namespace started from another environment (another XDG_RUNTIME_DIR: another user, a systemd
    unit vs a shell, or another host) must refuse too; the first is unaffected."""
    cfg = fault_config(tmp_path / "c.toml", sim, {n: {"symbols": sim.symbols(n)} for n in ("binance", "okx")},
                       redis_server.url)
    first = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, ("binance", "okx")), 60, 0.3, "the first supervisor running")
    log = tmp_path / "second.log"
    second = up_elsewhere(cfg, log, RUNTIME_DIR / "other-host")
    try:
        t0 = time.monotonic()
        await eventually(lambda: second.poll() is not None or worker_pids(second.pid), 20, 0.05,
                         "the second supervisor to refuse (or to start workers)")
        code, started = second.poll(), worker_pids(second.pid)
        record("second up from another runtime dir", exit_code=code, workers_started=len(started),
               decided_after_s=time.monotonic() - t0)
        assert code == 2 and not started, f"a second supervisor runs on the same namespace ({len(started)} workers)"
        assert "already runs" in log.read_text()
    finally:
        stop(second)
    now = await ps(cfg)
    assert first.poll() is None
    for n in ("binance", "okx"):
        assert now[n]["status"] == "running" and now[n]["pid"] == rows[n]["pid"] and now[n]["restarts"] == 0

"""scripts/check_health: Nagios exit codes from real health records (real supervisor, workers, simulator)."""

from __future__ import annotations

import re
import signal
import time

import orjson

from fullon_ticker_service import health, keys
from fullon_ticker_service.launch import WorkerSpec
from fullon_ticker_service.supervisor import Supervisor
from fullon_ticker_service.supervisor.slot import Slot, Status
from fullon_ticker_service.worker import Worker
from tests.conftest import eventually
from tests.ops.helpers import acheck_health, free_port, running, settings
from tests.supervisor.helpers import NAMESPACE, write_config

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def catalog(sim, names=("binance", "okx")):
    return {n: {"symbols": sim.symbols(n)} for n in names}


async def test_ok_while_running_then_critical_when_the_supervisor_stops(sim, redis_db, procs, tmp_path):
    """Two running exchanges: exit 0 with one OK line each; after SIGTERM: exit 2, supervisor gone, stopped."""
    cfg = write_config(tmp_path / "c.toml", sim, catalog(sim))
    sup = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "2 running workers")
    code, out = await acheck_health(cfg)
    lines = out.splitlines()
    assert code == OK, out
    # the supervisor's pid, not "None" (status.merge used to drop it)
    assert lines[0].startswith(f"TICKER OK - 2/2 exchanges running; supervisor pid {sup.pid} on "), out
    assert " | " in lines[0], out
    assert "binance_age=" in lines[0] and ";60;180;0" in lines[0], out
    assert [ln.split(",")[0] for ln in lines[1:]] == ["OK: binance running", "OK: okx running"], out
    assert all("6 symbols" in ln for ln in lines[1:]), out

    sup.send_signal(signal.SIGTERM)
    await eventually(lambda: sup.poll() is not None, 20, what="supervisor exit")
    assert sup.returncode == 0
    code, out = await acheck_health(cfg)
    lines = out.splitlines()
    assert code == CRITICAL, out
    assert lines[0].startswith("TICKER CRITICAL - no supervisor running, 0/2 exchanges running, 2 critical"), out
    assert lines[1:] == ["CRITICAL: binance stopped", "CRITICAL: okx stopped"], out


async def test_silent_exchange_is_warning_then_critical_by_last_tick_age(sim, redis_db, procs, tmp_path):
    """An exchange whose socket stays open but silent: WARNING past --warn-age, CRITICAL past --crit-age."""
    cfg = write_config(tmp_path / "c.toml", sim, catalog(sim))
    procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "2 running workers")
    await sim.fault("binance", "stall", seconds=40)

    def judged(want: int, *args: str):
        async def check():
            code, out = await acheck_health(cfg, *args)
            return code == want and out
        return check

    out = await eventually(judged(WARNING, "--warn-age", "1.5", "--crit-age", "60"), 20, 0.2, "WARNING")
    lines = out.splitlines()
    assert lines[0].startswith("TICKER WARNING - 1/2 exchanges running, 1 warning") or \
        lines[0].startswith("TICKER WARNING - 2/2 exchanges running, 1 warning"), out
    assert lines[1].startswith("WARNING: binance ") and "(warning above 1.5s)" in lines[1], out
    assert lines[2].startswith("OK: okx running"), out

    out = await eventually(judged(CRITICAL, "--warn-age", "1.5", "--crit-age", "4"), 20, 0.2, "CRITICAL")
    lines = out.splitlines()
    assert lines[1].startswith("CRITICAL: binance ") and "(critical above 4s)" in lines[1], out
    assert lines[2].startswith("OK: okx running"), out


async def test_crash_loop_is_warning_in_backoff_then_critical_when_parked(sim, redis_db, procs, tmp_path):
    """A worker crashing at every start: WARNING while a restart is scheduled, CRITICAL once parked failed."""
    cat = {**catalog(sim, ("binance",)), "crashy": {"venue": "binance", "symbols": ["BTC/USDT"],
                                                    "markets": "", "ccxt": {"urls": 7}}}
    cfg = write_config(tmp_path / "c.toml", sim, cat,
                       supervisor={"max_crashes": 3, "restart_base": 4.0, "restart_cap": 4.0})
    procs("up", "-c", str(cfg))

    def judged(want: int, *texts: str):
        async def check():
            code, out = await acheck_health(cfg)
            return code == want and all(t in out for t in texts) and out
        return check

    # crashy can reach its first backoff before binance's first tick: wait for both (4 s of backoff)
    out = await eventually(judged(WARNING, "WARNING: crashy backoff", "OK: binance running"), 40, 0.1,
                           "crashy in backoff while binance runs")
    assert out.splitlines()[0].startswith("TICKER WARNING - ") and "OK: binance running" in out, out
    out = await eventually(judged(CRITICAL, "CRITICAL: crashy failed"), 60, 0.3, "crashy parked")
    assert out.splitlines()[0].startswith("TICKER CRITICAL - 1/2 exchanges running, 1 critical") and \
        "OK: binance running" in out, out


async def test_status_words_from_records_built_by_the_real_builders(redis_db, tmp_path):
    """starting and stale records (the worker's own report builder) are WARNING, a parked exchange CRITICAL."""
    from tests.supervisor.helpers import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[service]\nnamespace = "{NAMESPACE}"\nhealth_interval = 5.0\n[redis]\n'
                   f'host = "{SHARED_REDIS_HOST}"\nport = {SHARED_REDIS_PORT}\ndb = {TEST_REDIS_DB}\n')
    s = settings(cfg)
    sup = Supervisor(s)
    try:
        for name, st in (("starter", "starting"), ("silent", "running"), ("parked", "failed")):
            sup.slots[name] = Slot(name, ("BTC/USDT",), status=Status(st),
                                   last_error="boom" if st == "failed" else "")
        state = sup.state()
    finally:
        sup.cluster.close()
    await redis_db.set(keys.supervisor_state(NAMESPACE, state["host_id"]), orjson.dumps(state))
    starter_w = Worker(WorkerSpec("starter", ("BTC/USDT",), s))
    starter = starter_w.reporter.record()
    silent_w = Worker(WorkerSpec("silent", ("BTC/USDT",), s))
    silent = {**silent_w.reporter.record(health.RUNNING), "last_write_age_s": 0.5,
              "updated_at": time.time() - 30.0}  # not refreshed for 6 intervals
    await redis_db.set(keys.health(NAMESPACE, "starter"), orjson.dumps(starter))
    await redis_db.set(keys.health(NAMESPACE, "silent"), orjson.dumps(silent))

    code, out = await acheck_health(cfg, "--warn-age", "100", "--crit-age", "200")
    lines = out.splitlines()
    assert code == CRITICAL, out
    assert lines[0].startswith("TICKER CRITICAL - 0/3 exchanges running, 1 critical, 2 warning; supervisor pid "), out
    assert lines[1] == "CRITICAL: parked failed; last error: boom", out
    assert re.match(r"WARNING: silent stale, last write 3\d\.\ds ago, 1 symbols", lines[2]), out
    assert lines[3] == "WARNING: starter starting", out  # nothing written yet: no age to judge

    await redis_db.delete(keys.health(NAMESPACE, "parked"))
    state["exchanges"].pop("parked")
    await redis_db.set(keys.supervisor_state(NAMESPACE, state["host_id"]), orjson.dumps(state))
    code, out = await acheck_health(cfg, "--warn-age", "100", "--crit-age", "200")
    assert code == WARNING and out.startswith("TICKER WARNING - 0/2 exchanges running, 2 warning"), out
    code, out = await acheck_health(cfg, "--warn-age", "10", "--crit-age", "20")  # the silent one's age: 30 s
    assert code == CRITICAL, out
    assert re.search(r"\nCRITICAL: silent stale, last write 3\d\.\ds ago, .*\(critical above 20s\)\n", out), out


async def test_unknown_when_redis_is_unreachable_or_usage_is_wrong(tmp_path):
    """Redis refused, a bad config or bad options: exit 3 (Nagios UNKNOWN), never 2."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[redis]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    code, out = await acheck_health(cfg)
    assert code == UNKNOWN and out.startswith("TICKER UNKNOWN - cannot read Redis at redis://127.0.0.1:"), out

    bad = tmp_path / "bad.toml"
    bad.write_text("[service]\nnamespace = 'x'\nhealth_intervall = 5\n")
    code, out = await acheck_health(bad)
    assert code == UNKNOWN and "configuration error: service.health_intervall: unknown setting" in out, out

    code, out = await acheck_health(cfg, "--warn-age", "10", "--crit-age", "5")
    assert code == UNKNOWN and "need 0 < --warn-age <= --crit-age" in out, out
    code, out = await acheck_health(cfg, "--no-such-option")
    assert code == UNKNOWN and "unrecognized arguments: --no-such-option" in out, out

"""Health that tells the truth: each case that used to show `running` / `health` exit 0 while users
read stale or no prices, with real processes (supervisor, workers, simulator, a private redis-server).

Each fault must make `tickerctl health` exit 1 naming the exchange and the cause within a stated
time, and `health` must return to exit 0 once the fault is lifted.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import pytest
from redis.exceptions import OutOfMemoryError

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.faults.helpers import ahealth, fault_config, ps, record, running
from tests.supervisor.helpers import env, ps_json

DETECT_S = 15.0  # every fault below is named by `health` within this
RECOVER_S = 30.0  # and every exchange is healthy again within this once it is lifted
SETTINGS = {"symbol_stale_after": 3.0, "first_tick_grace": 3.0, "stale_after": 30.0}


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(v, symbols=6, rate=40) for v in ("binance", "okx", "bybit", "kraken",
                                                                        "coinbase")]) as s:
        yield s


def _cfg(tmp_path, sim, redis_server, names):
    return fault_config(tmp_path / "c.toml", sim, {n: {"symbols": sim.symbols(n), **SETTINGS} for n in names},
                        redis_server.url)


async def _health_until(cfg, want_code: int, must: list[str], within: float) -> tuple[float, str]:
    """Poll `tickerctl health` until it exits `want_code` with a line matching every pattern."""
    t0 = time.monotonic()

    async def check():
        code, out = await ahealth(cfg)
        return code == want_code and all(re.search(p, out, re.M) for p in must) and out

    out = await eventually(check, within, 0.3, f"health exit {want_code} naming {must}")
    return time.monotonic() - t0, out


async def test_each_silent_failure_is_named_by_health_and_clears(sim, rc, redis_server, procs, tmp_path):
    """Five faults at once on five exchanges, each named with its cause; then all lifted:
    - binance: its clock 1 h ahead (every tick rejected as future) -> clock-skew +3600s;
    - okx: one symbol muted -> degraded 5/6, the symbol named;
    - bybit: a ticker_time 1 h in the future already in Redis -> that symbol frozen, with the time;
    - kraken: no symbol ever ticks (a never-ticked worker) -> no-data, "no tick received yet";
    - coinbase: the exchange refuses connections (a dead subscription) -> no-data with the error."""
    names = ("binance", "okx", "bybit", "kraken", "coinbase")
    for s in sim.symbols("kraken"):
        await sim.fault("kraken", "mute", symbol=s)
    await sim.fault("coinbase", "refuse", seconds=20)
    cfg = _cfg(tmp_path, sim, redis_server, names)
    procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance", "okx", "bybit")), 60, 0.3, "three exchanges running")

    muted, frozen = sim.symbols("okx")[0], sim.symbols("bybit")[1]
    await sim.fault("binance", "skew", seconds=3600)
    await sim.fault("okx", "mute", symbol=muted)
    await rc.set(f"ticker_time:bybit:{frozen}", repr(time.time() + 3600))
    took, _ = await _health_until(cfg, 1, [
        r"^binance: clock-skew \+3600s: the exchange's timestamps run 3\d{3}s ahead",
        rf"^okx: degraded, 5/6 symbols fresh; not written for more than 3s: {re.escape(muted)}$",
        rf"^bybit: {re.escape(frozen)} frozen: Redis holds a ticker_time \+3\d{{3}}s in the future",
        r"^kraken: no-data: nothing written since the start \d+s ago \(no tick received yet\)",
        r"^coinbase: no-data: nothing written since the start .*(503|Service Unavailable|refused)",
    ], DETECT_S)
    record("health: five silent failures named", detected_s=took)
    rows = await ps(cfg)
    assert rows["binance"]["status"] == "clock-skew" and rows["binance"]["detail"] == "+3600s"
    assert rows["okx"]["status"] == "degraded" and rows["okx"]["cover"] == [5, 6]
    assert rows["kraken"]["status"] == "no-data" and rows["kraken"]["last_tick_age_s"] is None

    await sim.fault("binance", "skew", seconds=0)
    await sim.fault("okx", "resume")
    await rc.delete(f"ticker_time:bybit:{frozen}")
    await sim.fault("kraken", "resume")
    took, _ = await _health_until(cfg, 0, [r"^ok: 5 exchanges running"], RECOVER_S)
    record("health: five silent failures cleared", recovered_s=took)
    rows = await ps(cfg)
    assert rows["coinbase"]["last_error"], rows["coinbase"]  # its refused connections, still shown...

    async def cleared():
        return (await ps(cfg))["coinbase"]["last_error"] == ""
    await eventually(cleared, 10, 0.5, "coinbase's old error cleared after running cleanly (10 intervals)")

    await sim.fault("binance", "skew", seconds=-3600)  # behind: stored with its true time, but reported
    took, _ = await _health_until(cfg, 1, [r"^binance: clock-skew -3600s: the exchange's timestamps run 3\d{3}s "
                                           r"behind this host"], DETECT_S)
    await sim.fault("binance", "skew", seconds=0)
    await _health_until(cfg, 0, [r"^ok: 5 exchanges running"], RECOVER_S)
    record("health: exchange clock behind", detected_s=took)


async def test_redis_out_of_memory_is_named_as_such_and_clears(sim, rc, redis_server, procs, tmp_path):
    """Redis answers but refuses writes (maxmemory, noeviction): every exchange shows `redis-error
    OOM`, `health` says Redis refuses writes (not "no supervisor", not "unreachable"), the worker
    says it once; freeing memory makes everything healthy again."""
    cfg = _cfg(tmp_path, sim, redis_server, ("binance", "okx"))
    sup = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance", "okx")), 60, 0.3, "binance and okx running")
    used = int((await rc.info("memory"))["used_memory"])
    await rc.config_set("maxmemory-policy", "noeviction")
    await rc.config_set("maxmemory", str(used + 2 * 2**20))
    filler = "x" * 2**16
    with pytest.raises(OutOfMemoryError):  # fill Redis until it refuses (a bounded loop)
        for i in range(200):
            await rc.set(f"filler:{i}", filler)
    # right at the limit a write that replaces a value of the same size may still pass: go below it
    await rc.config_set("maxmemory", str(int((await rc.info("memory"))["used_memory"]) - 2**20))
    took, out = await _health_until(cfg, 1, [
        r"^Redis refuses writes: OOM: used_memory .* maxmemory-policy noeviction",
        r"^binance: Redis refuses our writes \(OOM: command not allowed when used memory > 'maxmemory'\.\); values",
        r"^okx: Redis refuses our writes \(OOM",
    ], DETECT_S)
    assert "no supervisor is running" not in out and "unreachable" not in out, out
    record("health: Redis out of memory", detected_s=took)
    await asyncio.sleep(3)  # let the failures repeat: they must not be one line each
    await rc.delete(*[f"filler:{i}" for i in range(200)])
    await rc.config_set("maxmemory", "0")
    took, _ = await _health_until(cfg, 0, [r"^ok: 2 exchanges running"], RECOVER_S)
    record("health: Redis out of memory cleared", recovered_s=took)
    log = sup.log.read_text()
    for name in ("binance", "okx"):
        failing = [ln for ln in log.splitlines() if name in ln and "Redis writes failing (OOM" in ln]
        assert len(failing) == 1, failing  # said once, not once per flush
    assert "unreachable" not in log, log[-2000:]  # Redis answered all along: it refused, it was not away


async def test_a_paused_redis_is_a_read_error_not_an_empty_table(sim, rc, redis_server, procs, tmp_path):
    """CLIENT PAUSE: `ps` and `health` say Redis did not answer (exit 2), never an empty table."""
    cfg = _cfg(tmp_path, sim, redis_server, ("binance",))
    procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance",)), 60, 0.3, "binance running")
    await rc.execute_command("CLIENT", "PAUSE", "8000", "ALL")
    code, out = await ahealth(cfg)
    assert code == 2 and "cannot read Redis" in out and "timeout" in out, (code, out)
    with pytest.raises(subprocess.CalledProcessError, match="returned non-zero exit status 2"):
        await asyncio.to_thread(ps_json, cfg)
    await _health_until(cfg, 0, [r"^ok: 1 exchanges running"], RECOVER_S)


async def test_redis_holding_writes_back_is_named_not_read_as_nothing_running(sim, rc, redis_server, procs,
                                                                              tmp_path):
    """CLIENT PAUSE WRITE (what a failover does): reads still answer, writes wait, so every health
    record expires. `health` must name the held-back writes (exit 1), `ps` must not show an empty
    table as if nothing ran (exit 2, saying why); both recover once writes flow again."""
    cfg = _cfg(tmp_path, sim, redis_server, ("binance",))
    procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance",)), 60, 0.3, "binance running")
    await rc.execute_command("CLIENT", "PAUSE", "9000", "WRITE")
    t0 = time.monotonic()
    took, out = await _health_until(cfg, 1, [r"^Redis refuses writes: writes get no answer within 1s",
                                             r"^no exchange has a health record \(they cannot be written"], DETECT_S)
    assert "no supervisor is running" not in out and "no exchange is being collected" not in out, out
    proc = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "fullon_ticker_service.cli", "ps", "-c",
                                                    str(cfg)], env=env(), capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "Redis refuses writes: writes get no answer" in proc.stderr, proc
    assert time.monotonic() - t0 < 9.0, "the pause ended before the checks: they proved nothing"
    recovered, _ = await _health_until(cfg, 0, [r"^ok: 1 exchanges running"], RECOVER_S)
    record("health: Redis holds writes back (CLIENT PAUSE WRITE)", named_s=took, recovered_after_check_s=recovered)

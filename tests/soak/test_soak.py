"""Soak: several exchanges at a steady high rate through the real supervisor, with a reconnect
every few seconds, sampling each worker's RSS, open descriptors and asyncio tasks; fails on growth.

Length and load come from the environment (the defaults keep `make test` short; `make soak`
runs 30 minutes):
  SOAK_SECONDS (30)   SOAK_RATE ticks/s per exchange (400)   SOAK_SYMBOLS per exchange (100)
  SOAK_REPORT         path of a JSON report (samples and verdict), written when set

Bounds (after a warm-up of 20 % of the run, at least 10 s, when caches and buffers have filled):
RSS may grow by at most 8 MB + 2 %, descriptors by 2, tasks by 3, judged on the median of the
last quarter of the samples against the median of the first samples after warm-up, so that one
sample caught mid-reconnect does not decide. Every stored value must equal the last one sent.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import orjson
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.supervisor.helpers import running, write_config
from tests.worker.helpers import all_match

SECONDS = float(os.environ.get("SOAK_SECONDS", "30"))
RATE = float(os.environ.get("SOAK_RATE", "400"))
SYMBOLS = int(os.environ.get("SOAK_SYMBOLS", "100"))
VENUES = ("binance", "okx", "bybit", "kraken")
NS = "tst"


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(v, symbols=SYMBOLS, rate=RATE) for v in VENUES]) as s:
        yield s


def grew_too_much(name: str, first: float, last: float) -> str | None:
    limits = {"rss_mb": 8 + 0.02 * first, "fds": 2, "tasks": 3}
    return f"{name} grew {first:g} -> {last:g} (limit +{limits[name]:g})" if last - first > limits[name] else None


async def test_soak(sim, redis_db, procs, tmp_path):
    cfg = write_config(tmp_path / "c.toml", sim, {v: {"symbols": sim.symbols(v)} for v in VENUES})
    procs("up", "-c", str(cfg))

    rows = await eventually(lambda: running(cfg, VENUES), 60, 0.5, "every exchange running")
    pids = {v: rows[v]["pid"] for v in VENUES}
    samples: list[dict] = []
    t0 = time.monotonic()
    next_fault = t0 + 5
    victim = 0
    while (now := time.monotonic()) - t0 < SECONDS:
        if now >= next_fault:  # exercise the reconnect path all along (a leak there is the usual one)
            await sim.fault(VENUES[victim % len(VENUES)], "close")
            victim += 1
            next_fault = now + 5
        sample = {"t": round(now - t0, 1)}
        for v in VENUES:
            raw = await redis_db.get(f"{NS}:health:{v}")
            rec = orjson.loads(raw) if raw else {}
            assert rec.get("pid") == pids[v], f"{v} worker restarted during the soak: {rec}"
            sample[v] = {k: rec.get(k) for k in ("rss_mb", "fds", "tasks", "ticks", "reconnects")}
        samples.append(sample)
        await asyncio.sleep(1.0)

    warm = max(10.0, SECONDS * 0.2)
    steady = [s for s in samples if s["t"] >= warm]
    assert len(steady) >= 8, f"too few samples after warm-up: {len(steady)}"
    head, tail = steady[: max(3, len(steady) // 4)], steady[-max(3, len(steady) // 4):]
    problems, summary = [], {}
    for v in VENUES:
        for k in ("rss_mb", "fds", "tasks"):
            first = statistics.median(s[v][k] for s in head)
            last = statistics.median(s[v][k] for s in tail)
            summary[f"{v}.{k}"] = (first, last, max(s[v][k] for s in steady))
            if (p := grew_too_much(k, first, last)) is not None:
                problems.append(f"{v}: {p}")
        assert samples[-1][v]["reconnects"] >= 1, f"{v} was never reconnected: the soak did not exercise it"
    ticks = sum(samples[-1][v]["ticks"] - steady[0][v]["ticks"] for v in VENUES) / (samples[-1]["t"] - steady[0]["t"])

    for v in VENUES:  # nothing lost: pause each feed and compare with what was last sent
        sim.set_rate(v, 0)
    for v in VENUES:
        await eventually(lambda v=v: all_match(redis_db, sim, v), 20, 0.2, f"{v} equals the last quotes sent")

    report = {"seconds": SECONDS, "rate_per_exchange": RATE, "symbols": SYMBOLS, "ticks_per_s_total": round(ticks),
              "summary": {k: {"start": a, "end": b, "max": c} for k, (a, b, c) in summary.items()},
              "problems": problems, "samples": samples}
    if os.environ.get("SOAK_REPORT"):
        Path(os.environ["SOAK_REPORT"]).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))  # noqa: ASYNC240
    print(f"\nsoak {SECONDS:g}s, {ticks:.0f} ticks/s stored in total; start -> end (max) per worker:")
    for k, (a, b, c) in summary.items():
        print(f"  {k:22s} {a:g} -> {b:g} ({c:g})")
    assert not problems, problems

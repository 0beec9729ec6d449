"""The benchmark's quick mode runs end to end and produces every number it promises.

It starts the real processes (simulator, observer, ccxt-only, the worker, the upstream pattern,
`tickerctl up` with two workers) against the shared Redis in this test's database, so it needs
what the other process tests need and takes about 40 s on the 2-core machine.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


def number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    runtime = os.environ.get("TEST_RUNTIME_DIR", "/tmp/tickerctl-tests")
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--redis-host", SHARED_REDIS_HOST, "--redis-port",
         str(SHARED_REDIS_PORT), "--redis-db", str(TEST_REDIS_DB), "--runtime-dir", runtime, "--out", str(out)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    res = orjson.loads(proc.stdout.strip().splitlines()[-1])
    assert (out / "bench.json").is_file() and (out / "bench.txt").read_text().startswith("machine:")
    return res


@pytest.mark.slow
def test_every_design_produces_rates_cpu_and_memory(results: dict) -> None:
    """ccxt-only, ours and upstream each report a positive rate, CPU per tick and RSS/PSS."""
    assert results["errors"] == []
    rows = {r["design"]: r for r in results["single"]}
    assert set(rows) == {"ccxt-only", "ours", "upstream"}
    for r in rows.values():
        assert r["ticks_per_s"] > 0 and r["sent_per_s"] > 0 and r["parsed_per_s"] > 0, r
        assert number(r["cpu_us_per_tick"]) and r["cpu_us_per_tick"] > 0, r
        assert r["rss"] > 0 and r["pss"] > 0, r
    assert results["machine"]["nproc"] >= 1 and results["machine"]["ccxt"]


@pytest.mark.slow
def test_writers_report_latency_staleness_and_round_trips(results: dict) -> None:
    """Both Redis writers get observer latency percentiles, a stale count and round trips per tick."""
    rows = {r["design"]: r for r in results["single"]}
    for name in ("ours", "upstream"):
        r = rows[name]
        lat = r["latency"]
        assert lat["n"] > 0 and all(number(lat[k]) and lat[k] >= 0 for k in ("p50", "p95", "p99", "max")), r
        assert lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"], lat
        assert r["stale"] >= 0 and r["compared"] == results["params"]["symbols"], r
        assert r["written_per_s"] > 0 and r["rt_per_tick"] > 0, r
    assert rows["upstream"]["rt_per_tick"] == 3.0
    assert 0 < rows["ours"]["rt_per_flush"] <= 1.0
    assert any(line.strip().startswith("300:") for line in results["ratios"]), results["ratios"]


@pytest.mark.slow
def test_multi_worker_and_startup_numbers(results: dict) -> None:
    """Two workers through `tickerctl up` report aggregate rate, per-worker latency and memory; startup is timed."""
    (multi,) = results["multi"]
    (step,) = multi["steps"]
    assert step["aggregate_ticks_per_s"] > 0 and len(step["per_worker"]) == 2
    assert all(p["ticks_per_s"] > 0 and number(p["latency"]["p99"]) for p in step["per_worker"])
    mem = multi["memory"]
    assert len(mem["worker_pss_mb"]) == 2 and all(x > 0 for x in mem["worker_pss_mb"]) and mem["tree_pss_mb"] > 0
    (startup,) = results["startup"]
    assert number(startup["all_s"]) and 0 < startup["all_s"] < 90 and len(startup["first_tick_s"]) == 2

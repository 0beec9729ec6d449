"""The benchmark's quick mode runs end to end and produces every number it promises.

It starts the real processes (simulator, observer, ccxt-only, the worker with each decoder, the
upstream pattern, cryptofeed with our callback and with its own Redis backend, `tickerctl up` with
two workers) against the shared Redis in this test's database, so it needs what the other process
tests need and takes about 45 s on the 2-core machine. cryptofeed and matplotlib are optional (the
`bench` extra): without them the bench says so in one line and the test checks that line instead.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"
HAVE_CRYPTOFEED = importlib.util.find_spec("cryptofeed") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


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
    res["_out"] = str(out)
    return res


def ours_designs(results: dict) -> set[str]:
    """ours-native and ours-ccxt, or `ours` once when the worker's config has no `decoder` key (noted)."""
    if any(n.startswith("decoder:") for n in results["notes"]):
        return {"ours"}
    return {"ours-native", "ours-ccxt"}


@pytest.mark.slow
def test_every_design_produces_rates_cpu_and_memory(results: dict) -> None:
    """Every design on each stream reports a positive rate, CPU per tick and RSS/PSS."""
    assert results["errors"] == []
    rows = {(r["design"], r["stream"]): r for r in results["single"]}
    ours = ours_designs(results)
    primary = results["primary"]
    assert primary in ours
    peers = {("cryptofeed", "bookTicker"), ("cryptofeed-redis", "bookTicker")} if HAVE_CRYPTOFEED else set()
    assert set(rows) == {("ccxt-only", "ticker"), ("upstream", "ticker"), *((o, "ticker") for o in ours),
                         (primary, "bookTicker"), *peers}
    if not HAVE_CRYPTOFEED:
        assert any(n.startswith("cryptofeed: not installed") for n in results["notes"]), results["notes"]
    for r in rows.values():
        assert r["ticks_per_s"] > 0 and r["sent_per_s"] > 0 and r["parsed_per_s"] > 0, r
        assert number(r["cpu_us_per_tick"]) and r["cpu_us_per_tick"] > 0, r
        assert r["rss"] > 0 and r["pss"] > 0, r
    assert results["machine"]["nproc"] >= 1 and results["machine"]["ccxt"]
    speed = results["machine"]["python_speed"]  # the host's speed at start and end, to compare runs
    assert len(speed) == 2 and all(x > 0 for x in speed)
    assert "M steps/s at start" in (Path(results["_out"]) / "bench.txt").read_text()


@pytest.mark.slow
def test_writers_report_latency_staleness_and_round_trips(results: dict) -> None:
    """Every Redis writer gets observer latency percentiles, a stale count and writes seen by the observer
    (cryptofeed's own backend publishes nothing: its ZADDs are seen on a MONITOR connection)."""
    rows = {(r["design"], r["stream"]): r for r in results["single"]}
    writers = [k for k in rows if k[0] != "ccxt-only"]
    for key in writers:
        r = rows[key]
        lat = r["latency"]
        assert lat["n"] > 0 and lat["unmatched"] == 0, (key, r)
        assert all(number(lat[k]) and lat[k] >= 0 for k in ("p50", "p95", "p99", "max")), (key, r)
        assert lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"], lat
        assert r["stale"] == 0 and r["compared"] == results["params"]["symbols"], (key, r)
        assert r["written_per_s"] > 0, (key, r)
    assert rows[("upstream", "ticker")]["rt_per_tick"] == 3.0
    for o in ours_designs(results):
        assert 0 < rows[(o, "ticker")]["rt_per_flush"] <= 1.0
    if HAVE_CRYPTOFEED:
        assert rows[("cryptofeed", "bookTicker")]["rt_per_tick"] == 1.0
        assert rows[("cryptofeed-redis", "bookTicker")]["history_entries"] > results["params"]["symbols"]
        (peer,) = results["peers"]
        assert peer["offered"] == 300 and set(peer["ratios"]) == {
            f"{results['primary']}/cryptofeed", f"{results['primary']}/cryptofeed-redis"}
    assert any(line.split()[:2] == ["ticker", "300:"] for line in results["ratios"]), results["ratios"]


@pytest.mark.slow
def test_plot_or_one_line_why_not(results: dict) -> None:
    """bench.png is drawn when matplotlib is there; otherwise the report says why in one line."""
    png = Path(results["_out"]) / "bench.png"
    if HAVE_MATPLOTLIB:
        assert results["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert results["plot"].startswith("skipped: matplotlib not installed") and not png.exists()


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

"""examples/export_csv.py as a process: one CSV row per cached ticker, values equal to Redis."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime

from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB
from tests.examples.conftest import VENUE
from tests.examples.helpers import put_tick, run, script_env
from tests.worker.helpers import stored

COLUMNS = ["exchange", "symbol", "price", "bid", "ask", "last", "volume", "change", "percentage",
           "time", "epoch", "age_s"]


def num(cell: str) -> float | None:
    return None if cell == "" else float(cell)


def check_rows(rows: list[dict[str, str]], want: dict[str, dict[str, dict]], started: float) -> None:
    keys = [(r["exchange"], r["symbol"]) for r in rows]
    assert keys == sorted((ex, s) for ex, ticks in want.items() for s in ticks)
    for r in rows:
        w = want[r["exchange"]][r["symbol"]]
        for f in ("price", "bid", "ask", "last", "volume", "change", "percentage"):
            assert num(r[f]) == w[f], (f, r, w)  # exact: floats are written as repr
        assert float(r["epoch"]) == w["time"]
        assert r["time"].endswith("Z")
        assert abs(datetime.fromisoformat(r["time"]).timestamp() - w["time"]) < 0.001
        age = float(r["age_s"])
        assert started - w["time"] - 0.01 <= age <= time.time() - w["time"] + 0.01


async def test_csv_has_a_row_per_ticker_with_the_stored_values(live, redis_db, tmp_path):
    """A real worker's exchange and a second one, written to a file: header, one row per
    exchange/symbol sorted, prices exactly as stored (and as the simulator sent), ISO time and age."""
    await put_tick(redis_db, "testex", "AAA/USD", 1.5, when=time.time() - 42)
    await put_tick(redis_db, "testex", "BBB/USD", 2.25, bid=None, ask=None, change=None)
    want = {ex: await stored(redis_db, ex) for ex in (VENUE, "testex")}
    for symbol, q in live.last_good(VENUE).items():
        assert want[VENUE][symbol]["price"] == q.last

    out = tmp_path / "snap.csv"
    started = time.time()
    rc, stdout, err = await run("export_csv.py", "-o", str(out), cwd=tmp_path)
    assert rc == 0, err
    assert stdout == "" and "8 tickers written" in err
    assert [p.name for p in tmp_path.iterdir()] == ["snap.csv"]  # no temporary file left behind
    with out.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    check_rows(rows, want, started)
    empty = next(r for r in rows if r["symbol"] == "BBB/USD")
    assert empty["bid"] == empty["ask"] == empty["change"] == ""
    assert 41.5 < float(next(r for r in rows if r["symbol"] == "AAA/USD")["age_s"]) < 60


async def test_one_exchange_to_stdout_with_settings_from_a_config_file(redis_db, tmp_path):
    """`--exchange` filters; `-c` supplies the Redis settings when the environment has none."""
    for i, ex in enumerate(("one", "two")):
        for s in ("AAA/USD", "BBB/USD"):
            await put_tick(redis_db, ex, s, 10.0 + i + len(s) / 100)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[redis]\nhost = "{SHARED_REDIS_HOST}"\nport = {SHARED_REDIS_PORT}\ndb = {TEST_REDIS_DB}\n')
    env = {k: v for k, v in script_env().items() if not k.startswith("REDIS_")}
    started = time.time()
    rc, stdout, err = await run("export_csv.py", "--exchange", "two", "-c", str(cfg), cwd=tmp_path, env=env)
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(stdout)))
    check_rows(rows, {"two": await stored(redis_db, "two")}, started)
    assert len(rows) == 2


async def test_empty_cache_writes_the_header_and_exits_1(redis_db, tmp_path):
    rc, stdout, err = await run("export_csv.py", cwd=tmp_path)
    assert rc == 1
    assert stdout == ",".join(COLUMNS) + "\n" and "0 tickers written" in err


async def test_redis_unreachable_exits_2_with_one_line(tmp_path):
    rc, stdout, err = await run("export_csv.py", cwd=tmp_path, env=script_env(REDIS_PORT="1"))
    assert rc == 2 and stdout == ""
    assert err.startswith("export_csv: ") and "Traceback" not in err

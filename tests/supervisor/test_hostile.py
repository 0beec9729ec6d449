"""Hostile input through the real supervisor: oversized and deeply nested frames, unicode symbols,
SQL-looking catalog rows, a config file with wrong types. Clear errors, other exchanges unaffected,
nothing written that should not be."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import psycopg
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.supervisor.helpers import env, ps_json, row, running, write_config
from tests.supervisor.test_catalog_pg import database, db_init, seed_file  # noqa: F401  (fixture)
from tests.worker.helpers import all_match, stored

NS = "tst"


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=6, rate=40), SimExchange("okx", symbols=6, rate=40)]) as s:
        yield s



async def health_record(redis_db, exchange):
    raw = await redis_db.get(f"{NS}:health:{exchange}")
    return orjson.loads(raw) if raw else {}


def ticker_frame(market_id: str, price: str, ts_ms: int) -> str:
    """A Binance 24hrTicker frame as the exchange documents it."""
    return orjson.dumps({"e": "24hrTicker", "E": ts_ms, "s": market_id, "p": "0", "P": "0", "w": price, "x": price,
                         "c": price, "Q": "1", "b": price, "B": "1", "a": price, "A": "1", "o": price, "h": price,
                         "l": price, "v": "1", "q": "1", "O": ts_ms - 86_400_000, "C": ts_ms, "F": 1, "L": 2,
                         "n": 2}).decode()


async def test_oversized_nested_and_unicode_frames(sim, redis_db, procs, tmp_path):
    """A frame over `max_frame_bytes` drops only that connection (reconnect, no crash); a deeply nested
    JSON frame (20k deep) is counted malformed and reconnected; a unicode market id writes nothing. okx never
    notices, and binance's stored values end equal to the last good ones sent."""
    cat = {"binance": {"symbols": sim.symbols("binance"), "max_frame_bytes": 65536},
           "okx": {"symbols": sim.symbols("okx")}}
    cfg = write_config(tmp_path / "c.toml", sim, cat)
    sup = procs("up", "-c", str(cfg))
    rows = await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "both running")
    okx_sym = sim.symbols("okx")[0]
    okx_time = float(await redis_db.get(f"ticker_time:okx:{okx_sym}"))

    # 1. 200 KiB of valid JSON, over the 64 KiB limit
    before = (await health_record(redis_db, "binance"))["reconnects"]
    big = orjson.dumps({"e": "24hrTicker", "s": "BTCUSDT", "pad": "x" * 200_000}).decode()
    assert await sim.send_raw("binance", big) >= 1

    async def reconnected():
        rec = await health_record(redis_db, "binance")
        return rec.get("reconnects", 0) > before and "exceeds" in (rec.get("last_error") or "") + sup.log.read_text()

    await eventually(reconnected, 20, 0.1, "binance reconnected after the oversized frame")
    assert "size limit 65536" in sup.log.read_text()  # the one log line names the limit

    # 2. nesting far deeper than any JSON parser's recursion limit (40 KB: under the frame limit)
    malformed = (await health_record(redis_db, "binance")).get("rejected", {}).get("malformed", 0)
    await eventually(lambda: sim.send_raw("binance", "[" * 20_000 + "]" * 20_000), 20, 0.2, "a connection")

    async def counted():
        rec = await health_record(redis_db, "binance")
        return rec.get("rejected", {}).get("malformed", 0) > malformed and rec

    await eventually(counted, 20, 0.1, "nested frame counted as malformed")

    # 3. a unicode market id (and one spoofing a listed symbol's display form): nothing stored for them
    now_ms = int(time.time() * 1000)
    await eventually(lambda: sim.send_raw("binance", ticker_frame("BTC€USDT", "123.5", now_ms)), 20, 0.2, "sent")
    await sim.send_raw("binance", ticker_frame("ÀLGO/USDT", "1.5", now_ms))

    # same workers throughout: a hostile frame is never a crash
    r = await eventually(lambda: running(cfg, ("binance", "okx")), 30, 0.3, "both running again")
    assert r["binance"]["pid"] == rows["binance"]["pid"] and r["binance"]["restarts"] == 0
    assert r["okx"]["pid"] == rows["okx"]["pid"]
    assert float(await redis_db.get(f"ticker_time:okx:{okx_sym}")) > okx_time

    sim.set_rate("binance", 0)  # hold still, then compare with exactly what was last sent
    await eventually(lambda: all_match(redis_db, sim, "binance"), 20, 0.1, "binance equals last good quotes")
    assert set(await stored(redis_db, "binance")) == set(sim.symbols("binance"))
    keys = {k.decode() async for k in redis_db.scan_iter("ticker_time:binance:*")}
    assert keys == {f"ticker_time:binance:{s}" for s in sim.symbols("binance")}


async def test_sql_looking_and_unicode_catalog_rows(sim, redis_db, database, procs, tmp_path):  # noqa: F811
    """Catalog rows that look like SQL or carry unicode are skipped with one line each; the valid
    ones are collected; no key is written for the bad ones and the catalog tables are intact."""
    cfg = write_config(tmp_path / "c.toml", sim, {"binance": {}}, database_url=database)
    good = sim.symbols("binance")[:2]
    assert db_init(cfg, seed_file(tmp_path / "s.toml", {"binance": good})).returncode == 0
    bad = ["B/U';DROP TABLE s;--", "比特币/USDT", "ETH/USDT\n", "*/USDT"]
    with psycopg.connect(database, autocommit=True) as c:
        cat_id = c.execute("SELECT cat_ex_id FROM cat_exchanges WHERE name='binance'").fetchone()[0]
        for s in bad:
            c.execute("INSERT INTO symbols (symbol, cat_ex_id, base, quote) VALUES (%s, %s, %s, %s)",
                      (s, cat_id, "X", "Y"))
        c.execute("INSERT INTO cat_exchanges (name) VALUES (%s)", ("币安",))
    sup = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance",)), 40, 0.3, "binance running")
    await eventually(lambda: redis_db.hlen("tickers:binance"), 10, what="ticks")
    assert {k.decode() for k in await redis_db.hkeys("tickers:binance")} == set(good)
    assert [r["exchange"] for r in ps_json(cfg)] == ["binance"]
    log = sup.log.read_text()
    for s in bad:
        assert sum(1 for line in log.splitlines() if repr(s) in line) == 1, (s, log[-3000:])
    with psycopg.connect(database) as c:
        assert c.execute("SELECT count(*) FROM symbols").fetchone()[0] == len(good) + len(bad)
    all_keys = {k.decode() async for k in redis_db.scan_iter("*")}
    assert len(bad[0]) == 20  # symbols.symbol is varchar(20) in fullon's schema
    assert not any("DROP" in k or "比特币" in k or "币安" in k for k in all_keys)
    assert row(cfg, "binance")["symbols"] == 2


@pytest.mark.parametrize(("body", "key"), [
    ("[supervisor]\nmax_crashes = \"five\"\n", "supervisor.max_crashes"),
    ("[service]\nhealth_interval = [1, 2]\n", "service.health_interval"),
    ("[exchanges.binance]\nsymbols = 5\n", "exchanges.binance.symbols"),
    ("[exchanges.binance]\nsymbols = [\"BTC/USDT\"]\nmax_frame_bytes = 12\n", "max_frame_bytes"),
    ("[redis]\nport = 6379.5\n", "redis.port"),
    ("[service\nnamespace = 1\n", "TOML"),
])
def test_config_with_wrong_types_is_one_clear_line(tmp_path, body, key):
    """Every command refuses a mistyped config with exit 3 and one line naming the key; no traceback."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    for cmd in (["up"], ["ps"], ["health"], ["worker", "binance"]):
        out = subprocess.run([sys.executable, "-m", "fullon_ticker_service.cli", *cmd, "-c", str(cfg)],
                             env=env(), capture_output=True, text=True, timeout=30)
        lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
        assert out.returncode == 3, (cmd, out)
        assert len(lines) == 1 and key.lower() in lines[0].lower() and "Traceback" not in out.stderr, (cmd, lines)

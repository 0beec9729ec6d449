"""The PostgreSQL catalog: fullon's tables, `db init`, and changes applied while running."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.supervisor.helpers import env, ps_json, row, write_config

PG_ADMIN = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def database():
    """A fresh database of the test's own on the shared PostgreSQL server."""
    name = f"tst_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=6, rate=30), SimExchange("okx", symbols=6, rate=30)]) as s:
        yield s


def db_init(cfg, seed=None):
    """`db init --notify`: these tests measure changes applied at once, which needs the triggers
    (without them the supervisor's poll applies them; tests/catalog covers db init itself)."""
    args = [sys.executable, "-m", "fullon_ticker_service.cli", "db", "init", "--notify", "-c", str(cfg)]
    if seed:
        args += ["--seed", str(seed)]
    return subprocess.run(args, env=env(), capture_output=True, text=True, timeout=60)


def seed_file(path, catalog):
    lines = []
    for name, symbols in catalog.items():
        lines += [f"[exchanges.{name}]", "symbols = [" + ", ".join(f'"{s}"' for s in symbols) + "]", ""]
    path.write_text("\n".join(lines))
    return path


def test_db_init_creates_tables_and_is_harmless_to_rerun(database, tmp_path):
    """`db init` creates fullon's tables and triggers; running it again changes nothing."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{database}"\n')
    seed = seed_file(tmp_path / "seed.toml", {"binance": ["BTC/USDT", "ETH/USDT"]})
    first = db_init(cfg, seed)
    assert first.returncode == 0, first.stderr
    assert "seeded 1 exchanges, 2 new symbols" in first.stdout
    again = db_init(cfg, seed)
    assert again.returncode == 0 and "seeded 1 exchanges, 0 new symbols" in again.stdout
    with psycopg.connect(database) as c:
        assert c.execute("SELECT count(*) FROM symbols").fetchone()[0] == 2
        tables = {r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        assert {"cat_exchanges", "cat_exchanges_params", "users", "exchanges", "symbols"} <= tables
        triggers = c.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'fullon_ticker_notify_%'")
        assert triggers.fetchone()[0] == 4


def test_db_init_keeps_existing_tables(database, tmp_path):
    """An existing fullon table (with extra columns and data) is left exactly as it was."""
    with psycopg.connect(database, autocommit=True) as c:
        c.execute("CREATE TABLE cat_exchanges (cat_ex_id serial PRIMARY KEY, name varchar(30) UNIQUE NOT NULL, "
                  "ohlcv_view text, extra_col int DEFAULT 7)")
        c.execute("INSERT INTO cat_exchanges (name) VALUES ('kraken')")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{database}"\n')
    assert db_init(cfg).returncode == 0
    with psycopg.connect(database) as c:
        assert c.execute("SELECT name, extra_col FROM cat_exchanges").fetchall() == [("kraken", 7)]


async def test_catalog_changes_apply_while_running(sim, redis_db, database, procs, tmp_path):
    """Symbols inserted are collected within 2 s, deleted ones removed; deactivation stops a worker."""
    cfg = write_config(tmp_path / "c.toml", sim, {"binance": {}, "okx": {}}, database_url=database)
    b_syms, o_syms = sim.symbols("binance"), sim.symbols("okx")
    assert db_init(cfg, seed_file(tmp_path / "s.toml", {"binance": b_syms[:3], "okx": o_syms[:3]})).returncode == 0
    procs("up", "-c", str(cfg))

    async def both_running():
        rows = {r["exchange"]: r for r in ps_json(cfg)}
        return all(rows.get(n, {}).get("status") == "running" for n in ("binance", "okx")) and rows

    await eventually(both_running, 40, 0.3, "both exchanges running from the PG catalog")
    await eventually(lambda: redis_db.hlen("tickers:binance"), 10, what="binance ticks")
    assert set(k.decode() for k in await redis_db.hkeys("tickers:binance")) == set(b_syms[:3])

    with psycopg.connect(database, autocommit=True) as c:
        cat_id = c.execute("SELECT cat_ex_id FROM cat_exchanges WHERE name='binance'").fetchone()[0]
        t0 = time.monotonic()
        c.execute("INSERT INTO symbols (symbol, cat_ex_id, base, quote) VALUES (%s, %s, %s, %s)",
                  (b_syms[4], cat_id, "X", "Y"))
    await eventually(lambda: redis_db.hexists("tickers:binance", b_syms[4]), 5, 0.05, "new symbol collected")
    added_after = time.monotonic() - t0
    assert added_after < 2.0, f"took {added_after:.2f}s"

    with psycopg.connect(database, autocommit=True) as c:
        c.execute("DELETE FROM symbols WHERE symbol=%s AND cat_ex_id=%s", (b_syms[0], cat_id))
    await eventually(lambda: _not(redis_db.hexists("tickers:binance", b_syms[0])), 5, 0.05, "removed symbol gone")
    assert not await redis_db.exists(f"ticker_time:binance:{b_syms[0]}")

    with psycopg.connect(database, autocommit=True) as c:
        c.execute("UPDATE exchanges SET active=false WHERE cat_ex_id=(SELECT cat_ex_id FROM cat_exchanges "
                  "WHERE name='okx')")
    okx_pid = row(cfg, "okx")["pid"]

    async def okx_stopped():
        r = row(cfg, "okx")
        return (r is None or r["status"] in ("stopped", "absent")) and not _alive(okx_pid)

    await eventually(okx_stopped, 15, 0.2, "okx worker stopped after deactivation")
    assert row(cfg, "binance")["status"] == "running"
    await eventually(lambda: _forgotten(redis_db, "okx"), 5, 0.1, "okx's prices deleted from Redis")


async def test_without_triggers_the_poll_applies_a_removed_exchange(sim, redis_db, database, procs, tmp_path):
    """No NOTIFY triggers (db init without --notify): an exchange deactivated in the catalog is
    stopped and its tickers / ticker_time keys are deleted within one catalog poll (5 s here)."""
    cfg = write_config(tmp_path / "c.toml", sim, {"binance": {}, "okx": {}}, database_url=database)
    seed = seed_file(tmp_path / "s.toml", {"binance": sim.symbols("binance")[:3], "okx": sim.symbols("okx")[:3]})
    args = [sys.executable, "-m", "fullon_ticker_service.cli", "db", "init", "-c", str(cfg), "--seed", str(seed)]
    out = await asyncio.to_thread(subprocess.run, args, env=env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "trigger" not in out.stdout, out
    procs("up", "-c", str(cfg))
    await eventually(lambda: redis_db.hlen("tickers:okx"), 40, 0.2, "okx collected")
    with psycopg.connect(database, autocommit=True) as c:
        c.execute("UPDATE exchanges SET active=false WHERE cat_ex_id=(SELECT cat_ex_id FROM cat_exchanges "
                  "WHERE name='okx')")
    t0 = time.monotonic()
    await eventually(lambda: _forgotten(redis_db, "okx"), 5.0 + 8.0, 0.1, "okx's prices deleted")
    assert time.monotonic() - t0 < 5.0 + 8.0  # one poll, then the worker's stop (stop_timeout bounds it)
    assert await redis_db.hlen("tickers:binance") == 3


async def _forgotten(redis_db, exchange: str) -> bool:
    return (not await redis_db.exists(f"tickers:{exchange}")
            and not [k async for k in redis_db.scan_iter(f"ticker_time:{exchange}:*")])


async def _not(awaitable):
    return not await awaitable


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False

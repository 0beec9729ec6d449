"""The fullon contract, held to fullon's own patterns with the real service.

- fullon_master_api's ServiceManager builds `TickerDaemon()` in its own constructor (catching only
  ImportError), starts it with `asyncio.create_task(daemon.start())`, stops it with
  `await daemon.stop()` and cancels the task; its HealthMonitor judges each process record by
  `last_seen`. Here under fullon's shared `.env` values: LOG_FORMAT=beautiful, LOG_LEVEL=info,
  DATABASE_URL in SQLAlchemy's asyncpg form, REDIS_HOST/PORT/DB.
- fullon_cache reads every ticker with `Tick.from_dict(json.loads(value))`; a strict stand-in that
  passes every key to a constructor of exactly fullon's ten fields reads every ticker written.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from fullon_ticker_service import TickerDaemon
from fullon_ticker_service.sim import SimExchange, Simulator
from tests.catalog.helpers import seed_file, tickerctl
from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB, eventually
from tests.supervisor.helpers import write_config

NAMES = ("binance", "binanceusdm", "bybit")


@dataclass(frozen=True)
class StrictTick:
    """fullon_orm's Tick as strict as it could be: every key goes to the constructor."""

    symbol: str
    exchange: str
    price: float
    volume: float
    time: float
    bid: float | None
    ask: float | None
    last: float | None
    change: float | None
    percentage: float | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StrictTick:
        return cls(**d)  # an unknown key raises TypeError: every read would return None


@pytest.fixture
async def sim():
    async with Simulator([SimExchange(n, symbols=6, rate=30) for n in NAMES]) as s:
        yield s


async def test_master_api_pattern_under_fullons_env_and_strict_tick_reads(sim, pg_url, redis_db, monkeypatch,
                                                                           tmp_path):
    cfg = write_config(tmp_path / "c.toml", sim, {n: {} for n in NAMES})  # exchange settings; catalog in PG
    seed = seed_file(tmp_path / "seed.toml", {n: sim.symbols(n) for n in NAMES})
    asyncpg_url = pg_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    fullon_env = {"LOG_FORMAT": "beautiful", "LOG_LEVEL": "info", "DATABASE_URL": asyncpg_url,
                  "REDIS_HOST": SHARED_REDIS_HOST, "REDIS_PORT": str(SHARED_REDIS_PORT), "REDIS_DB": str(TEST_REDIS_DB),
                  "TICKER_CONFIG": str(cfg)}
    out = await asyncio.to_thread(tickerctl, "db", "init", "--seed", str(seed), cwd=tmp_path, extra_env=fullon_env)
    assert out.returncode == 0, out.stderr
    for k, v in fullon_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout

    daemon = TickerDaemon()  # the master API builds it in its constructor: must not raise
    task = asyncio.create_task(daemon.start())
    try:
        async def fresh_records():
            ids = [k.decode() for k in await redis_db.hkeys("process:active:tick")]
            docs = [orjson.loads(r) for r in await redis_db.mget([f"process:data:{i}" for i in ids]) if r] if ids \
                else []
            seen = {d["component"]: d for d in docs if time.time() - float(d.get("last_seen") or 0) < 5.0}
            return set(NAMES) <= set(seen) and seen

        records = await eventually(fresh_records, 60, 0.3, "fresh process records with last_seen")
        assert all(r["status"] in ("running", "starting") for r in records.values()), records
        health = await daemon.get_health()
        assert health["status"] == "running" and health["running"] and set(health["exchanges"]) == set(NAMES)

        # A symbol's first write can come from its ticker stream alone (bybit spot and binance futures
        # tickers carry no bid/ask) a few ms before its bid/ask stream's: wait for both to be merged.
        async def all_written_with_bid_ask():
            stored = {n: await redis_db.hgetall(f"tickers:{n}") for n in NAMES}
            return (all(len(stored[n]) == 6 for n in NAMES)
                    and all(orjson.loads(raw).get("bid") is not None and orjson.loads(raw).get("ask") is not None
                            for n in NAMES for raw in stored[n].values()) and stored)

        stored = await eventually(all_written_with_bid_ask, 30, 0.2, "every symbol written, with bid and ask")
        for n in NAMES:  # fullon_cache's read path, strictly: every ticker parses into its ten fields
            for sym, raw in stored[n].items():
                t = StrictTick.from_dict(orjson.loads(raw))
                assert (t.symbol, t.exchange) == (sym.decode(), n) and t.price > 0
    finally:
        await daemon.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not daemon.is_running() and (await daemon.get_health())["status"] == "stopped"
    assert await redis_db.hlen("process:active:tick") == 0  # stopped processes leave fullon's active list

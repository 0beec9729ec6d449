"""`LiveTickerCollector`: the original's collection manager as a facade over `TickerDaemon`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from redis.asyncio import Redis

from fullon_ticker_service import LiveTickerCollector, TickerDaemon, TickerReader, catalog
from fullon_ticker_service.config import DatabaseSettings, ExchangeSettings, Settings
from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB, eventually
from tests.worker.helpers import settings_for


@dataclass
class CatExchange:
    name: str


@dataclass
class Symbol:
    """What the collector reads of a fullon_orm Symbol."""

    symbol: str
    cat_ex_id: Any = None
    cat_exchange: CatExchange | None = None


class StubDaemon:
    """Records what the facade asks of the daemon (for the checks that must happen before it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog: dict[str, tuple[str, ...]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.running = False

    def is_running(self) -> bool:
        return self.running

    async def start(self, only: Any = None) -> None:
        self.calls.append(("start", only))
        self.running = True
        self.catalog = only or {}

    async def process_ticker(self, symbol: str, exchange: str) -> None:
        self.calls.append(("process_ticker", symbol, exchange))

    async def stop(self) -> None:
        self.calls.append(("stop",))
        self.running = False


def _seed_pg(url: str) -> dict[str, int]:
    """The catalog: admin with binance active and okx inactive; kraken only in cat_exchanges."""
    with psycopg.connect(url, autocommit=True) as conn:
        list(catalog.db_init(conn, {"binance": ("BTC/USDT", "ETH/USDT"), "okx": ("SOL/USDT",)}, "admin@fullon"))
        conn.execute("UPDATE exchanges SET active = false WHERE name = 'okx'")
        conn.execute("INSERT INTO cat_exchanges (name) VALUES ('kraken')")
        return dict(conn.execute("SELECT name, cat_ex_id FROM cat_exchanges").fetchall())


async def test_checks_against_the_config_catalog_before_anything_starts():
    """Without a database the config's [exchanges] is the catalog: another exchange, a bare string,
    a bad symbol are ValueErrors, and a bulk list with one bad symbol starts nothing."""
    stub = StubDaemon(Settings(exchanges={"binance": ExchangeSettings()}))
    c = LiveTickerCollector(daemon=stub)  # type: ignore[arg-type]
    for bad, message in [
        (Symbol("BTC/USDT", cat_exchange=CatExchange("kraken")), "exchange 'kraken' of BTC/USDT is not in the "
                                                                 "catalog (not among the config's [exchanges])"),
        ("BTC/USDT", "a bare symbol has no exchange"),
        (("BTCUSDT", "binance"), "invalid symbol 'BTCUSDT'"),
        (("BTC/USDT", "binance", "x"), "expected a (symbol, exchange) pair"),
        (Symbol("BTC/USDT"), "BTC/USDT: no exchange given"),
        (Symbol(None), "invalid symbol None"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            await c.start_symbol(bad)
    bulk = LiveTickerCollector([("BTC/USDT", "binance"), ("ETH/USDT", "kraken")], daemon=stub)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'kraken'"):
        await bulk.start_collection()
    assert stub.calls == []
    await LiveTickerCollector([("BTC/USDT", "binance"), Symbol("ETH/USDT", cat_exchange=CatExchange("binance")),
                               ("BTC/USDT", "binance")], daemon=stub).start_collection()  # type: ignore[arg-type]
    assert stub.calls == [("start", {"binance": ("BTC/USDT", "ETH/USDT")})]
    assert c.is_collecting(("BTC/USDT", "binance")) and not c.is_collecting(("SOL/USDT", "binance"))
    assert not c.is_collecting("BTC/USDT")


async def test_checks_against_the_pg_catalog(pg_url):
    """With PostgreSQL: no admin user -> ValueError; an exchange the admin has not active (okx) or
    not at all (kraken) -> ValueError; a Symbol with only cat_ex_id is found; a cat_ex_id that
    contradicts the exchange name is refused. A running daemon gets symbols added live."""
    ids = _seed_pg(pg_url)
    settings = Settings(database=DatabaseSettings(url=pg_url.replace("postgresql://", "postgresql+asyncpg://")))
    stub = StubDaemon(settings)
    c = LiveTickerCollector(daemon=stub)  # type: ignore[arg-type]
    for name in ("okx", "kraken"):
        with pytest.raises(ValueError, match=f"exchange '{name}' of SOL/USDT is not in the catalog "
                                             r"\(not among the admin's active exchanges\)"):
            await c.start_symbol(Symbol("SOL/USDT", ids[name], CatExchange(name)))
    with pytest.raises(ValueError, match="does not match exchange 'binance'"):
        await c.start_symbol(Symbol("BTC/USDT", ids["okx"], CatExchange("binance")))
    with pytest.raises(ValueError, match="is not one of the admin's active exchanges"):
        await c.start_symbol(Symbol("BTC/USDT", ids["okx"]))
    assert stub.calls == []

    await c.start_symbol(Symbol("XRP/USDT", ids["binance"]))  # not in symbols yet: allowed, like the original
    assert stub.calls == [("process_ticker", "XRP/USDT", "binance")]
    await c.start_collection()  # no list: the daemon's own catalog read
    assert stub.calls[-1] == ("start", None)
    await LiveTickerCollector([Symbol("ADA/USDT", ids["binance"])], daemon=stub).start_collection()  # type: ignore
    assert stub.calls[-1] == ("process_ticker", "ADA/USDT", "binance")
    await c.stop_collection()
    assert stub.calls[-1] == ("stop",)

    nobody = StubDaemon(Settings(database=DatabaseSettings(url=pg_url, admin_mail="root@elsewhere")))
    for call in (LiveTickerCollector(daemon=nobody).start_collection(),  # type: ignore[arg-type]
                 LiveTickerCollector(daemon=nobody).start_symbol(("BTC/USDT", "binance"))):  # type: ignore
        with pytest.raises(ValueError, match="admin user 'root@elsewhere' is not in the catalog"):
            await call
    assert nobody.calls == []


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=4, rate=40)]) as s:
        yield s


@pytest.fixture
def reader():
    r = TickerReader(Redis(host=SHARED_REDIS_HOST, port=SHARED_REDIS_PORT, db=TEST_REDIS_DB))
    yield r


async def test_collect_symbols_end_to_end_and_stop(sim, redis_db, reader, monkeypatch, tmp_path):
    """A Symbol is collected through the facade into fullon's keys, a (symbol, exchange) pair is
    added live to the same worker, and stop_collection stops everything."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    base = settings_for(sim, "binance")
    daemon = TickerDaemon(Settings(redis=base.redis, service=base.service, exchanges=base.exchanges))
    c = LiveTickerCollector(daemon=daemon)
    s0, s1, s2 = sim.symbols("binance")[:3]
    first = Symbol(s0, 1, CatExchange("binance"))
    try:
        assert not c.is_collecting(first)
        await c.start_symbol(first)
        assert c.is_collecting(first) and daemon.is_running()
        tick = await eventually(lambda: reader.get_ticker(s0, "binance"), 40, 0.2, "first symbol in the cache")
        assert tick.price > 0 and await redis_db.exists(f"ticker_time:binance:{s0}")
        pid = daemon._proc.pid
        await c.start_symbol((s1, "binance"))
        await c.start_symbol((s1, "binance"))  # no duplicate
        assert c.is_collecting((s1, "binance")) and not c.is_collecting((s2, "binance"))
        assert daemon.catalog == {"binance": tuple(sorted((s0, s1)))} and daemon._proc.pid == pid
        await eventually(lambda: reader.get_ticker(s1, "binance"), 15, 0.1, "second symbol added live")
    finally:
        await c.stop_collection()
    assert not daemon.is_running() and not c.is_collecting(first) and not c.is_collecting((s1, "binance"))
    await c.stop_collection()  # safe twice
    await reader.close()


async def test_start_collection_from_the_pg_catalog(sim, redis_db, reader, pg_url, monkeypatch, tmp_path):
    """No symbol list: every catalog symbol of the admin's active exchanges is collected (the
    database seeded by db init, read through the SQLAlchemy-style URL fullon's scripts set)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    syms = sim.symbols("binance")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        list(catalog.db_init(conn, {"binance": tuple(syms[:2])}, "admin@fullon"))
        cat_id = conn.execute("SELECT cat_ex_id FROM cat_exchanges WHERE name = 'binance'").fetchone()[0]
    base = settings_for(sim, "binance")
    url = pg_url.replace("postgresql://postgres@", "postgresql+asyncpg://postgres:pw@")
    daemon = TickerDaemon(Settings(redis=base.redis, service=base.service, exchanges=base.exchanges,
                                   database=DatabaseSettings(url=url)))
    c = LiveTickerCollector(daemon=daemon)
    try:
        await c.start_collection()
        assert daemon.catalog == {"binance": tuple(sorted(syms[:2]))}
        for s in syms[:2]:
            await eventually(lambda s=s: reader.get_ticker(s, "binance"), 40, 0.2, f"{s} from the PG catalog")
        assert c.is_collecting(Symbol(syms[0], cat_id))  # exchange known from the catalog read
        assert not c.is_collecting(Symbol(syms[3], cat_id))
    finally:
        await c.stop_collection()
    assert not daemon.is_running()
    await reader.close()

"""The catalog: which exchanges to collect and their symbols.

From PostgreSQL (fullon's own tables, unchanged) when a database is configured, otherwise from
the config file's `[exchanges]` table. `db_init` creates the fullon tables if missing (never
alters or drops existing ones), installs NOTIFY triggers, and seeds from a TOML catalog.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from fullon_ticker_service.config import ConfigError, Settings, valid_symbol

Catalog = dict[str, tuple[str, ...]]  # exchange name -> sorted symbols
CHANNEL = "fullon_ticker_catalog"


def from_config(settings: Settings) -> Catalog:
    return _only(settings, {name: tuple(sorted(ex.symbols)) for name, ex in settings.exchanges.items()
                            if ex.symbols})


def _only(settings: Settings, catalog: Catalog) -> Catalog:
    only = settings.service.only_exchanges
    return {k: v for k, v in catalog.items() if not only or k in only}


CATALOG_QUERY = """
SELECT DISTINCT ce.name, s.symbol
FROM exchanges e
JOIN users u ON u.uid = e.uid
JOIN cat_exchanges ce ON ce.cat_ex_id = e.cat_ex_id
LEFT JOIN symbols s ON s.cat_ex_id = e.cat_ex_id
WHERE u.mail = %s AND e.active
ORDER BY 1, 2
"""


def load_pg(conn: psycopg.Connection[Any], settings: Settings) -> tuple[Catalog, list[str]]:
    """(catalog, problems). Bad rows are skipped with a one-line problem each, never fatal."""
    return from_rows(conn.execute(CATALOG_QUERY, (settings.database.admin_mail,)).fetchall(), settings)


def from_rows(rows: list[tuple[str, str | None]], settings: Settings) -> tuple[Catalog, list[str]]:
    """CATALOG_QUERY rows -> (catalog, problems) (pure; shared by the sync and async readers)."""
    catalog: dict[str, list[str]] = {}
    problems: list[str] = []
    for name, symbol in rows:
        catalog.setdefault(name, [])
        if symbol is None:
            continue
        if not valid_symbol(symbol):
            problems.append(f"symbols: {symbol!r} of {name} is not a unified symbol; skipped")
            continue
        catalog[name].append(symbol)
    for name in list(catalog):
        if not (name.isascii() and name.replace("_", "").isalnum()):
            problems.append(f"cat_exchanges: {name!r} is not a valid exchange name; skipped")
            del catalog[name]
    return _only(settings, {k: tuple(sorted(v)) for k, v in catalog.items()}), problems


def connect(settings: Settings, timeout: float = 5.0) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.database.url, autocommit=True, connect_timeout=int(max(1, timeout)))


# --- schema ---------------------------------------------------------------------------------
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS cat_exchanges (
        cat_ex_id serial PRIMARY KEY, name varchar(30) UNIQUE NOT NULL, ohlcv_view text)""",
    """CREATE TABLE IF NOT EXISTS cat_exchanges_params (
        cat_ex_id int NOT NULL, name varchar(20) NOT NULL, value varchar(20) NOT NULL,
        UNIQUE (cat_ex_id, name))""",
    """CREATE TABLE IF NOT EXISTS users (
        uid serial PRIMARY KEY, mail varchar(80) UNIQUE NOT NULL, password char(64) NOT NULL,
        f2a varchar(16) NOT NULL, role varchar(10) NOT NULL, name varchar(50) NOT NULL,
        lastname varchar(50) NOT NULL, phone varchar(12) NOT NULL, id_num varchar(15) NOT NULL,
        note text, manager int,
        "timestamp" timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
        active bool NOT NULL DEFAULT true)""",
    """CREATE TABLE IF NOT EXISTS exchanges (
        ex_id serial PRIMARY KEY, uid int NOT NULL REFERENCES users,
        cat_ex_id int NOT NULL REFERENCES cat_exchanges, name varchar(50) NOT NULL,
        test bool NOT NULL DEFAULT false, active bool NOT NULL DEFAULT true,
        "timestamp" timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
        UNIQUE (uid, cat_ex_id, name))""",
    """CREATE TABLE IF NOT EXISTS symbols (
        symbol_id serial PRIMARY KEY, symbol varchar(20) NOT NULL, cat_ex_id int NOT NULL,
        updateframe varchar(2) NOT NULL DEFAULT '1h', backtest smallint NOT NULL DEFAULT 30,
        decimals smallint NOT NULL DEFAULT 8, base varchar(6) NOT NULL, ex_base varchar(6),
        futures bool NOT NULL DEFAULT false, only_ticker bool NOT NULL DEFAULT false,
        UNIQUE (symbol, cat_ex_id))""",
    f"""CREATE OR REPLACE FUNCTION fullon_ticker_notify() RETURNS trigger AS $$
        BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$ LANGUAGE plpgsql""",
]
TRIGGER_TABLES = ("exchanges", "symbols", "cat_exchanges", "users")


def db_init(conn: psycopg.Connection[Any], seed: Path | None, admin_mail: str) -> list[str]:
    """Create missing tables and triggers, then seed. Safe to run again. Returns what it did."""
    done = []
    with conn.transaction():
        for stmt in SCHEMA:
            conn.execute(stmt)
        for table in TRIGGER_TABLES:
            trig = sql.Identifier(f"fullon_ticker_notify_{table}")
            exists = conn.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s",
                                  (f"fullon_ticker_notify_{table}",)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                                     "FOR EACH STATEMENT EXECUTE FUNCTION fullon_ticker_notify()")
                             .format(trig, sql.Identifier(table)))
                done.append(f"trigger on {table}")
    done.insert(0, "tables present")
    if seed is not None:
        done.append(seed_catalog(conn, read_seed(seed), admin_mail))
    return done


def read_seed(path: Path) -> Catalog:
    """A seed file: TOML with `[exchanges.NAME] symbols = [...]` (the config file format works)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read seed catalog: {exc}") from None
    out: Catalog = {}
    for name, table in (data.get("exchanges") or {}).items():
        symbols = table.get("symbols", []) if isinstance(table, dict) else None
        if not isinstance(symbols, list) or not all(isinstance(s, str) and valid_symbol(s) for s in symbols):
            raise ConfigError(f"{path}: exchanges.{name}.symbols must be a list of unified symbols")
        out[name] = tuple(symbols)
    return out


def seed_catalog(conn: psycopg.Connection[Any], catalog: Catalog, admin_mail: str) -> str:
    added = 0
    with conn.transaction():
        conn.execute("""INSERT INTO users (mail, password, f2a, role, name, lastname, phone, id_num)
                        VALUES (%s, repeat('0', 64), '', 'admin', 'admin', 'fullon', '', '')
                        ON CONFLICT (mail) DO NOTHING""", (admin_mail,))
        (uid,) = conn.execute("SELECT uid FROM users WHERE mail = %s", (admin_mail,)).fetchone()  # type: ignore[misc]
        for name, symbols in catalog.items():
            conn.execute("INSERT INTO cat_exchanges (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))
            (cat_id,) = conn.execute("SELECT cat_ex_id FROM cat_exchanges WHERE name = %s",
                                     (name,)).fetchone()  # type: ignore[misc]
            conn.execute("""INSERT INTO exchanges (uid, cat_ex_id, name) VALUES (%s, %s, %s)
                            ON CONFLICT (uid, cat_ex_id, name) DO NOTHING""", (uid, cat_id, name))
            for symbol in symbols:
                cur = conn.execute("""INSERT INTO symbols (symbol, cat_ex_id, base) VALUES (%s, %s, %s)
                                      ON CONFLICT (symbol, cat_ex_id) DO NOTHING""",
                                   (symbol, cat_id, symbol.split("/")[0][:6]))
                added += cur.rowcount
    return f"seeded {len(catalog)} exchanges, {added} new symbols"

"""PostgreSQL helpers of the catalog tests: fullon's schema as DDL, a `\\d` of the live tables,
and `tickerctl` run the way an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from tests.supervisor.helpers import env as clean_env

PG_ADMIN = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TICKERCTL = str(Path(sys.executable).with_name("tickerctl"))  # the installed console script
CATALOG_TABLES = ("users", "cat_exchanges", "cat_exchanges_params", "exchanges", "symbols")

# fullon's base schema for the five catalog tables, written out the way fullon's pgModeler dump
# states it (tables first, keys added afterwards), with `symbols.quote` as fullon's current ORM
# has it (required). Kept independent of catalog.TABLES on purpose: the tests compare the two.
FULLON_DDL = """
CREATE TABLE public.cat_exchanges (
    cat_ex_id serial NOT NULL, name varchar(30) NOT NULL, ohlcv_view text,
    CONSTRAINT cat_exchange_pk PRIMARY KEY (cat_ex_id), CONSTRAINT unique_ex UNIQUE (name));
CREATE TABLE public.exchanges (
    ex_id serial NOT NULL, uid integer NOT NULL, cat_ex_id integer NOT NULL, name varchar(50) NOT NULL,
    test bool NOT NULL DEFAULT false, active bool NOT NULL DEFAULT True,
    "timestamp" timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    CONSTRAINT exchange_pk PRIMARY KEY (ex_id), CONSTRAINT unique_user_exchange UNIQUE (uid,cat_ex_id,name));
CREATE TABLE public.users (
    uid serial NOT NULL, mail varchar(80) NOT NULL, password char(64) NOT NULL, f2a varchar(16) NOT NULL,
    role varchar(10) NOT NULL, name varchar(50) NOT NULL, lastname varchar(50) NOT NULL,
    phone varchar(12) NOT NULL, id_num varchar(15) NOT NULL, note text, manager integer,
    "timestamp" timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'), active bool NOT NULL DEFAULT True,
    CONSTRAINT users_pk PRIMARY KEY (uid), CONSTRAINT unique_mail UNIQUE (mail));
CREATE TABLE public.symbols (
    symbol_id serial NOT NULL, symbol varchar(20) NOT NULL, cat_ex_id integer NOT NULL,
    updateframe varchar(2) NOT NULL DEFAULT '1h', backtest smallint NOT NULL DEFAULT 30,
    decimals smallint NOT NULL DEFAULT 8, base varchar(6) NOT NULL, quote varchar NOT NULL,
    ex_base varchar(6), futures bool NOT NULL DEFAULT false, only_ticker bool NOT NULL DEFAULT False,
    CONSTRAINT symbol_pk PRIMARY KEY (symbol_id), CONSTRAINT "symbol_Exchange" UNIQUE (symbol,cat_ex_id));
CREATE TABLE public.cat_exchanges_params (
    cat_ex_id integer NOT NULL, name varchar(20) NOT NULL, value varchar(20) NOT NULL,
    CONSTRAINT unique_param_symbol UNIQUE (cat_ex_id,name));
ALTER TABLE public.exchanges ADD CONSTRAINT user_id FOREIGN KEY (uid)
    REFERENCES public.users (uid) MATCH FULL ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE public.exchanges ADD CONSTRAINT exchange_cat_exchange FOREIGN KEY (cat_ex_id)
    REFERENCES public.cat_exchanges (cat_ex_id) MATCH FULL ON DELETE RESTRICT ON UPDATE RESTRICT;
ALTER TABLE public.users ADD CONSTRAINT client_manager FOREIGN KEY (manager)
    REFERENCES public.users (uid) MATCH FULL ON DELETE RESTRICT ON UPDATE RESTRICT;
ALTER TABLE public.symbols ADD CONSTRAINT cat_ex_id FOREIGN KEY (cat_ex_id)
    REFERENCES public.cat_exchanges (cat_ex_id) MATCH FULL ON DELETE RESTRICT ON UPDATE RESTRICT;
ALTER TABLE public.cat_exchanges_params ADD CONSTRAINT cat_ex_id FOREIGN KEY (cat_ex_id)
    REFERENCES public.cat_exchanges (cat_ex_id) MATCH FULL ON DELETE NO ACTION ON UPDATE NO ACTION;
"""


def columns(conn: psycopg.Connection[Any], tables: tuple[str, ...] = CATALOG_TABLES) -> list[tuple[Any, ...]]:
    """What `\\d` shows of the columns: name, type, length, nullability and default, in order."""
    return conn.execute("""
        SELECT table_name, ordinal_position, column_name, data_type, character_maximum_length,
               numeric_precision, is_nullable, column_default
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = ANY(%s)
        ORDER BY table_name, ordinal_position""", (list(tables),)).fetchall()


def constraints(conn: psycopg.Connection[Any], tables: tuple[str, ...] = CATALOG_TABLES) -> list[tuple[Any, ...]]:
    """Every key of the tables: name, kind (p/u/f), columns, and for a foreign key its target,
    match type (f = FULL) and ON UPDATE / ON DELETE actions (r = RESTRICT, c = CASCADE, a = NO ACTION)."""
    return conn.execute("""
        SELECT c.conrelid::regclass::text, c.conname, c.contype,
               (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
               c.confrelid::regclass::text,
               (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n)
                JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum),
               CASE WHEN c.contype = 'f' THEN c.confmatchtype END,
               CASE WHEN c.contype = 'f' THEN c.confupdtype END,
               CASE WHEN c.contype = 'f' THEN c.confdeltype END
        FROM pg_constraint c
        WHERE c.conrelid = ANY(SELECT to_regclass(t) FROM unnest(%s::text[]) t) AND c.contype IN ('p', 'u', 'f')
        ORDER BY 1, 2""", (list(tables),)).fetchall()


def triggers(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return conn.execute("""SELECT c.relname::text, t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                           WHERE NOT t.tgisinternal ORDER BY 1""").fetchall()


def notify_function_exists(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT to_regprocedure('fullon_ticker_notify()') IS NOT NULL").fetchone()[0]


def tickerctl(*args: str, database_url: str | None = None, cwd: Path, extra_env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`tickerctl ARGS` as a process, in `cwd` (no repository config or .env), fullon-style environment."""
    e = clean_env()
    e.pop("LOG_FORMAT", None)
    e.pop("LOG_LEVEL", None)
    if database_url is not None:
        e["DATABASE_URL"] = database_url
    e.update(extra_env or {})
    return subprocess.run([TICKERCTL, *args], env=e, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def seed_file(path: Path, catalog: dict[str, list[str]]) -> Path:
    lines = []
    for name, symbols in catalog.items():
        lines += [f"[exchanges.{name}]", "symbols = [" + ", ".join(f'"{s}"' for s in symbols) + "]", ""]
    path.write_text("\n".join(lines))
    return path

"""The catalog: which exchanges to collect and their symbols.

From PostgreSQL (fullon's own tables, unchanged) when a database is configured, otherwise from
the config file's `[exchanges]` table.

`db_init` is for a host without fullon's database, or one missing some of these tables: it
creates the five catalog tables this service reads exactly as fullon's schema has them
(columns, keys, cascades and constraint names; `symbols.quote NOT NULL` as in fullon's current
ORM), so fullon itself can use the database afterwards. It never alters an existing table: on a
fullon host they are fullon's.

NOTIFY triggers are opt-in (`db init --notify`, `db notify on`; `db notify off` removes them):
they add objects to fullon's tables, which the owner of a fullon database may not want, and the
supervisor's poll (`database.poll_interval`) applies catalog changes without them, only later.
`CHANNEL` and `NOTIFY_FUNCTION` are stable names: the supervisor LISTENs on the channel, and
installs from older versions are found and removed by these names.

Seeding (`--seed FILE`) writes through the LIVE tables' columns (`information_schema.columns`),
never an assumed list: a fullon database may carry columns our schema lacks (fullon's ORM and
test doubles add some), and every NOT NULL column without a default gets a neutral value.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from fullon_ticker_service.config import ConfigError, Settings, valid_symbol

Catalog = dict[str, tuple[str, ...]]  # exchange name -> sorted symbols
CHANNEL = "fullon_ticker_catalog"  # the supervisor LISTENs here: keep the name
NOTIFY_FUNCTION = "fullon_ticker_notify"  # trigger function; triggers are named f"{NOTIFY_FUNCTION}_{table}"
TRIGGER_TABLES = ("exchanges", "symbols", "cat_exchanges", "users")


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


# --- the admin's exchanges (LiveTickerCollector's checks) --------------------------------------
ADMIN_EXCHANGES_QUERY = """
SELECT ce.name, ce.cat_ex_id
FROM users u
LEFT JOIN exchanges e ON e.uid = u.uid AND e.active
LEFT JOIN cat_exchanges ce ON ce.cat_ex_id = e.cat_ex_id
WHERE u.mail = %s
"""


def admin_exchanges_from_rows(rows: list[tuple[str | None, Any]]) -> dict[str, Any] | None:
    """ADMIN_EXCHANGES_QUERY rows -> {name: cat_ex_id} of the admin's active exchanges, or None
    when there is no admin user at all (the query then returns no row)."""
    if not rows:
        return None
    return {name: cat_id for name, cat_id in rows if name is not None}


async def admin_exchanges(settings: Settings) -> dict[str, Any] | None:
    """The exchanges whose symbols may be collected: {name: cat_ex_id}, None without an admin user.

    From PostgreSQL when configured (the admin's active exchanges, the rule the catalog query
    uses), else every `[exchanges.X]` table of the config (cat_ex_id None): those are the
    exchanges the service knows how to reach. TICKER_DAEMON_EXCHANGES narrows both."""
    if not settings.database.enabled:
        return _only(settings, dict.fromkeys(settings.exchanges))  # type: ignore[arg-type]
    async with await psycopg.AsyncConnection.connect(settings.database.url, autocommit=True,
                                                     connect_timeout=5) as conn:
        rows = await (await conn.execute(ADMIN_EXCHANGES_QUERY, (settings.database.admin_mail,))).fetchall()
    found = admin_exchanges_from_rows(rows)
    return None if found is None else _only(settings, found)  # type: ignore[arg-type]


# --- schema ---------------------------------------------------------------------------------
# fullon's base schema for the five catalog tables (serial keys), with its constraint names so
# fullon's own migrations find them, and `symbols.quote` from fullon's current ORM. In creation
# order: a table's references exist before it.
TABLES: tuple[tuple[str, str], ...] = (
    ("users", """CREATE TABLE IF NOT EXISTS users (
        uid serial NOT NULL, mail varchar(80) NOT NULL, password char(64) NOT NULL,
        f2a varchar(16) NOT NULL, role varchar(10) NOT NULL, name varchar(50) NOT NULL,
        lastname varchar(50) NOT NULL, phone varchar(12) NOT NULL, id_num varchar(15) NOT NULL,
        note text, manager integer,
        "timestamp" timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
        active boolean NOT NULL DEFAULT true,
        CONSTRAINT users_pk PRIMARY KEY (uid),
        CONSTRAINT unique_mail UNIQUE (mail),
        CONSTRAINT client_manager FOREIGN KEY (manager) REFERENCES users (uid) MATCH FULL
            ON DELETE RESTRICT ON UPDATE RESTRICT)"""),
    ("cat_exchanges", """CREATE TABLE IF NOT EXISTS cat_exchanges (
        cat_ex_id serial NOT NULL, name varchar(30) NOT NULL, ohlcv_view text,
        CONSTRAINT cat_exchange_pk PRIMARY KEY (cat_ex_id),
        CONSTRAINT unique_ex UNIQUE (name))"""),
    ("cat_exchanges_params", """CREATE TABLE IF NOT EXISTS cat_exchanges_params (
        cat_ex_id integer NOT NULL, name varchar(20) NOT NULL, value varchar(20) NOT NULL,
        CONSTRAINT unique_param_symbol UNIQUE (cat_ex_id, name),
        CONSTRAINT cat_ex_id FOREIGN KEY (cat_ex_id) REFERENCES cat_exchanges (cat_ex_id) MATCH FULL
            ON DELETE NO ACTION ON UPDATE NO ACTION)"""),
    ("exchanges", """CREATE TABLE IF NOT EXISTS exchanges (
        ex_id serial NOT NULL, uid integer NOT NULL, cat_ex_id integer NOT NULL, name varchar(50) NOT NULL,
        test boolean NOT NULL DEFAULT false, active boolean NOT NULL DEFAULT true,
        "timestamp" timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
        CONSTRAINT exchange_pk PRIMARY KEY (ex_id),
        CONSTRAINT unique_user_exchange UNIQUE (uid, cat_ex_id, name),
        CONSTRAINT user_id FOREIGN KEY (uid) REFERENCES users (uid) MATCH FULL
            ON DELETE CASCADE ON UPDATE CASCADE,
        CONSTRAINT exchange_cat_exchange FOREIGN KEY (cat_ex_id) REFERENCES cat_exchanges (cat_ex_id) MATCH FULL
            ON DELETE RESTRICT ON UPDATE RESTRICT)"""),
    ("symbols", """CREATE TABLE IF NOT EXISTS symbols (
        symbol_id serial NOT NULL, symbol varchar(20) NOT NULL, cat_ex_id integer NOT NULL,
        updateframe varchar(2) NOT NULL DEFAULT '1h', backtest smallint NOT NULL DEFAULT 30,
        decimals smallint NOT NULL DEFAULT 8, base varchar(6) NOT NULL, quote varchar NOT NULL,
        ex_base varchar(6), futures boolean NOT NULL DEFAULT false, only_ticker boolean NOT NULL DEFAULT false,
        CONSTRAINT symbol_pk PRIMARY KEY (symbol_id),
        CONSTRAINT "symbol_Exchange" UNIQUE (symbol, cat_ex_id),
        CONSTRAINT cat_ex_id FOREIGN KEY (cat_ex_id) REFERENCES cat_exchanges (cat_ex_id) MATCH FULL
            ON DELETE RESTRICT ON UPDATE RESTRICT)"""),
)
NOTIFY_FUNCTION_SQL = f"""CREATE OR REPLACE FUNCTION {NOTIFY_FUNCTION}() RETURNS trigger AS $$
    BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$ LANGUAGE plpgsql"""


class SeedError(RuntimeError):
    """The live database cannot be written as asked (a table missing, a column we cannot fill)."""


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]  # type: ignore[index]


def db_init(conn: psycopg.Connection[Any], seed: Catalog | Path | None, admin_mail: str,
            notify: bool = False) -> Iterator[str]:
    """Create the missing catalog tables (never altering existing ones), install the NOTIFY
    triggers only when `notify`, then seed. Safe to run again. Yields one line per action,
    each once it is committed (a later failure does not hide what was done)."""
    catalog = read_seed(seed) if isinstance(seed, Path) else seed  # a bad file fails before any change
    created, kept = [], []
    with conn.transaction():
        for table, ddl in TABLES:
            (kept if _exists(conn, table) else created).append(table)
            conn.execute(ddl)
    if created:
        yield (f"tables present: created {', '.join(created)}"
               + (f"; left unchanged {', '.join(kept)}" if kept else ""))
    else:
        yield f"tables present: all {len(kept)} existed, left unchanged"
    if notify:
        yield from notify_on(conn)
    elif installed := notify_tables(conn):
        yield (f"notify triggers installed on {', '.join(installed)} (kept; "
               "`tickerctl db notify off` removes them)")
    if catalog is not None:
        yield from seed_catalog(conn, catalog, admin_mail)


def notify_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """The catalog tables that carry our NOTIFY trigger."""
    return [t for t in TRIGGER_TABLES if conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
        (t, f"{NOTIFY_FUNCTION}_{t}")).fetchone()]


def notify_on(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """Install the statement-level NOTIFY triggers: catalog changes reach a running supervisor at
    once instead of at its next poll."""
    lines = []
    with conn.transaction():
        missing = [t for t in TRIGGER_TABLES if not _exists(conn, t)]
        if missing:
            raise SeedError(f"table(s) {', '.join(missing)} missing; run `tickerctl db init` first")
        conn.execute(NOTIFY_FUNCTION_SQL)
        have = set(notify_tables(conn))
        for table in TRIGGER_TABLES:
            if table in have:
                lines.append(f"trigger on {table}: already installed")
                continue
            conn.execute(sql.SQL("CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION {}()")
                         .format(sql.Identifier(f"{NOTIFY_FUNCTION}_{table}"), sql.Identifier(table),
                                 sql.Identifier(NOTIFY_FUNCTION)))
            lines.append(f"trigger on {table} installed")
    yield from lines


def notify_off(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """Remove our triggers and their function, leaving fullon's tables as they were without us."""
    lines = []
    with conn.transaction():
        for table in notify_tables(conn):
            conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(f"{NOTIFY_FUNCTION}_{table}"),
                                                                 sql.Identifier(table)))
            lines.append(f"trigger on {table} removed")
        function = conn.execute("SELECT to_regprocedure(%s)", (f"{NOTIFY_FUNCTION}()",)).fetchone()
        if function and function[0] is not None:
            conn.execute(sql.SQL("DROP FUNCTION {}()").format(sql.Identifier(NOTIFY_FUNCTION)))
            lines.append(f"function {NOTIFY_FUNCTION}() removed")
    yield from lines or ["no notify triggers installed; nothing to remove"]


def notify_status(conn: psycopg.Connection[Any]) -> Iterator[str]:
    installed = notify_tables(conn)
    if not installed:
        yield "notify triggers: none (catalog changes apply at the supervisor's poll)"
    else:
        yield f"notify triggers: installed on {', '.join(installed)}"


# --- seeding -----------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema's: "character varying", "integer", "USER-DEFINED", ...
    udt_name: str  # the type's own name (an enum's name for USER-DEFINED)
    max_length: int | None  # varchar(n)/char(n) limit
    required: bool  # NOT NULL without a default, identity or generation: an INSERT must give it


COLUMNS_QUERY = """
SELECT c.column_name, c.data_type, c.udt_name, c.character_maximum_length,
       c.is_nullable = 'NO' AND c.column_default IS NULL AND c.is_identity = 'NO' AND c.is_generated = 'NEVER'
FROM information_schema.columns c
JOIN pg_class t ON t.oid = to_regclass(%s)
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.table_schema = n.nspname AND c.table_name = t.relname
ORDER BY c.ordinal_position
"""  # to_regclass: the table an unqualified name means on this connection's search_path


def live_columns(conn: psycopg.Connection[Any], table: str) -> dict[str, Column]:
    return {r[0]: Column(*r) for r in conn.execute(COLUMNS_QUERY, (table,)).fetchall()}


_TEXT = {"character varying", "character", "text", "name"}
_NUMBER = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
_TIME = {"timestamp without time zone", "timestamp with time zone", "date",
         "time without time zone", "time with time zone"}


def _neutral(conn: psycopg.Connection[Any], table: str, col: Column) -> sql.Composable:
    """A type-appropriate neutral value for a required column we have nothing to say about."""
    t = col.data_type
    if t in _TEXT or col.udt_name == "citext":
        return sql.Literal("")
    if t == "boolean":
        return sql.Literal(False)
    if t in _NUMBER:
        return sql.Literal(0)
    if t in _TIME:
        return sql.SQL("now()")
    if t == "interval":
        return sql.SQL("interval '0'")
    if t == "uuid":
        return sql.SQL("gen_random_uuid()")  # a key more often than not: unique, not neutral-but-equal
    if t in ("json", "jsonb", "ARRAY"):
        return sql.Literal("{}")
    if t == "USER-DEFINED":  # an enum: its first label
        row = conn.execute("SELECT e.enumlabel FROM pg_enum e JOIN pg_type ty ON ty.oid = e.enumtypid "
                           "WHERE ty.typname = %s ORDER BY e.enumsortorder LIMIT 1", (col.udt_name,)).fetchone()
        if row:
            return sql.Literal(row[0])
    raise SeedError(f"{table}.{col.name} is NOT NULL {t} ({col.udt_name}) without a default; "
                    "cannot choose a value to seed it")


def _insert(conn: psycopg.Connection[Any], table: str, cols: dict[str, Column], values: dict[str, Any],
            returning: str | None = None) -> Any:
    """INSERT our `values` for the columns the live table has (text cut to its limit) plus a
    neutral value for every other required column; returns `returning` of the new row."""
    names: list[str] = []
    exprs: list[sql.Composable] = []
    params: list[Any] = []
    for name, value in values.items():
        col = cols.get(name)
        if col is None:  # not in this table (e.g. no `quote` in fullon's old base schema)
            continue
        if isinstance(value, str) and col.max_length is not None:
            value = value[:col.max_length]
        names.append(name)
        exprs.append(sql.Placeholder())
        params.append(value)
    for col in cols.values():
        if col.required and col.name not in values:
            names.append(col.name)
            exprs.append(_neutral(conn, table, col))
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(exprs))
    if returning:
        query += sql.SQL(" RETURNING {}").format(sql.Identifier(returning))
    cur = conn.execute(query, params)
    return cur.fetchone()[0] if returning else None  # type: ignore[index]


def _too_long(cols: dict[str, Column], column: str, value: str) -> int | None:
    """The column's limit when `value` (a key we must store exactly) does not fit, else None."""
    col = cols.get(column)
    return col.max_length if col and col.max_length is not None and len(value) > col.max_length else None


def split_symbol(symbol: str) -> tuple[str, str]:
    """Unified `BASE/QUOTE[:SETTLE[-...]]` -> (BASE, QUOTE)."""
    base, _, rest = symbol.partition("/")
    return base, rest.partition(":")[0]


def seed_catalog(conn: psycopg.Connection[Any], catalog: Catalog, admin_mail: str) -> Iterator[str]:
    """Add the admin user, each exchange (catalog row and the admin's account) and its symbols
    where missing; existing rows are never changed. Yields one line per action, after commit.

    Our values: users mail/role 'admin'/name 'admin'; exchanges uid/cat_ex_id/name; symbols
    symbol/cat_ex_id/base/quote (cut to the column's limit, e.g. fullon's base varchar(6)) and
    futures (true for a contract symbol, one with ':' settle), each only if the live table has the
    column. `active`, where a table has it, is true: a seeded row is meant to be collected. Every
    other NOT NULL column without a default gets a neutral value (see `_neutral`)."""
    lines: list[str] = []
    with conn.transaction():
        tables = ("users", "cat_exchanges", "exchanges", "symbols")
        cols = {t: live_columns(conn, t) for t in tables}
        if missing := [t for t in tables if not cols[t]]:
            raise SeedError(f"cannot seed: table(s) {', '.join(missing)} missing")
        row = conn.execute("SELECT uid FROM users WHERE mail = %s", (admin_mail,)).fetchone()
        if row is not None:
            uid = row[0]
        else:
            if limit := _too_long(cols["users"], "mail", admin_mail):
                raise ConfigError(f"ADMIN_MAIL {admin_mail!r} is longer than users.mail allows ({limit} characters)")
            uid = _insert(conn, "users", cols["users"],
                          {"mail": admin_mail, "role": "admin", "name": "admin", "active": True}, "uid")
            lines.append(f"admin user {admin_mail} created")
        active_expr = "bool_or(active)" if "active" in cols["exchanges"] else "bool_or(true)"
        total = seeded = 0
        for name, symbols in catalog.items():
            limit = _too_long(cols["cat_exchanges"], "name", name) or _too_long(cols["exchanges"], "name", name)
            if limit:
                lines.append(f"{name}: exchange name longer than the catalog allows ({limit}); skipped")
                continue
            seeded += 1
            row = conn.execute("SELECT cat_ex_id FROM cat_exchanges WHERE name = %s", (name,)).fetchone()
            cat_id = row[0] if row else _insert(conn, "cat_exchanges", cols["cat_exchanges"], {"name": name},
                                                "cat_ex_id")
            active = conn.execute(f"SELECT {active_expr} FROM exchanges WHERE uid = %s AND cat_ex_id = %s",
                                  (uid, cat_id)).fetchone()[0]  # type: ignore[index]
            note = ""
            if active is None:
                _insert(conn, "exchanges", cols["exchanges"],
                        {"uid": uid, "cat_ex_id": cat_id, "name": name, "active": True})
                note = " (exchange added to the admin's exchanges)"
            elif not active:
                note = " (the admin's account on it is inactive and left so: not collected)"
            added = present = 0
            for symbol in symbols:
                if limit := _too_long(cols["symbols"], "symbol", symbol):
                    lines.append(f"{name}: {symbol!r} is longer than symbols.symbol allows ({limit}); skipped")
                    continue
                if conn.execute("SELECT 1 FROM symbols WHERE symbol = %s AND cat_ex_id = %s",
                                (symbol, cat_id)).fetchone():
                    present += 1
                    continue
                base, quote = split_symbol(symbol)
                _insert(conn, "symbols", cols["symbols"],
                        {"symbol": symbol, "cat_ex_id": cat_id, "base": base, "quote": quote,
                         "futures": ":" in symbol, "active": True})
                added += 1
            total += added
            lines.append(f"{name}: {added} new symbols, {present} already there{note}")
        lines.append(f"seeded {seeded} exchanges, {total} new symbols")
    yield from lines

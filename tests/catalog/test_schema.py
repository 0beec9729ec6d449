"""`tickerctl db init` creates fullon's catalog schema, never alters existing tables, and installs
NOTIFY triggers only when asked (and removes them on request)."""

from __future__ import annotations

import psycopg

from fullon_ticker_service import catalog
from tests.catalog.helpers import (
    CATALOG_TABLES,
    FULLON_DDL,
    columns,
    constraints,
    notify_function_exists,
    tickerctl,
    triggers,
)


def test_db_init_creates_exactly_fullons_schema(pg_url, pg_url2, tmp_path):
    """A `\\d` of every table db init creates equals fullon's DDL: columns, types, lengths,
    nullability, defaults, keys with their names, match types and ON UPDATE/DELETE actions."""
    out = tickerctl("db", "init", database_url=pg_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "tables present: created users, cat_exchanges, cat_exchanges_params, exchanges, symbols"]
    assert out.stderr == ""
    with psycopg.connect(pg_url2, autocommit=True) as fullon:
        fullon.execute(FULLON_DDL)
        want_cols, want_keys = columns(fullon), constraints(fullon)
    with psycopg.connect(pg_url) as ours:
        got_cols, got_keys = columns(ours), constraints(ours)
        tables = {r[0] for r in ours.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == set(CATALOG_TABLES)
    assert got_cols == want_cols
    assert got_keys == want_keys
    # the facts the compatibility contract names, spelled out
    fks = {(t, name): (cols, ref, match, upd, dele) for t, name, kind, cols, ref, _, match, upd, dele in got_keys
           if kind == "f"}
    assert fks[("symbols", "cat_ex_id")] == (["cat_ex_id"], "cat_exchanges", "f", "r", "r")
    assert fks[("cat_exchanges_params", "cat_ex_id")] == (["cat_ex_id"], "cat_exchanges", "f", "a", "a")
    assert fks[("exchanges", "exchange_cat_exchange")] == (["cat_ex_id"], "cat_exchanges", "f", "r", "r")
    assert fks[("exchanges", "user_id")] == (["uid"], "users", "f", "c", "c")
    assert fks[("users", "client_manager")] == (["manager"], "users", "f", "r", "r")
    assert len(fks) == 5
    quote = next(c for c in got_cols if c[0] == "symbols" and c[2] == "quote")
    assert quote[3:5] == ("character varying", None) and quote[6] == "NO"
    base = next(c for c in got_cols if c[0] == "symbols" and c[2] == "base")
    assert base[3:5] == ("character varying", 6) and base[6] == "NO"


def test_cascades_behave_like_fullons(pg_url, tmp_path):
    """Deleting a user removes its exchanges (CASCADE); a cat_exchange with symbols cannot go (RESTRICT)."""
    assert tickerctl("db", "init", database_url=pg_url, cwd=tmp_path).returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as c:
        uid = c.execute("INSERT INTO users (mail, password, f2a, role, name, lastname, phone, id_num) "
                        "VALUES ('a@b', '', '', '', '', '', '', '') RETURNING uid").fetchone()[0]
        cat = c.execute("INSERT INTO cat_exchanges (name) VALUES ('kraken') RETURNING cat_ex_id").fetchone()[0]
        c.execute("INSERT INTO exchanges (uid, cat_ex_id, name) VALUES (%s, %s, 'k1')", (uid, cat))
        c.execute("INSERT INTO symbols (symbol, cat_ex_id, base, quote) VALUES ('BTC/USD', %s, 'BTC', 'USD')", (cat,))
        c.execute("DELETE FROM users WHERE uid = %s", (uid,))
        assert c.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 0
        try:
            c.execute("DELETE FROM cat_exchanges WHERE cat_ex_id = %s", (cat,))
            raise AssertionError("cat_exchanges row with symbols was deleted")
        except psycopg.errors.ForeignKeyViolation:
            pass
        try:
            c.execute("INSERT INTO symbols (symbol, cat_ex_id, base) VALUES ('ETH/USD', %s, 'ETH')", (cat,))
            raise AssertionError("a symbol without quote was accepted")
        except psycopg.errors.NotNullViolation:
            pass


def test_db_init_never_alters_existing_tables(pg_url, tmp_path):
    """Existing tables of any shape (extra columns, missing ones, no keys) keep their columns,
    keys and rows; only the missing tables are created, referencing the existing ones."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE TABLE cat_exchanges (cat_ex_id serial PRIMARY KEY, name varchar(30) UNIQUE NOT NULL, "
                  "ohlcv_view text, extra_col int DEFAULT 7)")
        c.execute("CREATE TABLE users (uid serial PRIMARY KEY, mail varchar(200) NOT NULL, active bool)")
        c.execute("INSERT INTO cat_exchanges (name) VALUES ('kraken')")
        c.execute("INSERT INTO users (mail) VALUES ('x@y')")
        before_cols = columns(c, ("cat_exchanges", "users"))
        before_keys = constraints(c, ("cat_exchanges", "users"))
    out = tickerctl("db", "init", database_url=pg_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["tables present: created cat_exchanges_params, exchanges, symbols; "
                                       "left unchanged users, cat_exchanges"]
    again = tickerctl("db", "init", database_url=pg_url, cwd=tmp_path)
    assert again.stdout.splitlines() == ["tables present: all 5 existed, left unchanged"]
    with psycopg.connect(pg_url) as c:
        assert columns(c, ("cat_exchanges", "users")) == before_cols
        assert constraints(c, ("cat_exchanges", "users")) == before_keys
        assert c.execute("SELECT name, extra_col FROM cat_exchanges").fetchall() == [("kraken", 7)]
        assert c.execute("SELECT mail FROM users").fetchall() == [("x@y",)]
        assert triggers(c) == [] and not notify_function_exists(c)


def test_notify_triggers_only_on_request_and_removable(pg_url, tmp_path):
    """No trigger after a plain db init; `--notify` installs them (a change is NOTIFYed on the
    supervisor's channel); a plain re-run keeps them and says so; `db notify off` removes them and
    their function; `db notify on` / `status` work on their own."""
    plain = tickerctl("db", "init", database_url=pg_url, cwd=tmp_path)
    assert plain.returncode == 0
    with psycopg.connect(pg_url) as c:
        assert triggers(c) == [] and not notify_function_exists(c)

    on = tickerctl("db", "init", "--notify", database_url=pg_url, cwd=tmp_path)
    assert on.returncode == 0, on.stderr
    assert on.stdout.splitlines() == ["tables present: all 5 existed, left unchanged",
                                      *(f"trigger on {t} installed" for t in catalog.TRIGGER_TABLES)]
    with psycopg.connect(pg_url, autocommit=True) as c:
        assert sorted(triggers(c)) == sorted((t, f"fullon_ticker_notify_{t}") for t in catalog.TRIGGER_TABLES)
        assert notify_function_exists(c)
        c.execute(f"LISTEN {catalog.CHANNEL}")
        with psycopg.connect(pg_url, autocommit=True) as writer:
            writer.execute("INSERT INTO cat_exchanges (name) VALUES ('okx')")
        got = [n.payload for n in c.notifies(timeout=5, stop_after=1)]
        assert got == ["cat_exchanges"]

    kept = tickerctl("db", "init", database_url=pg_url, cwd=tmp_path)
    assert kept.stdout.splitlines()[-1] == ("notify triggers installed on exchanges, symbols, cat_exchanges, users "
                                            "(kept; `tickerctl db notify off` removes them)")
    status = tickerctl("db", "notify", "status", database_url=pg_url, cwd=tmp_path)
    assert status.stdout.strip() == "notify triggers: installed on exchanges, symbols, cat_exchanges, users"

    off = tickerctl("db", "notify", "off", database_url=pg_url, cwd=tmp_path)
    assert off.returncode == 0, off.stderr
    assert off.stdout.splitlines() == [*(f"trigger on {t} removed" for t in catalog.TRIGGER_TABLES),
                                       "function fullon_ticker_notify() removed"]
    with psycopg.connect(pg_url) as c:
        assert triggers(c) == [] and not notify_function_exists(c)
    again = tickerctl("db", "notify", "off", database_url=pg_url, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() == "no notify triggers installed; nothing to remove"
    assert tickerctl("db", "notify", "status", database_url=pg_url, cwd=tmp_path).stdout.startswith(
        "notify triggers: none")

    on = tickerctl("db", "notify", "on", database_url=pg_url, cwd=tmp_path)
    assert on.returncode == 0 and len(on.stdout.splitlines()) == 4
    twice = tickerctl("db", "notify", "on", database_url=pg_url, cwd=tmp_path)
    assert twice.stdout.splitlines() == [f"trigger on {t}: already installed" for t in catalog.TRIGGER_TABLES]
    with psycopg.connect(pg_url) as c:
        assert len(triggers(c)) == 4


def test_notify_on_without_tables_is_a_database_error(pg_url, tmp_path):
    """`db notify on` before `db init`: exit 2 with one line saying what to do, nothing created."""
    out = tickerctl("db", "notify", "on", database_url=pg_url, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"tickerctl: database error ({pg_url}): table(s) exchanges, symbols, cat_exchanges, users missing; "
        "run `tickerctl db init` first"]
    with psycopg.connect(pg_url) as c:
        assert not notify_function_exists(c)

"""`tickerctl db init --seed FILE` fills fullon's tables through their LIVE columns, and
`catalog.load_pg` reads the seeded symbols back as the supervisor does."""

from __future__ import annotations

import psycopg

from fullon_ticker_service import catalog
from fullon_ticker_service.config import DatabaseSettings, Settings
from tests.catalog.helpers import FULLON_DDL, seed_file, tickerctl

SEED = {"binance": ["BTC/USDT", "ETH/USDT:USDT", "1000PEPE/USDT"], "okx": ["SOL/USDC", "BTC/USD:BTC-250328"]}


def _load(url: str) -> tuple[catalog.Catalog, list[str]]:
    settings = Settings(database=DatabaseSettings(url=url))
    with psycopg.connect(url) as conn:
        return catalog.load_pg(conn, settings)


def _symbols(url: str) -> dict[str, tuple[str, str, bool]]:
    with psycopg.connect(url) as c:
        return {s: (b, q, f) for s, b, q, f in c.execute("SELECT symbol, base, quote, futures FROM symbols")}


def test_seed_empty_database_then_load_pg(pg_url, tmp_path):
    """(a) An empty database: tables created, admin, exchanges and symbols seeded with base/quote/
    futures from the unified symbol (base cut to fullon's varchar(6)); load_pg returns them; the
    SQLAlchemy URL (password included) works; a second run adds nothing."""
    seed = seed_file(tmp_path / "seed.toml", SEED)
    url = pg_url.replace("postgresql://postgres@", "postgresql+asyncpg://postgres:pw@")  # trust auth ignores it
    out = tickerctl("db", "init", "--seed", str(seed), database_url=url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "tables present: created users, cat_exchanges, cat_exchanges_params, exchanges, symbols",
        "admin user admin@fullon created",
        "binance: 3 new symbols, 0 already there (exchange added to the admin's exchanges)",
        "okx: 2 new symbols, 0 already there (exchange added to the admin's exchanges)",
        "seeded 2 exchanges, 5 new symbols"]
    assert out.stderr == ""
    assert _load(pg_url) == ({k: tuple(sorted(v)) for k, v in SEED.items()}, [])
    assert _symbols(pg_url) == {
        "BTC/USDT": ("BTC", "USDT", False), "ETH/USDT:USDT": ("ETH", "USDT", True),
        "1000PEPE/USDT": ("1000PE", "USDT", False), "SOL/USDC": ("SOL", "USDC", False),
        "BTC/USD:BTC-250328": ("BTC", "USD", True)}
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT mail, role, active FROM users").fetchall() == [("admin@fullon", "admin", True)]
        assert c.execute("SELECT count(*) FROM exchanges WHERE active").fetchone()[0] == 2
    again = tickerctl("db", "init", "--seed", str(seed), database_url=url, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.splitlines()[1:] == ["binance: 0 new symbols, 3 already there",
                                             "okx: 0 new symbols, 2 already there",
                                             "seeded 2 exchanges, 0 new symbols"]


# fullon's schema as a live fullon database may have it: the base DDL plus columns fullon's ORM and
# test doubles add (symbols.active), and other NOT NULL columns without defaults of every kind.
EXTRA_COLUMNS = """
CREATE TYPE tier AS ENUM ('bronze', 'silver');
ALTER TABLE symbols ADD COLUMN active bool NOT NULL;
ALTER TABLE symbols ADD COLUMN listed date NOT NULL;
ALTER TABLE symbols ADD COLUMN min_size numeric(12, 4) NOT NULL;
ALTER TABLE users ADD COLUMN api_token char(8) NOT NULL;
ALTER TABLE users ADD COLUMN created timestamptz NOT NULL;
ALTER TABLE users ADD COLUMN external_id uuid NOT NULL;
ALTER TABLE users ADD COLUMN prefs jsonb NOT NULL;
ALTER TABLE users ADD COLUMN tags text[] NOT NULL;
ALTER TABLE users ADD COLUMN level tier NOT NULL;
ALTER TABLE users ADD COLUMN nickname varchar(20) NOT NULL DEFAULT 'anon';
ALTER TABLE exchanges ADD COLUMN label varchar(4) NOT NULL;
ALTER TABLE exchanges ADD COLUMN weight double precision NOT NULL;
ALTER TABLE exchanges ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE cat_exchanges ADD COLUMN maker_fee real NOT NULL;
"""


def test_seed_fullon_schema_with_extra_required_columns(pg_url, tmp_path):
    """(b) A database made with fullon's DDL (quote NOT NULL, the FKs) plus NOT NULL columns our
    schema does not know: every one is filled with a neutral value of its type, nothing is
    altered, and load_pg reads the seeded symbols back."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(FULLON_DDL)
        c.execute(EXTRA_COLUMNS)
    out = tickerctl("db", "init", "--seed", str(seed_file(tmp_path / "seed.toml", SEED)),
                    database_url=pg_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "tables present: all 5 existed, left unchanged"
    assert out.stdout.splitlines()[-1] == "seeded 2 exchanges, 5 new symbols"
    assert _load(pg_url) == ({k: tuple(sorted(v)) for k, v in SEED.items()}, [])
    with psycopg.connect(pg_url) as c:
        user = c.execute("SELECT mail, api_token, created > now() - interval '1 hour', external_id IS NOT NULL, "
                         "prefs, tags, level::text, nickname, password, f2a FROM users").fetchone()
        assert user == ("admin@fullon", " " * 8, True, True, {}, [], "bronze", "anon", " " * 64, "")
        assert c.execute("SELECT DISTINCT label, weight, active FROM exchanges").fetchall() == [("", 0.0, True)]
        assert c.execute("SELECT DISTINCT maker_fee FROM cat_exchanges").fetchall() == [(0.0,)]
        assert c.execute("SELECT DISTINCT active, listed = current_date, min_size FROM symbols").fetchall() == \
            [(True, True, 0)]
        assert c.execute("SELECT count(*) FROM symbols WHERE quote <> ''").fetchone()[0] == 5


def test_seed_old_base_schema_without_quote(pg_url, tmp_path):
    """fullon's old base schema has no `symbols.quote`: nothing is added to it, seeding still works."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(FULLON_DDL)
        c.execute("ALTER TABLE symbols DROP COLUMN quote")
    out = tickerctl("db", "init", "--seed", str(seed_file(tmp_path / "s.toml", {"kraken": ["BTC/EUR"]})),
                    database_url=pg_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _load(pg_url) == ({"kraken": ("BTC/EUR",)}, [])
    with psycopg.connect(pg_url) as c:
        assert "quote" not in {r[0] for r in c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'symbols'")}


def test_seed_reuses_existing_rows_and_never_changes_them(pg_url, tmp_path):
    """An existing admin (other columns as they were), catalog exchange and symbol are reused; an
    inactive admin account stays inactive (said in one line, and not collected); too-long symbols
    are skipped with one line each."""
    assert tickerctl("db", "init", database_url=pg_url, cwd=tmp_path).returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as c:
        uid = c.execute("INSERT INTO users (mail, password, f2a, role, name, lastname, phone, id_num) "
                        "VALUES ('admin@fullon', 'h', 'f', 'root', 'Ada', 'L', '1', '2') RETURNING uid").fetchone()[0]
        okx = c.execute("INSERT INTO cat_exchanges (name) VALUES ('okx') RETURNING cat_ex_id").fetchone()[0]
        c.execute("INSERT INTO exchanges (uid, cat_ex_id, name, active) VALUES (%s, %s, 'mine', false)", (uid, okx))
        c.execute("INSERT INTO symbols (symbol, cat_ex_id, base, quote, decimals) "
                  "VALUES ('SOL/USDC', %s, 'S', 'U', 3)", (okx,))
    long = "BTC/USD:BTC-220624-50000-C"
    out = tickerctl("db", "init", "--seed", str(seed_file(tmp_path / "s.toml", {**SEED, "kraken": [long]})),
                    database_url=pg_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == [
        "binance: 3 new symbols, 0 already there (exchange added to the admin's exchanges)",
        "okx: 1 new symbols, 1 already there (the admin's account on it is inactive and left so: not collected)",
        f"kraken: {long!r} is longer than symbols.symbol allows (20); skipped",
        "kraken: 0 new symbols, 0 already there (exchange added to the admin's exchanges)",
        "seeded 3 exchanges, 4 new symbols"]
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT uid, role, name FROM users").fetchall() == [(uid, "root", "Ada")]
        assert c.execute("SELECT base, quote, decimals FROM symbols WHERE symbol = 'SOL/USDC'").fetchone() == \
            ("S", "U", 3)
        assert c.execute("SELECT name, active FROM exchanges WHERE cat_ex_id = %s", (okx,)).fetchall() == \
            [("mine", False)]
    assert _load(pg_url) == ({"binance": tuple(sorted(SEED["binance"])), "kraken": ()}, [])


def test_seed_column_that_cannot_be_filled_changes_nothing(pg_url, tmp_path):
    """A required column of a type with no neutral value: exit 2 with one line naming it, and the
    seed is rolled back whole (the tables line was already printed: that part is done)."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(FULLON_DDL)
        c.execute("ALTER TABLE symbols ADD COLUMN blob bytea NOT NULL")
    out = tickerctl("db", "init", "--seed", str(seed_file(tmp_path / "s.toml", SEED)), database_url=pg_url,
                    cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout.splitlines() == ["tables present: all 5 existed, left unchanged"]
    assert out.stderr.splitlines() == [f"tickerctl: database error ({pg_url}): symbols.blob is NOT NULL bytea (bytea) "
                                       "without a default; cannot choose a value to seed it"]
    with psycopg.connect(pg_url) as c:
        assert [c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("users", "cat_exchanges")] == [0, 0]


def test_split_symbol():
    assert catalog.split_symbol("BTC/USDT") == ("BTC", "USDT")
    assert catalog.split_symbol("ETH/USDT:USDT") == ("ETH", "USDT")
    assert catalog.split_symbol("BTC/USD:BTC-220624-50000-C") == ("BTC", "USD")

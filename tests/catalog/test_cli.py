"""`tickerctl db ...` errors: one line on stderr, exit 3 for configuration, 2 for the database,
never a traceback, never a password."""

from __future__ import annotations

import socket

import psycopg
import pytest

from tests.catalog.helpers import seed_file, tickerctl

PASSWORD = "s3cr3t-Pw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(out, code: int) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and PASSWORD not in out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "env", "expected"), [
    (("db", "init"), {"DATABASE_URL": f"mysql://u:{PASSWORD}@h/d"},
     "tickerctl: configuration error: database.url: expected a postgresql://, postgres:// or "
     "postgresql+DRIVER:// URL"),
    (("db", "init"), {}, "tickerctl: configuration error: no database configured (set DATABASE_URL or DB_HOST...)"),
    (("db", "notify", "off"), {}, "tickerctl: configuration error: no database configured (set DATABASE_URL or "
                                  "DB_HOST...)"),
    (("db", "init"), {"DB_HOST": "127.0.0.1", "DB_PORT": "54x", "DB_PASSWORD": PASSWORD},
     "tickerctl: configuration error: DB_PORT: expected an integer, got '54x'"),
], ids=["url-scheme", "no-database", "notify-no-database", "db-port"])
def test_configuration_errors_exit_3(args, env, expected, tmp_path):
    assert _one_line(tickerctl(*args, cwd=tmp_path, extra_env=env), 3) == expected


def test_bad_seed_file_exits_3_before_touching_the_database(pg_url, tmp_path):
    """A seed file that is not a catalog is a configuration error, found before any table is made."""
    bad = tmp_path / "seed.toml"
    bad.write_text('[exchanges.binance]\nsymbols = ["BTCUSDT"]\n')
    line = _one_line(tickerctl("db", "init", "--seed", str(bad), database_url=pg_url, cwd=tmp_path), 3)
    assert line == f"tickerctl: configuration error: {bad}: exchanges.binance.symbols must be a list of unified symbols"
    missing = _one_line(tickerctl("db", "init", "--seed", str(tmp_path / "nope.toml"), database_url=pg_url,
                                  cwd=tmp_path), 3)
    assert missing.startswith("tickerctl: configuration error: ") and "nope.toml" in missing
    with psycopg.connect(pg_url) as c:
        assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+asyncpg", "postgres"])
def test_unreachable_database_exits_2_with_the_password_masked(scheme, tmp_path):
    url = f"{scheme}://postgres:{PASSWORD}@127.0.0.1:{_free_port()}/fullon"
    line = _one_line(tickerctl("db", "init", "--seed", str(seed_file(tmp_path / "s.toml", {"okx": ["BTC/USDT"]})),
                               database_url=url, cwd=tmp_path), 2)
    shown = "postgresql" if scheme != "postgres" else "postgres"
    assert line.startswith(f"tickerctl: database error ({shown}://postgres:***@127.0.0.1:")
    assert "Connection refused" in line


def test_missing_database_exits_2(tmp_path):
    url = "postgresql://postgres@127.0.0.1:5432/tcat_does_not_exist"
    line = _one_line(tickerctl("db", "notify", "status", database_url=url, cwd=tmp_path), 2)
    assert 'database "tcat_does_not_exist" does not exist' in line


def test_unknown_log_format_is_one_warning_and_the_command_runs(pg_url, tmp_path):
    """fullon's shared .env with a LOG_FORMAT we do not know: one warning line, then the command works."""
    (tmp_path / ".env").write_text("LOG_FORMAT=fancy   # a newer fullon_log name\nLOG_LEVEL=info\n")
    out = tickerctl("db", "init", database_url=pg_url, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("tables present: created")
    warning = out.stderr.strip().splitlines()
    assert len(warning) == 1 and "service.log_format: unknown value 'fancy', using 'trading'" in warning[0]

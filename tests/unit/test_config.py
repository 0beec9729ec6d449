"""config.load: defaults < TOML < .env < environment, and strict rejection naming the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from fullon_ticker_service import config
from fullon_ticker_service.config import ConfigError


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory so config/tickerctl.toml and .env of the repo are never read."""
    monkeypatch.chdir(tmp_path)


def _toml(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _load(path: Path | str | None = None, environ: dict[str, str] | None = None, dotenv: Any = None):
    return config.load(path, environ={} if environ is None else environ, dotenv=dotenv)


# --- defaults and TOML -----------------------------------------------------------------------

def test_defaults_without_file() -> None:
    """With no file and an empty environment, every setting is its built-in default."""
    s = _load()
    assert s.source == "(built-in defaults)"
    assert s.redis.dsn() == "redis://127.0.0.1:6379/0"
    assert not s.database.enabled and s.database.admin_mail == "admin@fullon"
    assert (s.service.namespace, s.service.log_level, s.service.log_format) == ("ticker_service", "INFO", "trading")
    assert s.service.health_interval == 5.0 and s.service.only_exchanges == ()
    assert (s.defaults.reconnect_delay, s.defaults.max_retries, s.defaults.stale_after) == (5.0, 3, 30.0)
    assert (s.supervisor.restart_base, s.supervisor.max_crashes, s.supervisor.stop_timeout) == (1.0, 5, 10.0)
    assert s.exchanges == {}


def test_default_config_path_is_read_from_cwd(tmp_path: Path) -> None:
    """Without an explicit path, config/tickerctl.toml relative to the working directory is read."""
    (tmp_path / "config").mkdir()
    _toml(tmp_path, '[service]\nnamespace = "from_default"\n', "config/tickerctl.toml")
    s = _load()
    assert s.service.namespace == "from_default"
    assert s.source == "config/tickerctl.toml"


def test_toml_values(tmp_path: Path) -> None:
    """Every section of the TOML file is read with the declared types."""
    path = _toml(tmp_path, """
[redis]
host = "10.0.0.5"
port = 6390
db = 4
password = "pw"

[database]
url = "postgresql://u:p@db:5432/fullon"
admin_mail = "ops@example.org"
poll_interval = 2

[service]
namespace = "ts2"
log_level = "DEBUG"
log_format = "json"
health_interval = 1.5
only_exchanges = ["okx"]

[defaults]
reconnect_delay = 2
max_retries = 9
max_skew = 3.5

[exchanges.okx]
symbols = ["BTC/USDT", "ETH/USDT:USDT"]
ccxt = { options = { defaultType = "spot" } }
method = "watch_ticker"
chunk = 7
""")
    s = _load(path)
    assert s.source == str(path)
    assert (s.redis.host, s.redis.port, s.redis.db, s.redis.password) == ("10.0.0.5", 6390, 4, "pw")
    assert s.redis.dsn() == "redis://:pw@10.0.0.5:6390/4"
    assert s.database.enabled and s.database.url == "postgresql://u:p@db:5432/fullon"
    assert s.database.admin_mail == "ops@example.org"
    assert s.database.poll_interval == 2.0 and isinstance(s.database.poll_interval, float)
    assert (s.service.namespace, s.service.log_level, s.service.log_format) == ("ts2", "DEBUG", "json")
    assert s.service.health_interval == 1.5 and s.service.only_exchanges == ("okx",)
    assert s.defaults.reconnect_delay == 2.0 and isinstance(s.defaults.reconnect_delay, float)
    assert s.defaults.max_retries == 9 and s.defaults.max_skew == 3.5
    okx = s.exchanges["okx"]
    assert okx.symbols == ("BTC/USDT", "ETH/USDT:USDT")
    assert okx.ccxt == {"options": {"defaultType": "spot"}}
    assert (okx.method, okx.chunk) == ("watch_ticker", 7)


def test_supervisor_section(tmp_path: Path) -> None:
    """The [supervisor] table sets the restart policy and stop deadline with the declared types."""
    path = _toml(tmp_path, "[supervisor]\nrestart_base = 2\nrestart_cap = 30.5\nmax_crashes = 9\n"
                           "crash_window = 120\nstop_timeout = 3\n")
    sv = _load(path).supervisor
    assert (sv.restart_base, sv.restart_cap, sv.max_crashes, sv.crash_window, sv.stop_timeout) == \
        (2.0, 30.5, 9, 120.0, 3.0)
    assert isinstance(sv.restart_base, float) and isinstance(sv.max_crashes, int)
    assert sv.stable_after == 60.0  # untouched default


def test_defaults_fill_exchange_tables(tmp_path: Path) -> None:
    """[defaults] supplies what an [exchanges.X] table omits; the table's own keys win."""
    path = _toml(tmp_path, """
[defaults]
stale_after = 12.0
max_retries = 8
chunk = 20

[exchanges.binance]
symbols = ["BTC/USDT"]
chunk = 100

[exchanges.kraken]
stale_after = 40
""")
    s = _load(path)
    assert (s.exchanges["binance"].stale_after, s.exchanges["binance"].max_retries) == (12.0, 8)
    assert s.exchanges["binance"].chunk == 100
    assert (s.exchanges["kraken"].stale_after, s.exchanges["kraken"].chunk) == (40.0, 20)
    assert s.exchanges["kraken"].symbols == ()
    assert s.exchange("kraken") is s.exchanges["kraken"]
    assert s.exchange("bybit") is s.defaults


def test_string_for_list_is_split_on_commas(tmp_path: Path) -> None:
    """A string where a list is expected is read as a comma-separated list (how env lists arrive)."""
    s = _load(_toml(tmp_path, '[exchanges.binance]\nsymbols = "BTC/USDT, ETH/USDT,"\n'))
    assert s.exchanges["binance"].symbols == ("BTC/USDT", "ETH/USDT")


# --- environment -----------------------------------------------------------------------------

ENV_CASES = [
    ("REDIS_HOST", {"REDIS_HOST": "redis.internal"}, lambda s: s.redis.host, "redis.internal"),
    ("REDIS_PORT", {"REDIS_PORT": "6380"}, lambda s: s.redis.port, 6380),
    ("REDIS_DB", {"REDIS_DB": "5"}, lambda s: s.redis.db, 5),
    ("REDIS_PASSWORD", {"REDIS_PASSWORD": "pa ss"}, lambda s: s.redis.password, "pa ss"),
    ("REDIS_parts-dsn", {"REDIS_HOST": "h", "REDIS_PORT": "1234", "REDIS_DB": "2", "REDIS_PASSWORD": "pw"},
     lambda s: s.redis.dsn(), "redis://:pw@h:1234/2"),
    ("REDIS_URL", {"REDIS_URL": "rediss://:pw@cache:6380/3"}, lambda s: s.redis.dsn(), "rediss://:pw@cache:6380/3"),
    ("REDIS_URL-unix", {"REDIS_URL": "unix:///tmp/redis.sock"}, lambda s: s.redis.dsn(), "unix:///tmp/redis.sock"),
    ("DATABASE_URL", {"DATABASE_URL": "postgres://a:b@h/d"}, lambda s: s.database.url, "postgres://a:b@h/d"),
    ("DB_parts", {"DB_HOST": "pg", "DB_PORT": "5433", "DB_NAME": "fl", "DB_USER": "me", "DB_PASSWORD": "s3cr3t"},
     lambda s: s.database.url, "postgresql://me:s3cr3t@pg:5433/fl"),
    ("DB_PASSWORD-quoted", {"DB_USER": "me", "DB_PASSWORD": "p@ss:w/rd #%"},
     lambda s: s.database.url, "postgresql://me:p%40ss%3Aw%2Frd%20%23%25@127.0.0.1:5432/fullon"),
    ("DB_USER-quoted", {"DB_USER": "a@b"}, lambda s: s.database.url, "postgresql://a%40b@127.0.0.1:5432/fullon"),
    ("DB_NAME-only", {"DB_NAME": "other"}, lambda s: s.database.url, "postgresql://postgres@127.0.0.1:5432/other"),
    ("DATABASE_URL-beats-DB_parts", {"DATABASE_URL": "postgresql://x@y/z", "DB_HOST": "pg"},
     lambda s: s.database.url, "postgresql://x@y/z"),
    ("DB_parts-enable-database", {"DB_HOST": "pg"}, lambda s: s.database.enabled, True),
    ("ADMIN_MAIL", {"ADMIN_MAIL": "root@x"}, lambda s: s.database.admin_mail, "root@x"),
    ("LOG_LEVEL", {"LOG_LEVEL": "debug"}, lambda s: s.service.log_level, "DEBUG"),
    ("LOG_LEVEL-fullon-info", {"LOG_LEVEL": "info"}, lambda s: s.service.log_level, "INFO"),
    ("LOG_LEVEL-WARN", {"LOG_LEVEL": "Warn"}, lambda s: s.service.log_level, "WARNING"),
    ("LOG_LEVEL-number", {"LOG_LEVEL": "40"}, lambda s: s.service.log_level, "ERROR"),
    ("LOG_FORMAT", {"LOG_FORMAT": "json"}, lambda s: s.service.log_format, "json"),
    ("LOG_FORMAT-beautiful", {"LOG_FORMAT": "beautiful"}, lambda s: s.service.log_format, "beautiful"),
    ("LOG_FORMAT-case", {"LOG_FORMAT": " Detailed "}, lambda s: s.service.log_format, "detailed"),
    ("DATABASE_URL-asyncpg", {"DATABASE_URL": "postgresql+asyncpg://u:pw@db:5433/fullon"},
     lambda s: s.database.url, "postgresql://u:pw@db:5433/fullon"),
    ("DATABASE_URL-postgres-driver", {"DATABASE_URL": "postgres+psycopg2://u@db/fullon"},
     lambda s: s.database.url, "postgres://u@db/fullon"),
    ("DATABASE_URL-asyncpg-ssl", {"DATABASE_URL": "postgresql+asyncpg://u@db/f?ssl=require&application_name=x"},
     lambda s: s.database.url, "postgresql://u@db/f?sslmode=require&application_name=x"),
    ("DATABASE_URL-asyncpg-sslmode-wins", {"DATABASE_URL": "postgresql+asyncpg://u@db/f?sslmode=disable&ssl=true"},
     lambda s: s.database.url, "postgresql://u@db/f?sslmode=disable"),
    ("DATABASE_URL-plain-query-untouched", {"DATABASE_URL": "postgresql://u@db/f?ssl=1"},
     lambda s: s.database.url, "postgresql://u@db/f?ssl=1"),
    ("TICKER_NAMESPACE", {"TICKER_NAMESPACE": "ts_b"}, lambda s: s.service.namespace, "ts_b"),
    ("TICKER_HEALTH_INTERVAL", {"TICKER_HEALTH_INTERVAL": "0.5"}, lambda s: s.service.health_interval, 0.5),
    ("TICKER_DAEMON_EXCHANGES", {"TICKER_DAEMON_EXCHANGES": "binance, okx,,kraken "},
     lambda s: s.service.only_exchanges, ("binance", "okx", "kraken")),
    ("TICKER_RECONNECT_DELAY", {"TICKER_RECONNECT_DELAY": "2.5"}, lambda s: s.defaults.reconnect_delay, 2.5),
    ("TICKER_MAX_RETRIES", {"TICKER_MAX_RETRIES": "7"}, lambda s: s.defaults.max_retries, 7),
    ("TICKER_STALE_AFTER", {"TICKER_STALE_AFTER": "15"}, lambda s: s.defaults.stale_after, 15.0),
    ("empty-value-ignored", {"REDIS_HOST": "", "TICKER_MAX_RETRIES": ""},
     lambda s: (s.redis.host, s.defaults.max_retries), ("127.0.0.1", 3)),
    ("unrelated-vars-ignored", {"HOME": "/root", "PATH": "/bin", "DB": "x"}, lambda s: s.redis.host, "127.0.0.1"),
]


@pytest.mark.parametrize(("environ", "get", "expected"), [c[1:] for c in ENV_CASES], ids=[c[0] for c in ENV_CASES])
def test_environment_overrides(environ: dict[str, str], get: Any, expected: Any) -> None:
    """Each supported environment variable sets its setting, converted to the declared type."""
    value = get(_load(environ=environ))
    assert value == expected
    assert type(value) is type(expected)


def test_environment_beats_toml(tmp_path: Path) -> None:
    """An environment variable overrides the same setting from the TOML file."""
    path = _toml(tmp_path, '[redis]\nhost = "from-toml"\nport = 1111\n[defaults]\nmax_retries = 2\n')
    s = _load(path, {"REDIS_HOST": "from-env", "TICKER_MAX_RETRIES": "4"})
    assert (s.redis.host, s.redis.port, s.defaults.max_retries) == ("from-env", 1111, 4)


def test_environment_defaults_reach_exchanges(tmp_path: Path) -> None:
    """TICKER_RECONNECT_DELAY sets [defaults], so exchanges that do not set it inherit the env value."""
    path = _toml(tmp_path, "[exchanges.okx]\nchunk = 5\n[exchanges.kraken]\nreconnect_delay = 9\n")
    s = _load(path, {"TICKER_RECONNECT_DELAY": "1.25"})
    assert s.exchanges["okx"].reconnect_delay == 1.25
    assert s.exchanges["kraken"].reconnect_delay == 9.0


def test_ticker_config_env_selects_file(tmp_path: Path) -> None:
    """TICKER_CONFIG names the config file when no path is passed."""
    path = _toml(tmp_path, '[service]\nnamespace = "via_env"\n', "other.toml")
    assert _load(None, {"TICKER_CONFIG": str(path)}).service.namespace == "via_env"


def test_db_parts_in_environment_beat_toml_url(tmp_path: Path) -> None:
    """DB_HOST & co. in the environment override a database.url from the TOML file (env > TOML)."""
    path = _toml(tmp_path, '[database]\nurl = "postgresql://fullon@localhost:5432/fullon"\n')
    s = _load(path, {"DB_HOST": "prod-db", "DB_USER": "fullon", "DB_PASSWORD": "pw"})
    assert s.database.url == "postgresql://fullon:pw@prod-db:5432/fullon"


# --- .env ------------------------------------------------------------------------------------

def test_dotenv_is_read(tmp_path: Path) -> None:
    """A .env file sets variables: comments, blank lines, `export` and quotes are handled."""
    env_file = tmp_path / ".env"
    env_file.write_text("# a comment\n\nexport REDIS_HOST=dot-host\nREDIS_PASSWORD=\"q w\"\n"
                        "TICKER_MAX_RETRIES='6'\nLOG_FORMAT = json\n")
    s = _load(environ={}, dotenv=env_file)
    assert (s.redis.host, s.redis.password, s.defaults.max_retries, s.service.log_format) == \
        ("dot-host", "q w", 6, "json")


def test_real_environment_beats_dotenv(tmp_path: Path) -> None:
    """A variable set in both the environment and .env takes the environment's value."""
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_HOST=dot-host\nREDIS_DB=3\n")
    s = _load(environ={"REDIS_HOST": "env-host"}, dotenv=env_file)
    assert (s.redis.host, s.redis.db) == ("env-host", 3)


def test_dotenv_beats_toml(tmp_path: Path) -> None:
    """A .env value overrides the TOML file."""
    (tmp_path / ".env").write_text("TICKER_NAMESPACE=dot_ns\n")
    path = _toml(tmp_path, '[service]\nnamespace = "toml_ns"\n')
    assert _load(path, {}, dotenv=tmp_path / ".env").service.namespace == "dot_ns"


def test_dotenv_missing_is_ignored(tmp_path: Path) -> None:
    """A .env path that does not exist is not an error."""
    assert _load(environ={}, dotenv=tmp_path / "nope.env").redis.host == "127.0.0.1"


def test_dotenv_unknown_ticker_variable_is_rejected(tmp_path: Path) -> None:
    """An unknown TICKER_* variable is rejected also when it comes from .env."""
    (tmp_path / ".env").write_text("TICKER_TYPO=1\n")
    with pytest.raises(ConfigError, match="TICKER_TYPO"):
        _load(environ={}, dotenv=tmp_path / ".env")


def test_dotenv_inline_comments_as_in_fullons_examples(tmp_path: Path) -> None:
    """fullon's example .env files annotate values (`LOG_FORMAT=beautiful   # beautiful, minimal, ...`):
    the comment is not part of the value, quoted or not; a `#` inside a value is kept."""
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=INFO                    # DEBUG, INFO, WARNING, ERROR, CRITICAL\n"
                        "LOG_FORMAT=beautiful              # beautiful, minimal, development, detailed, trading, json\n"
                        'REDIS_PASSWORD="a #b"  # quoted: kept\n'
                        "DATABASE_URL=postgresql+asyncpg://u:p#w@db/fullon # demo\n")
    s = _load(environ={}, dotenv=env_file)
    assert (s.service.log_level, s.service.log_format) == ("INFO", "beautiful")
    assert s.redis.password == "a #b"
    assert s.database.url == "postgresql://u:p#w@db/fullon"


def test_dotenv_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    """A .env line that is not KEY=VALUE is rejected with the file and line number."""
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_HOST=h\nthis is not an assignment\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=VALUE"):
        _load(environ={}, dotenv=env_file)


# --- rejections ------------------------------------------------------------------------------

REJECT_TOML = [
    ("unknown-section", "[redis2]\nhost = 'x'\n", "redis2: unknown section"),
    ("unknown-key-redis", "[redis]\nhots = 'x'\n", "redis.hots: unknown setting"),
    ("unknown-key-database", "[database]\nuri = 'x'\n", "database.uri: unknown setting"),
    ("unknown-key-service", "[service]\nnamesapce = 'x'\n", "service.namesapce: unknown setting"),
    ("unknown-key-supervisor", "[supervisor]\nrestart_bse = 1\n", "supervisor.restart_bse: unknown setting"),
    ("supervisor-bool-for-int", "[supervisor]\nmax_crashes = true\n", "supervisor.max_crashes: expected an int"),
    ("supervisor-negative", "[supervisor]\nstop_timeout = -1\n", "supervisor.stop_timeout: expected a finite"),
    ("unknown-key-defaults", "[defaults]\nstale = 1\n", "defaults.stale: unknown setting"),
    ("unknown-key-exchange", "[exchanges.binance]\nsymbol = ['BTC/USDT']\n", "exchanges.binance.symbol: unknown"),
    ("string-for-int", "[redis]\nport = 'six'\n", "redis.port: expected an integer"),
    ("float-for-int", "[defaults]\nchunk = 1.5\n", "defaults.chunk: expected an integer"),
    ("bool-for-int", "[defaults]\nmax_retries = true\n", "defaults.max_retries: expected an integer"),
    ("bool-for-number", "[defaults]\nstale_after = true\n", "defaults.stale_after: expected a number"),
    ("string-for-number", "[defaults]\nmax_skew = 'soon'\n", "defaults.max_skew: expected a number"),
    ("negative-number", "[defaults]\nreconnect_delay = -1.0\n", "defaults.reconnect_delay: expected a finite"),
    ("nan-number", "[defaults]\nmax_skew = nan\n", "defaults.max_skew: expected a finite"),
    ("inf-number", "[database]\npoll_interval = inf\n", "database.poll_interval: expected a finite"),
    ("list-for-string", "[service]\nnamespace = ['a']\n", "service.namespace: expected a string"),
    ("int-for-string", "[redis]\npassword = 123\n", "redis.password: expected a string"),
    ("table-for-list", "[exchanges.okx]\nsymbols = { a = 1 }\n", "exchanges.okx.symbols: expected a list"),
    ("int-in-list", "[exchanges.okx]\nsymbols = [1]\n", "exchanges.okx.symbols[0]: expected a string"),
    ("string-for-table", "[exchanges.okx]\nccxt = 'x'\n", "exchanges.okx.ccxt: expected a table"),
    ("exchanges-not-table", "exchanges = 5\n", "exchanges: expected a table"),
    ("exchange-not-table", "[exchanges]\nbinance = 5\n", "exchanges.binance: expected a table"),
    ("exchange-name-case", "[exchanges.Binance]\n", "exchanges.Binance: exchange names"),
    ("exchange-name-chars", "[exchanges.\"bin-ance\"]\n", "exchanges.bin-ance: exchange names"),
    ("log-format-not-string", "[service]\nlog_format = 5\n", "service.log_format: expected a string"),
    ("empty-namespace", "[service]\nnamespace = ''\n", "service.namespace"),
    ("namespace-space", "[service]\nnamespace = 'a b'\n", "service.namespace"),
    ("namespace-glob", "[service]\nnamespace = 'ts*'\n", "service.namespace"),
    ("namespace-brace", "[service]\nnamespace = 'ts{1}'\n", "service.namespace"),
    ("health-interval-zero", "[service]\nhealth_interval = 0\n", "service.health_interval"),
    ("redis-url-scheme", "[redis]\nurl = 'http://h:6379'\n", "redis.url"),
    ("redis-sentinels", "[redis]\nsentinels = 'a:1,b'\n", "redis.sentinels: expected host:port"),
    ("host-id-colon", "[cluster]\nhost_id = 'a:b'\n", "cluster.host_id"),
    ("host-id-space", "[cluster]\nhost_id = 'a b'\n", "cluster.host_id"),
    ("capacity-negative", "[cluster]\ncapacity = -1\n", "cluster.capacity"),
    ("lease-renew-too-slow", "[cluster]\nlease_ttl = 3\nlease_renew = 2\n", "cluster.lease_renew"),
    ("lease-ttl-tiny", "[cluster]\nlease_ttl = 0.1\n", "cluster.lease_ttl"),
    ("cluster-unknown-key", "[cluster]\nhostid = 'a'\n", "cluster.hostid"),
    ("database-url-scheme", "[database]\nurl = 'mysql://h/db'\n", "database.url"),
    ("bad-method", "[exchanges.okx]\nmethod = 'watch_all'\n", "exchanges.okx.method"),
    ("bad-method-defaults", "[defaults]\nmethod = 'poll'\n", "defaults.method"),
    ("negative-chunk", "[exchanges.okx]\nchunk = -1\n", "exchanges.okx.chunk"),
    ("zero-stale-after", "[exchanges.okx]\nstale_after = 0\n", "exchanges.okx.stale_after"),
    ("symbol-without-slash", "[exchanges.okx]\nsymbols = ['BTCUSDT']\n", "exchanges.okx.symbols: 'BTCUSDT'"),
    ("symbol-with-space", "[exchanges.okx]\nsymbols = ['BTC/ USDT']\n", "exchanges.okx.symbols: 'BTC/ USDT'"),
    ("symbol-glob", "[exchanges.okx]\nsymbols = ['BTC/*']\n", "exchanges.okx.symbols: 'BTC/*'"),
    ("symbol-empty-quote", "[exchanges.okx]\nsymbols = ['BTC/:USDT']\n", "exchanges.okx.symbols"),
    ("symbol-in-defaults", "[defaults]\nsymbols = ['BTC']\n", "defaults.symbols: 'BTC'"),
    ("invalid-toml", "[redis\nhost = 1\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in REJECT_TOML], ids=[c[0] for c in REJECT_TOML])
def test_toml_rejections(tmp_path: Path, text: str, message: str) -> None:
    """A bad TOML file raises ConfigError with a one-line message naming the key."""
    with pytest.raises(ConfigError) as info:
        _load(_toml(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value).strip() or message == "not valid TOML"


REJECT_ENV = [
    ("unknown-TICKER-var", {"TICKER_RECONECT_DELAY": "1"}, "TICKER_RECONECT_DELAY: unknown environment setting"),
    ("REDIS_PORT-not-int", {"REDIS_PORT": "abc"}, "redis.port: expected an integer"),
    ("REDIS_DB-float", {"REDIS_DB": "1.5"}, "redis.db: expected an integer"),
    ("TICKER_MAX_RETRIES-not-int", {"TICKER_MAX_RETRIES": "many"}, "defaults.max_retries: expected an integer"),
    ("TICKER_RECONNECT_DELAY-negative", {"TICKER_RECONNECT_DELAY": "-2"}, "defaults.reconnect_delay"),
    ("TICKER_RECONNECT_DELAY-nan", {"TICKER_RECONNECT_DELAY": "nan"}, "defaults.reconnect_delay"),
    ("TICKER_HEALTH_INTERVAL-zero", {"TICKER_HEALTH_INTERVAL": "0"}, "service.health_interval"),
    ("TICKER_NAMESPACE-glob", {"TICKER_NAMESPACE": "a?b"}, "service.namespace"),
    ("REDIS_URL-scheme", {"REDIS_URL": "tcp://h:6379"}, "redis.url"),
    ("REDIS_SENTINELS", {"REDIS_SENTINELS": "h:26379,h2"}, "redis.sentinels"),
    ("TICKER_CAPACITY-not-int", {"TICKER_CAPACITY": "two"}, "cluster.capacity"),
    ("TICKER_HOST_ID-colon", {"TICKER_HOST_ID": "x:y"}, "cluster.host_id"),
    ("DATABASE_URL-scheme", {"DATABASE_URL": "sqlite:///x.db"}, "database.url"),
    ("DATABASE_URL-other-driver", {"DATABASE_URL": "mysql+pymysql://u:pw@h/d"}, "database.url"),
    ("DB_PORT-not-int", {"DB_HOST": "h", "DB_PORT": "54x"}, "DB_PORT: expected an integer"),
]


@pytest.mark.parametrize(("environ", "message"), [c[1:] for c in REJECT_ENV], ids=[c[0] for c in REJECT_ENV])
def test_environment_rejections(environ: dict[str, str], message: str) -> None:
    """A bad environment value raises ConfigError naming the setting or variable."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        _load(environ=environ)


def test_ticker_config_is_a_known_ticker_variable(tmp_path: Path) -> None:
    """TICKER_CONFIG is not reported as an unknown TICKER_* variable."""
    path = _toml(tmp_path, "")
    assert _load(None, {"TICKER_CONFIG": str(path)}).source == str(path)


@pytest.mark.parametrize("how", ["argument", "TICKER_CONFIG"])
def test_missing_explicit_config_file(tmp_path: Path, how: str) -> None:
    """A config file named explicitly (argument or TICKER_CONFIG) that does not exist is an error."""
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=re.escape("missing.toml: config file not found")):
        if how == "argument":
            _load(missing)
        else:
            _load(None, {"TICKER_CONFIG": str(missing)})


@pytest.mark.parametrize("text", ["redis = 5\n", 'service = "x"\n'], ids=["int", "string"])
def test_section_that_is_not_a_table(tmp_path: Path, text: str) -> None:
    """A top-level section given a scalar raises ConfigError naming the section."""
    section = text.split(" ")[0]
    with pytest.raises(ConfigError, match=f"{section}: expected a table"):
        _load(_toml(tmp_path, text))


# --- RedisSettings.dsn and valid_symbol -------------------------------------------------------

@pytest.mark.parametrize(("settings", "dsn"), [
    (config.RedisSettings(), "redis://127.0.0.1:6379/0"),
    (config.RedisSettings(host="h", port=7000, db=3), "redis://h:7000/3"),
    (config.RedisSettings(password="p@ss:w/rd #%"), "redis://:p%40ss%3Aw%2Frd%20%23%25@127.0.0.1:6379/0"),
    (config.RedisSettings(password="plain"), "redis://:plain@127.0.0.1:6379/0"),
    (config.RedisSettings(url="rediss://:x@h:1/2", password="ignored"), "rediss://:x@h:1/2"),
], ids=["default", "host-port-db", "special-password", "plain-password", "url-wins"])
def test_redis_dsn(settings: config.RedisSettings, dsn: str) -> None:
    """dsn() builds a redis:// URL with the password percent-quoted, or returns the explicit url."""
    assert settings.dsn() == dsn


@pytest.mark.parametrize(("symbol", "ok"), [
    ("BTC/USDT", True), ("BTC/USDT:USDT", True), ("BTC/USD:BTC-220527", True),
    ("BTC/USD:BTC-220624-50000-C", True), ("1000PEPE/USDT", True),
    ("BTCUSDT", False), ("BTC/ USDT", False), ("BTC/USDT ", False), ("/USDT", False), ("BTC/", False),
    ("BTC/:USDT", False), ("B/", False), ("BTC/USDT\n", False), ("BTC/€", False), ("A/" + "B" * 63, False),
    ("BTC/US*", False), ("BTC/'X'", False), ("", False),
])
def test_valid_symbol(symbol: str, ok: bool) -> None:
    """valid_symbol accepts unified ccxt symbols and rejects anything else."""
    assert config.valid_symbol(symbol) is ok


def test_cluster_and_sentinel_settings_from_environment() -> None:
    """The several-hosts settings and Sentinel come from the fullon-style environment too."""
    s = config.load(None, environ={"TICKER_HOST_ID": "box-2", "TICKER_CAPACITY": "4", "TICKER_LEASE_TTL": "6",
                            "REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380",
                            "REDIS_SENTINEL_SERVICE": "tickers"}, dotenv=None)
    assert (s.cluster.host_id, s.cluster.capacity, s.cluster.lease_ttl) == ("box-2", 4, 6.0)
    assert s.cluster.renew_every == 2.0  # lease_ttl / 3 unless set
    assert s.redis.sentinel_service == "tickers"
    from fullon_ticker_service.redis_client import sentinel_addresses

    assert sentinel_addresses(s.redis) == [("10.0.0.1", 26379), ("::1", 26380)]


# --- fullon's shared environment: LOG_FORMAT / LOG_LEVEL never stop us ---------------------------

@pytest.fixture
def warnings_logged():
    """Lines loguru receives at WARNING and above while the test runs (whatever sinks exist)."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m).rstrip("\n")), level="WARNING", format="{message}")
    yield lines
    logger.remove(sink)


@pytest.mark.parametrize("name", ["beautiful", "minimal", "development", "detailed", "trading", "json",
                                  "BEAUTIFUL", "Json"])
def test_every_fullon_log_format_is_accepted_silently(name: str, warnings_logged: list[str]) -> None:
    """Each of fullon_log's LOG_FORMAT names loads (lower-cased) without a warning."""
    assert _load(environ={"LOG_FORMAT": name}).service.log_format == name.lower()
    assert warnings_logged == []


@pytest.mark.parametrize(("environ", "expected"), [
    ({"LOG_FORMAT": "xml"}, ("INFO", "trading")),
    ({"LOG_LEVEL": "chatty"}, ("INFO", "trading")),
    ({"LOG_FORMAT": "yaml", "LOG_LEVEL": "LOUD"}, ("INFO", "trading")),
    ({"LOG_FORMAT": "fancy", "LOG_LEVEL": "debug"}, ("DEBUG", "trading")),
], ids=["format", "level", "both", "format-with-good-level"])
def test_unknown_log_values_warn_once_and_use_the_default(environ: dict[str, str], expected: tuple[str, str],
                                                          warnings_logged: list[str]) -> None:
    """An unknown LOG_FORMAT / LOG_LEVEL is one warning line naming it and the default, never an error."""
    s = _load(environ=environ)
    assert (s.service.log_level, s.service.log_format) == expected
    assert len(warnings_logged) == 1, warnings_logged
    for value in environ.values():
        if value not in ("debug",):
            assert repr(value) in warnings_logged[0]
    # settings re-built from these (dataclasses.replace, as a reload does) do not warn again
    import dataclasses

    dataclasses.replace(s.service, namespace="other")
    assert len(warnings_logged) == 1


def test_unknown_log_format_in_toml_warns_too(tmp_path: Path, warnings_logged: list[str]) -> None:
    """The same tolerance for the TOML file's service.log_format (it is the same setting)."""
    assert _load(_toml(tmp_path, "[service]\nlog_format = 'xml'\n")).service.log_format == "trading"
    assert len(warnings_logged) == 1 and "service.log_format" in warnings_logged[0]


def test_ticker_daemon_constructs_with_fullons_shared_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          warnings_logged: list[str]) -> None:
    """fullon_master_api builds `TickerDaemon()` in ServiceManager.__init__ catching only ImportError:
    with a fullon .env (any fullon_log format, unknown ones too, SQLAlchemy DATABASE_URL) it constructs."""
    import os

    from fullon_ticker_service import TickerDaemon

    for key in list(os.environ):
        if key.startswith(("TICKER_", "REDIS_", "DB_", "DATABASE_", "LOG_")):
            monkeypatch.delenv(key)
    (tmp_path / ".env").write_text("LOG_LEVEL=info\nLOG_FORMAT=beautiful\nLOG_CONSOLE=true\nLOG_COLORS=true\n"
                                   "DATABASE_URL=postgresql+asyncpg://fullon:secret@localhost:5432/fullon\n")
    d = TickerDaemon()
    assert (d.settings.service.log_format, d.settings.service.log_level) == ("beautiful", "INFO")
    assert d.settings.database.url == "postgresql://fullon:secret@localhost:5432/fullon"
    assert d.status == "stopped" and not d.is_running() and warnings_logged == []
    monkeypatch.setenv("LOG_FORMAT", "something-new")
    d = TickerDaemon()
    assert d.settings.service.log_format == "trading" and len(warnings_logged) == 1


def test_database_settings_built_directly_are_normalised() -> None:
    """DatabaseSettings(url=...) built by an embedding program gets the same libpq URL."""
    assert config.DatabaseSettings(url="postgresql+asyncpg://a@b/c").url == "postgresql://a@b/c"
    assert config.libpq_url("postgresql+asyncpg://a@b/c?ssl=false") == "postgresql://a@b/c?sslmode=disable"
    assert config.libpq_url("redis://x") == "redis://x"

"""Settings: defaults < TOML file < `.env` < environment, validated strictly.

Every unknown key or bad value raises `ConfigError` with one line naming the key, so a typo
fails at start instead of being silently ignored. Two exceptions, for fullon's shared `.env`:
LOG_LEVEL and LOG_FORMAT take fullon_log's values in any case, and an unknown one is one warning
line and the default, never an error (fullon_master_api builds `TickerDaemon()` in its own
constructor, so an exception there would stop the whole API over a logging preference).
DATABASE_URL may be SQLAlchemy's `postgresql+asyncpg://` form (fullon's scripts set it); the
`+driver` is dropped because libpq (psycopg) only knows `postgresql://`/`postgres://`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from loguru import logger

from fullon_ticker_service import logs

DEFAULT_CONFIG = Path("config/tickerctl.toml")


class ConfigError(ValueError):
    """A configuration problem, described in one line that names the key."""


@dataclass(frozen=True)
class RedisSettings:
    url: str = ""  # full URL (redis:// or rediss://); built from host/port/db/password when empty
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    password: str = ""
    sentinels: str = ""  # "host:port,host:port": find the master through Redis Sentinel (url/host/port unused)
    sentinel_service: str = "mymaster"  # the master's name in Sentinel

    def dsn(self) -> str:
        if self.url:
            return self.url
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{self.db}"


_SQLALCHEMY_PG = re.compile(r"^(?P<scheme>postgres(?:ql)?)\+[A-Za-z0-9_]+://", re.IGNORECASE)


def libpq_url(url: str) -> str:
    """`postgresql+asyncpg://...` (SQLAlchemy's form, which fullon's scripts set) -> `postgresql://...`.

    libpq rejects the `+driver` scheme, and asyncpg's `ssl=` query parameter (libpq: `sslmode=`),
    so both are translated; any other URL is returned unchanged (postgres:// is libpq's too)."""
    m = _SQLALCHEMY_PG.match(url)
    if not m:
        return url
    url = f"{m['scheme'].lower()}://{url[m.end():]}"
    base, sep, query = url.partition("?")
    if not sep:
        return url
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k == "sslmode" for k, _ in pairs):  # libpq's own parameter wins; asyncpg's would be refused
        pairs = [(k, v) for k, v in pairs if k != "ssl"]
    else:
        ssl_values = {"true": "require", "false": "disable"}
        pairs = [("sslmode", ssl_values.get(v.lower(), v)) if k == "ssl" else (k, v) for k, v in pairs]
    return f"{base}?{urlencode(pairs)}"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""  # empty: no database, the config file's [exchanges] table is the catalog
    admin_mail: str = "admin@fullon"
    poll_interval: float = 10.0  # catalog poll when the optional LISTEN/NOTIFY triggers are absent

    def __post_init__(self) -> None:
        # here rather than in load(): every reader of `url` (supervisor, TickerDaemon) hands it to libpq
        if isinstance(self.url, str):
            object.__setattr__(self, "url", libpq_url(self.url))

    @property
    def enabled(self) -> bool:
        return bool(self.url)


@dataclass(frozen=True)
class ServiceSettings:
    namespace: str = "ticker_service"  # prefix of our own keys; fullon keys are never prefixed
    log_level: str = "INFO"  # any case, WARN/FATAL too; stored upper-case; unknown: one warning, INFO
    log_format: str = "trading"  # fullon_log's names (logs.FORMATS); unknown: one warning, "trading"
    health_interval: float = 5.0  # seconds between health records; TTL is 3x this
    only_exchanges: tuple[str, ...] = ()  # TICKER_DAEMON_EXCHANGES: collect only these

    def __post_init__(self) -> None:
        """Normalise LOG_LEVEL/LOG_FORMAT and never fail on them (see the module docstring).

        Runs once where the settings are built: worker processes receive the normalised values
        (pickled, not re-constructed), so a bad value is reported once, not once per process."""
        unknown = []
        for key, normalize, default in (("log_level", logs.normalize_level, logs.DEFAULT_LEVEL),
                                        ("log_format", logs.normalize_format, logs.DEFAULT_FORMAT)):
            raw = getattr(self, key)
            value = normalize(raw)
            if value is None:
                value = default
                unknown.append(f"service.{key}: unknown value {str(raw)[:40]!r}, using {default!r}")
            object.__setattr__(self, key, value)
        if unknown:
            logger.warning("; ".join(unknown))


@dataclass(frozen=True)
class SupervisorSettings:
    """Restart policy (see policy.py) and shutdown deadline."""

    restart_base: float = 1.0  # first restart delay after a crash (s)
    restart_cap: float = 60.0  # longest restart delay (s)
    stable_after: float = 60.0  # uptime after which the crash backoff resets (s)
    max_crashes: int = 5  # crashes inside crash_window that park an exchange as `failed`
    crash_window: float = 300.0
    heartbeat_timeout: float = 30.0  # a worker whose health record is older is killed (hung loop)
    start_grace: float = 60.0  # time a new worker has for its first health record
    stop_timeout: float = 10.0  # graceful stop deadline before SIGKILL
    start_method: str = "forkserver"  # "forkserver": workers fork from a process with ccxt preloaded; or "spawn"


@dataclass(frozen=True)
class ClusterSettings:
    """Several hosts sharing the exchanges through one Redis (lease.py, placement.py)."""

    host_id: str = ""  # this host's name in the namespace; empty = the machine's hostname
    capacity: int = 0  # worker slots this host offers; 0 = unlimited
    lease_ttl: float = 5.0  # an owner silent this long loses its exchanges (failover ~ this + ~0.1 s)
    lease_renew: float = 0.0  # how often a worker renews its lease; 0 = lease_ttl / 3
    host_ttl: float = 3.0  # a supervisor silent this long leaves the placement

    @property
    def renew_every(self) -> float:
        return self.lease_renew or self.lease_ttl / 3


@dataclass(frozen=True)
class ExchangeSettings:
    """How to collect one exchange. `[defaults]` fills what an `[exchanges.X]` table omits."""

    symbols: tuple[str, ...] = ()  # catalog symbols (used only when there is no database)
    ccxt: dict[str, Any] = field(default_factory=dict)  # ccxt constructor overrides (urls, options)
    ccxt_id: str = ""  # ccxt class when it differs from the catalog name
    markets: str = ""  # markets snapshot: a JSON file path or a loopback http URL; empty = REST
    streams: tuple[str, ...] = ()  # "ticker" and/or "bidask"; empty = the venue's default (channels.py)
    decoder: str = "native"  # "native": our decoder for the busiest channels where one exists; "ccxt"
    shadow_every: int = 1000  # 1 decoded frame in N is also parsed by ccxt and compared (0: never)
    method: str = ""  # the ticker stream's "watch_tickers" / "watch_ticker"; empty = per-venue choice
    channel: str = ""  # the ticker stream's channel when the venue has several (binance: ticker)
    chunk: int = 0  # symbols per ticker subscription; 0 = per-venue default
    stale_after: float = 30.0  # a stream (ticker or bid/ask) silent this long forces a reconnect
    symbol_stale_after: float = 300.0  # a symbol not written this long is stale (health) and forces a
    # resubscribe (0: no resubscribe; health then uses 300 s)
    reconnect_delay: float = 5.0  # TICKER_RECONNECT_DELAY: base of the reconnect backoff
    reconnect_max_delay: float = 60.0
    max_retries: int = 3  # TICKER_MAX_RETRIES: failed reconnects in a row before status `error`
    max_skew: float = 10.0  # accepted clock skew of exchange timestamps into the future (s)
    max_behind: float = 60.0  # an exchange clock further behind than this is reported as clock skew (s)
    first_tick_grace: float = 30.0  # a symbol not written this long after it was subscribed counts as missing
    flush_interval: float = 0.0  # minimum spacing of Redis flushes (s); 0 = flush on arrival
    max_frame_bytes: int = 4 * 1024 * 1024  # a larger websocket frame drops the connection (then reconnect)


@dataclass(frozen=True)
class Settings:
    redis: RedisSettings = field(default_factory=RedisSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    defaults: ExchangeSettings = field(default_factory=ExchangeSettings)
    exchanges: dict[str, ExchangeSettings] = field(default_factory=dict)
    source: str = ""  # the config file that was read, for messages

    def exchange(self, name: str) -> ExchangeSettings:
        return self.exchanges.get(name) or self.defaults


# --- generic strict conversion -------------------------------------------------------------

def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value) if isinstance(value, int | str) else _fail()
        except (ValueError, TypeError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            out = float(value) if isinstance(value, int | float | str) else _fail()
        except (ValueError, TypeError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not math.isfinite(out) or out < 0:
            raise ConfigError(f"{key}: expected a finite number >= 0, got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, _) = typing.get_args(tp)
        return tuple(_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        _, val_tp = typing.get_args(tp)
        return {str(k): _convert(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    raise ConfigError(f"{key}: unsupported setting type {tp!r}")  # pragma: no cover


def _fail() -> Any:
    raise TypeError


def _build(cls: Any, data: Any, prefix: str, base: Any = None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{where}: unknown setting (known: {', '.join(sorted(names))})")
    values = {} if base is None else {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
    for key, raw in data.items():
        where = f"{prefix}.{key}" if prefix else key
        values[key] = _convert(raw, hints[key], where)
    return cls(**values)


def _exchanges(data: Any, defaults: ExchangeSettings) -> dict[str, ExchangeSettings]:
    if not isinstance(data, dict):
        raise ConfigError(f"exchanges: expected a table of exchange tables, got {data!r}")
    out = {}
    for name, table in data.items():
        if not isinstance(name, str) or not name.replace("_", "").isalnum() or name != name.lower():
            raise ConfigError(f"exchanges.{name}: exchange names are lower-case ccxt-style ids")
        out[name] = _build(ExchangeSettings, table, f"exchanges.{name}", base=defaults)
    return out


# --- sources -------------------------------------------------------------------------------

def read_text(path: Path, what: str) -> str:
    """A text file as UTF-8; ConfigError (one line) when it cannot be read or is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                          f"save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file: KEY=VALUE lines, `#` comments, optional quotes, optional `export`."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(read_text(path, "the .env file").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().replace("_", "").isalnum():
            raise ConfigError(f"{path}:{n}: expected KEY=VALUE, got {line[:40]!r}")
        out[key.strip()] = _dotenv_value(value.strip())
    return out


def _dotenv_value(value: str) -> str:
    """A value with its quotes and any trailing ` # comment` removed, as python-dotenv reads it:
    fullon's example `.env` files annotate lines (`LOG_FORMAT=beautiful  # beautiful, minimal, ...`)."""
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        rest = value[end + 1:].strip() if end > 0 else None
        if rest == "" or (rest is not None and rest.startswith("#")):
            return value[1:end]
        if len(value) >= 2 and value[0] == value[-1]:
            return value[1:-1]
        return value
    return re.split(r"\s#", value, maxsplit=1)[0].rstrip()


# Environment variable -> (section, key). fullon's names first, then ours (TICKER_*).
ENV_KEYS: dict[str, tuple[str, str]] = {
    "REDIS_URL": ("redis", "url"),
    "REDIS_HOST": ("redis", "host"),
    "REDIS_PORT": ("redis", "port"),
    "REDIS_DB": ("redis", "db"),
    "REDIS_PASSWORD": ("redis", "password"),
    "REDIS_SENTINELS": ("redis", "sentinels"),
    "REDIS_SENTINEL_SERVICE": ("redis", "sentinel_service"),
    "DATABASE_URL": ("database", "url"),
    "ADMIN_MAIL": ("database", "admin_mail"),
    "LOG_LEVEL": ("service", "log_level"),
    "LOG_FORMAT": ("service", "log_format"),
    "TICKER_NAMESPACE": ("service", "namespace"),
    "TICKER_HEALTH_INTERVAL": ("service", "health_interval"),
    "TICKER_DAEMON_EXCHANGES": ("service", "only_exchanges"),
    "TICKER_RECONNECT_DELAY": ("defaults", "reconnect_delay"),
    "TICKER_MAX_RETRIES": ("defaults", "max_retries"),
    "TICKER_STALE_AFTER": ("defaults", "stale_after"),
    "TICKER_STOP_TIMEOUT": ("supervisor", "stop_timeout"),
    "TICKER_HOST_ID": ("cluster", "host_id"),
    "TICKER_CAPACITY": ("cluster", "capacity"),
    "TICKER_LEASE_TTL": ("cluster", "lease_ttl"),
}
OTHER_TICKER_ENV = {"TICKER_CONFIG"}  # read by `load()` itself
SECTIONS = ("redis", "database", "service", "supervisor", "cluster", "defaults")
DB_PARTS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")


def _database_url_from_parts(env: dict[str, str]) -> str:
    if not any(env.get(k) for k in DB_PARTS):
        return ""
    user = quote(env.get("DB_USER", "postgres"), safe="")
    password = env.get("DB_PASSWORD", "")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    port = env.get("DB_PORT", "5432")
    if not port.isdigit():
        raise ConfigError(f"DB_PORT: expected an integer, got {port!r}")
    return f"postgresql://{auth}@{env.get('DB_HOST', '127.0.0.1')}:{port}/{env.get('DB_NAME', 'fullon')}"


def load(
    config_path: str | Path | None = None,
    environ: dict[str, str] | None = None,
    dotenv: str | Path | None = ".env",
) -> Settings:
    """Read the TOML file, then `.env`, then the environment (later wins)."""
    env = dict(os.environ if environ is None else environ)
    if dotenv:
        env = {**read_dotenv(Path(dotenv)), **env}
    path = Path(config_path or env.get("TICKER_CONFIG") or DEFAULT_CONFIG)
    explicit = config_path is not None or "TICKER_CONFIG" in env
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(read_text(path, "the config file"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    elif explicit:
        raise ConfigError(f"{path}: config file not found")

    for name in env:
        if name.startswith("TICKER_") and name not in ENV_KEYS and name not in OTHER_TICKER_ENV:
            raise ConfigError(f"{name}: unknown environment setting (known: "
                              f"{', '.join(sorted(k for k in ENV_KEYS if k.startswith('TICKER_')))})")
    for name in SECTIONS:
        if not isinstance(data.get(name, {}), dict):
            raise ConfigError(f"{name}: expected a table, got {data[name]!r}")
    sections: dict[str, dict[str, Any]] = {
        s: dict(data.get(s) or {}) for s in SECTIONS
    }
    for name, (section, key) in ENV_KEYS.items():
        if env.get(name, "") != "":
            sections[section][key] = env[name]
    if not env.get("DATABASE_URL") and (url := _database_url_from_parts(env)):
        sections["database"]["url"] = url

    unknown = set(data) - {*SECTIONS, "exchanges"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown section in {path} "
                          f"(known: {', '.join((*SECTIONS, 'exchanges'))})")
    defaults = _build(ExchangeSettings, sections["defaults"], "defaults")
    settings = Settings(
        redis=_build(RedisSettings, sections["redis"], "redis"),
        database=_build(DatabaseSettings, sections["database"], "database"),
        service=_build(ServiceSettings, sections["service"], "service"),
        supervisor=_build(SupervisorSettings, sections["supervisor"], "supervisor"),
        cluster=_build(ClusterSettings, sections["cluster"], "cluster"),
        defaults=defaults,
        exchanges=_exchanges(data.get("exchanges") or {}, defaults),
        source=str(path) if path.is_file() else "(built-in defaults)",
    )
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    # service.log_level / log_format are never an error: ServiceSettings normalises them
    if not s.service.namespace or any(c in s.service.namespace for c in " {}*?"):
        raise ConfigError(f"service.namespace: must be non-empty without spaces or glob characters, "
                          f"got {s.service.namespace!r}")
    if s.service.health_interval <= 0:
        raise ConfigError("service.health_interval: must be > 0")
    if s.supervisor.start_method not in ("spawn", "forkserver"):
        raise ConfigError(f"supervisor.start_method: expected 'spawn' or 'forkserver', "
                          f"got {s.supervisor.start_method!r}")
    if s.redis.url and not s.redis.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("redis.url: expected a redis://, rediss:// or unix:// URL")
    for part in filter(None, s.redis.sentinels.split(",")):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"redis.sentinels: expected host:port[,host:port...], got {part.strip()!r}")
    c = s.cluster
    if c.host_id and (not c.host_id.isascii() or any(ch in c.host_id for ch in " :{}*?[]") or len(c.host_id) > 64):
        raise ConfigError(f"cluster.host_id: at most 64 ASCII characters without spaces, ':' or glob "
                          f"characters, got {c.host_id!r}")
    if c.capacity < 0:
        raise ConfigError("cluster.capacity: must be >= 0 (0 = unlimited)")
    if c.lease_ttl < 0.5 or c.host_ttl < 1.0:
        raise ConfigError("cluster.lease_ttl must be >= 0.5 s and cluster.host_ttl >= 1 s")
    if not 0 <= c.lease_renew <= c.lease_ttl / 2:
        raise ConfigError(f"cluster.lease_renew: must be between 0 (= lease_ttl/3) and lease_ttl/2 "
                          f"({c.lease_ttl / 2:g} s)")
    if s.database.url and not s.database.url.startswith(("postgresql://", "postgres://")):
        # the URL itself is not repeated: it may carry a password
        raise ConfigError("database.url: expected a postgresql://, postgres:// or postgresql+DRIVER:// URL")
    for name, ex in {"defaults": s.defaults, **{f"exchanges.{k}": v for k, v in s.exchanges.items()}}.items():
        if ex.method not in ("", "watch_tickers", "watch_ticker"):
            raise ConfigError(f"{name}.method: expected 'watch_tickers' or 'watch_ticker', got {ex.method!r}")
        if ex.decoder not in ("native", "ccxt"):
            raise ConfigError(f"{name}.decoder: expected 'native' or 'ccxt', got {ex.decoder!r}")
        if ex.shadow_every < 0:
            raise ConfigError(f"{name}.shadow_every: must be >= 0 (0 = no shadow check)")
        for kind in ex.streams:
            if kind not in ("ticker", "bidask"):
                raise ConfigError(f"{name}.streams: expected 'ticker' and/or 'bidask', got {kind!r}")
        if ex.chunk < 0:
            raise ConfigError(f"{name}.chunk: must be >= 0")
        if ex.stale_after <= 0:
            raise ConfigError(f"{name}.stale_after: must be > 0")
        if ex.max_frame_bytes < 1024:
            raise ConfigError(f"{name}.max_frame_bytes: must be >= 1024")
        for sym in ex.symbols:
            if not valid_symbol(sym):
                raise ConfigError(f"{name}.symbols: {sym!r} is not a unified symbol like BTC/USDT")


def valid_symbol(symbol: str) -> bool:
    """A unified ccxt symbol: BASE/QUOTE[:SETTLE[-EXPIRY...]], printable ASCII, at most 64 chars."""
    if not isinstance(symbol, str) or not 3 <= len(symbol) <= 64 or not symbol.isascii():
        return False
    if any(c.isspace() or c in "*?[]{}\"'\\" or not c.isprintable() for c in symbol):
        return False
    base, sep, rest = symbol.partition("/")
    return bool(base) and bool(sep) and bool(rest) and not rest.startswith(":")


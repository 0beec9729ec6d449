"""logs.mask_secrets and the configured loguru sinks: no password reaches stderr."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import pytest
from loguru import logger

from fullon_ticker_service import logs

SECRET = "s3cr3t-Pw"


@pytest.fixture
def restore_logger():
    """Give the test the global loguru logger and put the default stderr sink back afterwards."""
    yield
    logger.remove()
    logger.configure(extra={})
    logger.add(sys.stderr)


MASK_CASES = [
    ("redis-no-user", "redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
    ("postgresql-user", "postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
    ("rediss", "rediss://:p%40w@cache:6380/1", "rediss://:***@cache:6380/1"),
    ("password-with-colon", "postgres://u:a:b@h/d", "postgres://u:***@h/d"),
    ("url-inside-text", "connecting to redis://:pw@h:1/0 now", "connecting to redis://:***@h:1/0 now"),
    ("two-urls", "a redis://:x@h b postgresql://u:y@h/d", "a redis://:***@h b postgresql://u:***@h/d"),
    ("password-equals", "password=secret", "password=***"),
    ("password-colon-upper", "PASSWORD: x", "PASSWORD: ***"),
    ("query-string", "?user=me&password=hunter2&x=1", "?user=me&password=***&x=1"),
    ("token-and-secret", "token=abc secret = def", "token=*** secret = ***"),
    ("passwd-pwd", "passwd=a; pwd=b", "passwd=***; pwd=***"),
    ("sqlalchemy-asyncpg", "postgresql+asyncpg://fullon:pw@db:5432/fullon",
     "postgresql+asyncpg://fullon:***@db:5432/fullon"),
]


@pytest.mark.parametrize(("text", "masked"), [c[1:] for c in MASK_CASES], ids=[c[0] for c in MASK_CASES])
def test_mask_secrets(text: str, masked: str) -> None:
    """Passwords in URLs and in password=/secret=/token= pairs are replaced with ***."""
    assert logs.mask_secrets(text) == masked


@pytest.mark.parametrize("text", [
    "binance: 20 symbols subscribed",
    "redis://127.0.0.1:6379/0",
    "postgresql://user@host/db",
    "http://host:8765/binance/markets",
    "user@example.org wrote {x}",
    "passwords are masked",
    "",
], ids=["plain", "redis-no-auth", "pg-user-only", "http-port", "email", "word-passwords", "empty"])
def test_mask_secrets_leaves_other_text(text: str) -> None:
    """Text without a secret is returned unchanged."""
    assert logs.mask_secrets(text) == text


@pytest.mark.parametrize("text", [
    'password="hunter2"',
    "password='hunter2'",
    "{'password': 'hunter2'}",
    '{"secret": "hunter2"}',
    "ccxt config {'apiKey': 'k', 'secret': 'hunter2'}",
], ids=["double-quoted", "single-quoted", "dict-repr", "json", "ccxt-config"])
def test_mask_secrets_quoted_values(text: str) -> None:
    """A quoted password value, or a password key in a dict repr or JSON, is masked too."""
    assert "hunter2" not in logs.mask_secrets(text)


def test_json_sink_masks_and_binds_exchange(capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """With fmt=json every record is one JSON line, password masked, carrying the bound exchange."""
    logs.setup(level="INFO", fmt="json")
    log = logger.bind(exchange="binance")
    log.info(f"connecting to redis://:{SECRET}@127.0.0.1:6379/0 with {{braces}}")
    log.debug("below the level, not written")
    err = capsys.readouterr().err
    assert SECRET not in err
    lines = err.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["exchange"] == "binance"
    assert doc["component"] == "tickerctl"
    assert doc["level"] == "INFO"
    assert doc["message"] == "connecting to redis://:***@127.0.0.1:6379/0 with {braces}"
    assert datetime.fromisoformat(doc["time"]).tzinfo is not None


def test_json_sink_masks_exception(capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """An exception logged in JSON format carries its repr with the password masked."""
    logs.setup(fmt="json", component="worker")
    try:
        raise ConnectionError(f"cannot reach postgresql://fullon:{SECRET}@db/fullon")
    except ConnectionError:
        logger.exception("catalog failed")
    err = capsys.readouterr().err
    assert SECRET not in err
    doc = json.loads(err.splitlines()[-1])
    assert doc["component"] == "worker" and doc["exchange"] is None
    assert doc["exception"] == "ConnectionError('cannot reach postgresql://fullon:***@db/fullon')"


def test_setup_bind_sets_exchange_on_every_line(capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """Fields passed to setup() (exchange=...) appear on every JSON line without bind()."""
    logs.setup(fmt="json", exchange="okx")
    logger.warning("one")
    logger.error("two")
    docs = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(d["exchange"], d["level"], d["message"]) for d in docs] == [("okx", "WARNING", "one"),
                                                                          ("okx", "ERROR", "two")]


def test_trading_sink_masks_and_names_exchange(capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """The human format masks the password and shows the bound exchange on the line."""
    logs.setup(fmt="trading")
    logger.bind(exchange="kraken").info(f"redis at redis://:{SECRET}@h:6379/0")
    err = capsys.readouterr().err
    assert SECRET not in err
    assert "kraken" in err and "redis://:***@h:6379/0" in err
    assert len(err.splitlines()) == 1


def test_trading_sink_prints_braces_once(capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """A message containing braces (e.g. a dict) is printed as logged, braces not doubled."""
    logs.setup(fmt="trading")
    logger.info("params {'name': 'ticker'}")
    assert "params {'name': 'ticker'}" in capsys.readouterr().err


def test_trading_sink_masks_exception(capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """An exception logged in the human format does not reveal the password in its traceback."""
    logs.setup(fmt="trading")
    try:
        raise ConnectionError(f"cannot reach redis://:{SECRET}@h:6379/0")
    except ConnectionError:
        logger.exception("redis failed")
    err = capsys.readouterr().err
    assert "redis failed" in err
    assert SECRET not in err


# --- fullon_log's LOG_FORMAT names and LOG_LEVEL spellings ------------------------------------------

def _one_line(capsys: pytest.CaptureFixture[str], fmt: str, level: str = "INFO") -> str:
    logs.setup(level=level, fmt=fmt)
    logger.bind(exchange="kraken").info(f"redis at redis://:{SECRET}@h:6379/0")
    logger.debug("below INFO")
    err = capsys.readouterr().err
    assert SECRET not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("fmt", ["trading", "beautiful", "Beautiful"])
def test_human_formats(fmt: str, capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """trading and beautiful (fullon_log's default) are our human line: time, level, exchange, message."""
    line = _one_line(capsys, fmt)
    date, clock, level, where, *message = line.split()
    datetime.fromisoformat(f"{date}T{clock}")
    assert (level, where, " ".join(message)) == ("INFO", "kraken", "redis at redis://:***@h:6379/0")


@pytest.mark.parametrize("fmt", ["detailed", "development"])
def test_detailed_formats(fmt: str, capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """detailed and development add the process id and the source module:function:line."""
    import os

    line = _one_line(capsys, fmt)
    assert " INFO " in line and " kraken " in line and line.endswith("redis at redis://:***@h:6379/0")
    assert f" {os.getpid()} tests.unit.test_logs:_one_line:" in line


def test_minimal_format(capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    """minimal: level, exchange and message only (journald/docker add their own timestamps)."""
    assert _one_line(capsys, "minimal") == "INFO kraken redis at redis://:***@h:6379/0"


def test_json_format_any_case(capsys: pytest.CaptureFixture[str], restore_logger: None) -> None:
    assert json.loads(_one_line(capsys, "JSON"))["exchange"] == "kraken"


def test_unknown_format_and_level_fall_back_without_raising(capsys: pytest.CaptureFixture[str],
                                                            restore_logger: None) -> None:
    """setup() never raises on its inputs: an unknown format is the human line, an unknown level INFO."""
    line = _one_line(capsys, "xml", level="chatty")
    assert line.split()[2:4] == ["INFO", "kraken"]


@pytest.mark.parametrize(("raw", "level"), [
    ("info", "INFO"), ("INFO", "INFO"), (" debug ", "DEBUG"), ("Warning", "WARNING"), ("warn", "WARNING"),
    ("error", "ERROR"), ("critical", "CRITICAL"), ("fatal", "CRITICAL"), ("trace", "TRACE"),
    ("success", "SUCCESS"), ("10", "DEBUG"), ("20", "INFO"), ("chatty", None), ("", None), (None, None),
])
def test_normalize_level(raw: object, level: str | None) -> None:
    """fullon's LOG_LEVEL values in any case, Python's WARN/FATAL and numbers; None when unknown."""
    assert logs.normalize_level(raw) == level


@pytest.mark.parametrize(("raw", "fmt"), [
    ("beautiful", "beautiful"), ("MINIMAL", "minimal"), ("development", "development"), ("detailed", "detailed"),
    ("trading", "trading"), (" json", "json"), ("pretty", None), ("", None), (3, None),
])
def test_normalize_format(raw: object, fmt: str | None) -> None:
    assert logs.normalize_format(raw) == fmt
    assert set(logs.FORMATS) == {"beautiful", "minimal", "development", "detailed", "trading", "json"}

"""Logging with loguru: human lines on a terminal, JSON lines with LOG_FORMAT=json.

Every record passes through `mask_secrets`, so a password inside a URL or a `password=` pair
never reaches a sink, whoever logged it. Worker processes bind `exchange` on every line.

LOG_FORMAT takes fullon_log's names, because fullon's services share one `.env` and a name we
did not know used to stop the service (and fullon_master_api with it, which builds
`TickerDaemon()` in its own constructor). We write four kinds of line:

- `trading` (our default) and `beautiful` (fullon_log's default): the human line: time, level,
  exchange or component, message; coloured on a terminal.
- `detailed` and `development`: the human line plus the process id and the source
  `module:function:line`: for finding where a line came from while debugging.
- `minimal`: level, exchange or component and message, no timestamp: for journald or docker,
  which stamp every line themselves.
- `json`: one JSON object per line (time, level, exchange, component, message[, exception]).

`normalize_format`/`normalize_level` accept any case (fullon's `.env` files say `info`, `WARN`);
an unknown value is the caller's to report (config.py warns once and uses the default).
"""

from __future__ import annotations

import re
import sys
import traceback
from typing import Any

import orjson
from loguru import logger

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_KV_PASSWORD = re.compile(
    r"(?i)(?P<k>\b(?:password|passwd|pwd|secret|token)['\"]?\s*[=:]\s*['\"]?)(?P<v>[^\s,;&'\"}]+)")


# fullon_log's LOG_FORMAT names -> the line we write (see the module docstring).
FORMATS: dict[str, str] = {
    "trading": "human",
    "beautiful": "human",
    "detailed": "detailed",
    "development": "detailed",
    "minimal": "minimal",
    "json": "json",
}
DEFAULT_FORMAT = "trading"
LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEVEL = "INFO"
# Python logging's spellings and numbers, which fullon's files (or people) also use.
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "5": "TRACE", "10": "DEBUG", "20": "INFO",
                  "25": "SUCCESS", "30": "WARNING", "40": "ERROR", "50": "CRITICAL"}


def normalize_format(name: object) -> str | None:
    """The canonical LOG_FORMAT name (lower case), or None when it is not one we know."""
    if not isinstance(name, str):
        return None
    name = name.strip().lower()
    return name if name in FORMATS else None


def normalize_level(name: object) -> str | None:
    """The loguru level name for LOG_LEVEL in any case (`info`, `Warn`, `10`), or None if unknown."""
    if not isinstance(name, str):
        return None
    name = name.strip().upper()
    name = _LEVEL_ALIASES.get(name, name)
    return name if name in LEVELS else None


def mask_secrets(text: str) -> str:
    """Replace passwords in URLs (`user:pw@`) and `password=...` pairs with `***`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['k']}***", text)


def _json_line(record: dict[str, Any]) -> str:
    extra = record["extra"]
    doc = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "exchange": extra.get("exchange"),
        "component": extra.get("component", "tickerctl"),
        "message": mask_secrets(record["message"]),
    }
    if record["exception"] is not None:
        doc["exception"] = mask_secrets(repr(record["exception"].value))
    return orjson.dumps(doc).decode().replace("{", "{{").replace("}", "}}") + "\n"


def _prepare(record: dict[str, Any]) -> str:
    """Masked message and traceback into `extra` (a value from extra is not re-formatted); the
    exchange or component the line is about, with braces escaped for loguru."""
    record["extra"]["_masked"] = mask_secrets(record["message"])
    exc = record["exception"]
    record["extra"]["_exc"] = (mask_secrets("".join(traceback.format_exception(exc.type, exc.value, exc.traceback)))
                               if exc is not None else "")
    where = record["extra"].get("exchange") or record["extra"].get("component", "tickerctl")
    return str(where).replace("{", "{{").replace("}", "}}")


def _human_line(record: dict[str, Any]) -> str:
    where = _prepare(record)
    return ("<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
            f"<cyan>{where: <12}</cyan> " "{extra[_masked]}\n{extra[_exc]}")


def _detailed_line(record: dict[str, Any]) -> str:
    where = _prepare(record)
    return ("<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
            f"<cyan>{where: <12}</cyan> " "<magenta>{process.id} {name}:{function}:{line}</magenta> "
            "{extra[_masked]}\n{extra[_exc]}")


def _minimal_line(record: dict[str, Any]) -> str:
    where = _prepare(record)
    return "<level>{level}</level> " f"<cyan>{where}</cyan> " "{extra[_masked]}\n{extra[_exc]}"


_LINES = {"human": _human_line, "detailed": _detailed_line, "minimal": _minimal_line, "json": _json_line}


def setup(level: str = DEFAULT_LEVEL, fmt: str = DEFAULT_FORMAT, **bind: Any) -> None:
    """Configure the single stderr sink; `bind` adds fields (exchange=..., component=...).

    Never raises on `level`/`fmt`: an unknown one means the default (config.py has already said
    so once; workers call this again with the same settings and must not repeat it)."""
    logger.remove()
    logger.configure(extra={"component": "tickerctl", **bind})
    kind = FORMATS[normalize_format(fmt) or DEFAULT_FORMAT]
    lvl = normalize_level(level) or DEFAULT_LEVEL
    logger.add(sys.stderr, level=lvl, format=_LINES[kind], colorize=kind != "json" and sys.stderr.isatty(),
               backtrace=False, diagnose=False)

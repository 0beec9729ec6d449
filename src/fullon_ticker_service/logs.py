"""Logging with loguru: human lines on a terminal, JSON lines with LOG_FORMAT=json.

Every record passes through `mask_secrets`, so a password inside a URL or a `password=` pair
never reaches a sink, whoever logged it. Worker processes bind `exchange` on every line.
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


def _human_line(record: dict[str, Any]) -> str:
    record["extra"]["_masked"] = mask_secrets(record["message"])  # a value from extra is not re-formatted
    exc = record["exception"]
    record["extra"]["_exc"] = (mask_secrets("".join(traceback.format_exception(exc.type, exc.value, exc.traceback)))
                               if exc is not None else "")
    where = record["extra"].get("exchange") or record["extra"].get("component", "tickerctl")
    where = str(where).replace("{", "{{").replace("}", "}}")
    return ("<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
            f"<cyan>{where: <12}</cyan> " "{extra[_masked]}\n{extra[_exc]}")


def setup(level: str = "INFO", fmt: str = "trading", **bind: Any) -> None:
    """Configure the single stderr sink; `bind` adds fields (exchange=..., component=...)."""
    logger.remove()
    logger.configure(extra={"component": "tickerctl", **bind})
    if fmt == "json":
        logger.add(sys.stderr, level=level.upper(), format=_json_line, backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level.upper(), format=_human_line, colorize=sys.stderr.isatty(),
                   backtrace=False, diagnose=False)

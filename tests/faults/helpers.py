"""Helpers for the fault matrix: config for a private Redis, `ps --json` off the event loop,
log parsing, a sampler proving other exchanges keep advancing, and the timings record."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from redis.exceptions import RedisError

from fullon_ticker_service.sim import Simulator
from tests.supervisor.helpers import health, ps_json, write_config
from tests.supervisor.helpers import running as running  # the shared helper, re-exported for tests/faults

# FAULT_OUTAGE_S: length of the refuse and Redis outages. The issue asks for 30 s; the default keeps
# the suite short (`FAULT_OUTAGE_S=30 pytest tests/faults` is the long variant). Nothing else in the
# suite depends on it: every wait is on a condition with a deadline derived from the configuration.
OUTAGE_S = float(os.environ.get("FAULT_OUTAGE_S", "8"))
RUNTIME_DIR = Path(os.environ.get("TEST_RUNTIME_DIR", "/tmp/tickerctl-tests"))
TIMINGS_FILE = Path(os.environ.get("FAULT_TIMINGS_FILE", str(RUNTIME_DIR / "fault-timings.json")))

# What every row measured (row -> name -> value), printed at the end and merged into TIMINGS_FILE.
RESULTS: dict[str, dict[str, Any]] = {}


def record(row: str, **values: Any) -> None:
    RESULTS.setdefault(row, {}).update({k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()})


def save_results() -> None:
    if not RESULTS:
        return
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = orjson.loads(TIMINGS_FILE.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        old = {}
    old.update(RESULTS)
    old["_outage_s"] = OUTAGE_S
    TIMINGS_FILE.write_bytes(orjson.dumps(old, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def fault_config(path: Path, sim: Simulator, exchanges: dict[str, dict[str, Any]], redis_url: str, *,
                 database_url: str = "", supervisor: dict[str, Any] | None = None,
                 health_interval: float | None = None) -> Path:
    """The supervisor tests' config, pointed at a private Redis (`redis.url` wins over host/port/db)."""
    write_config(path, sim, exchanges, database_url=database_url, supervisor=supervisor)
    text = path.read_text()
    assert "[redis]\n" in text and "health_interval = 0.5\n" in text
    text = text.replace("[redis]\n", f'[redis]\nurl = "{redis_url}"\n', 1)
    if health_interval is not None:
        text = text.replace("health_interval = 0.5\n", f"health_interval = {health_interval!r}\n", 1)
    path.write_text(text)
    return path


async def ps(cfg: Path) -> dict[str, dict[str, Any]]:
    """`tickerctl ps --json` by exchange, run in a thread: the simulator shares this event loop."""
    return {r["exchange"]: r for r in await asyncio.to_thread(ps_json, cfg)}


async def ahealth(cfg: Path) -> tuple[int, str]:
    return await asyncio.to_thread(health, cfg)


async def ticker_times(redis: Any, exchange: str, symbols: list[str]) -> dict[str, float]:
    raw = await redis.mget([f"ticker_time:{exchange}:{s}" for s in symbols])
    return {s: float(v) for s, v in zip(symbols, raw, strict=True) if v is not None}


async def fresh(redis: Any, exchange: str, symbols: list[str], since: float) -> bool:
    """Every symbol holds a tick the exchange stamped after `since` (epoch s)."""
    try:
        times = await ticker_times(redis, exchange, symbols)
    except (RedisError, OSError):
        return False
    return len(times) == len(symbols) and min(times.values()) > since


async def health_record(redis: Any, exchange: str, namespace: str = "tst") -> dict[str, Any] | None:
    try:
        raw = await redis.get(f"{namespace}:health:{exchange}")
    except (RedisError, OSError):
        return None
    return None if raw is None else orjson.loads(raw)


class Advancing:
    """Samples the newest `ticker_time` of each exchange every `every` s while active.

    `max_gap[ex]` is the longest stretch (s, test clock) in which that exchange's newest stored
    tick did not move: the hard measure of "kept advancing throughout".
    """

    def __init__(self, redis: Any, exchanges: dict[str, list[str]], every: float = 0.05) -> None:
        self.redis, self.exchanges, self.every = redis, exchanges, every
        self.max_gap = {ex: 0.0 for ex in exchanges}
        self.advances = {ex: 0 for ex in exchanges}
        self._newest: dict[str, float] = {}
        self._moved_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        start = time.monotonic()
        self._moved_at = {ex: start for ex in self.exchanges}
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():  # redis-py can swallow a cancellation mid-command
                raise asyncio.CancelledError
            now = time.monotonic()
            for ex, symbols in self.exchanges.items():
                times = await ticker_times(self.redis, ex, symbols)
                newest = max(times.values(), default=0.0)
                if newest > self._newest.get(ex, 0.0):
                    if ex in self._newest:
                        self.advances[ex] += 1
                    self._newest[ex] = newest
                    self._moved_at[ex] = now
                self.max_gap[ex] = max(self.max_gap[ex], now - self._moved_at[ex])
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> Advancing:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._task, 5)
        now = time.monotonic()
        for ex in self.exchanges:
            self.max_gap[ex] = max(self.max_gap[ex], now - self._moved_at.get(ex, now))


# --- the supervisor's log (human format; workers log to the same file) --------------------------
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\w+)\s+(\S+)\s+(.*)$")


def log_lines(log: Path, pattern: str, where: str | None = None) -> list[tuple[float, re.Match[str]]]:
    """(epoch time, match of `pattern` on the message) of every log line matching, in order."""
    rx = re.compile(pattern)
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m or (where is not None and m.group(3) != where):
            continue
        found = rx.search(m.group(4))
        if found:
            out.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp(), found))
    return out

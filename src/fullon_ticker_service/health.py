"""Health records: what a worker writes every few seconds, how its status is judged, and the
decoder every reader shares.

Records per worker:
- ours, `{namespace}:health:{exchange}` (JSON, TTL 3x the interval): a missing key means no
  live worker; an old `updated_at` means its event loop is stuck;
- ours, `{namespace}:symbols:{exchange}`: one row per symbol (`tickerctl ps --symbols`);
- fullon's ProcessCache record (`process:data:*` and friends), so fullon monitoring lists it.

"running" is a claim that fresh values are reaching Redis: `judge` derives the status from what
Redis confirmed (every wanted symbol written within `symbol_stale_after`), the write state, the
exchange's clock offset and the subscriptions, never from "frames arrived".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

# Worker-reported status words; readers add `stale` (record too old) and `absent` (no record).
STARTING, RUNNING, ERROR, STOPPING, STOPPED = "starting", "running", "error", "stopping", "stopped"
DEGRADED, REDIS_ERROR, CLOCK_SKEW, NO_DATA = "degraded", "redis-error", "clock-skew", "no-data"
COLLECTING = (RUNNING, DEGRADED, REDIS_ERROR, CLOCK_SKEW, NO_DATA, ERROR)  # a subscribed worker's words
# A standby's announcement (keys.armed, not a health record): connected and holding ticks, writing nothing.
ARMED = "armed"


@dataclass(frozen=True)
class Freshness:
    """What Redis confirmed for one worker's symbols, and what might stop it (judge's input)."""

    wanted: int
    fresh: int  # symbols whose last value Redis accepted within `symbol_stale_after`
    missing_past_grace: int  # wanted symbols not fresh, past their start grace
    written_ever: int  # symbols Redis accepted at least one value of
    in_grace: bool  # still within the start grace of the newest symbols
    write_error: str = ""  # "" or the kind of the last flush's failure (OOM, READONLY, timeout...)
    clock_offset: float | None = None  # median exchange time - arrival time (s)
    failing: str = ""  # a subscription failing max_retries reconnects in a row: its error


def judge(phase: str, f: Freshness, max_skew: float, max_behind: float) -> tuple[str, str]:
    """(status, detail) of a worker: `running` only while writes flow and every symbol is fresh.

    Order: the write path first (nothing else matters if Redis refuses), then a clock far off (its
    ticks rejected as future, or stored as hours old: the cause of "no data" when ahead), no data at
    all, reconnects failing, some symbols stale or never written."""
    if phase != RUNNING:
        return phase, ""
    cover = f"{f.fresh}/{f.wanted} symbols"
    if f.write_error:
        return REDIS_ERROR, f.write_error
    if f.clock_offset is not None and (f.clock_offset > max_skew or f.clock_offset < -max_behind):
        return CLOCK_SKEW, f"{f.clock_offset:+.0f}s"
    if f.written_ever == 0 and not f.in_grace:
        return NO_DATA, "no value written yet"
    if f.failing:
        return ERROR, f.failing
    if f.missing_past_grace:
        return DEGRADED, cover
    if f.fresh < f.wanted:
        return STARTING, cover
    return RUNNING, cover


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def process_id(exchange: str, started_at: float) -> str:
    return f"tick:{exchange}:{started_at}"


def process_record(pid: str, exchange: str, status: str, message: str, created_at: float,
                   now: float, params: dict[str, Any]) -> dict[str, Any]:
    """fullon ProcessCache `process:data:{id}` content. fullon's words: starting, running, processing,
    idle, error, stopped; `message` says ours (e.g. "degraded 13/14 symbols"). `last_seen` (epoch s)
    is what fullon_master_api's HealthMonitor and fullon_cache_api judge staleness by."""
    fullon_status = {STARTING: "starting", RUNNING: "running", DEGRADED: "running", STOPPING: "running",
                     STOPPED: "stopped", ERROR: "error", REDIS_ERROR: "error", CLOCK_SKEW: "error",
                     NO_DATA: "error"}[status]
    return {
        "process_id": pid, "process_type": "tick", "component": exchange, "params": params,
        "status": fullon_status, "message": message, "created_at": iso(created_at),
        "updated_at": iso(now), "heartbeat": iso(now), "last_seen": now,
    }


@dataclass(frozen=True)
class WorkerHealth:
    """A decoded health record, as `tickerctl ps`, `health` and ops scripts see it."""

    exchange: str
    status: str  # a worker's word (judge), or the reader's: stale (record too old), absent (no record)
    pid: int | None = None
    host: str = ""
    started_at: float = 0.0
    updated_at: float = 0.0
    symbols: int = 0
    ticks: int = 0
    ticks_per_s: float = 0.0
    rejected: dict[str, int] | None = None
    reconnects: int = 0
    last_tick_age_s: float | None = None
    stalest: list[tuple[str, float]] | None = None
    redis: str = ""
    last_error: str = ""
    raw: dict[str, Any] | None = None
    detail: str = ""  # "13/14 symbols", "OOM", "+3600s"...
    coverage: tuple[int, int] | None = None  # (fresh, wanted) symbols
    write_age_s: float | None = None  # since Redis last accepted a value of any symbol (None: never)
    last_error_at: float | None = None

    @property
    def uptime_s(self) -> float:
        return max(0.0, self.updated_at - self.started_at) if self.started_at else 0.0


def decode(exchange: str, raw: bytes | str | None, now: float | None = None,
           interval: float = 5.0) -> WorkerHealth:
    """Decode a health record; stale when not refreshed for 3 intervals, absent when missing."""
    if raw is None:
        return WorkerHealth(exchange, "absent")
    try:
        doc = orjson.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
    except (orjson.JSONDecodeError, ValueError):
        return WorkerHealth(exchange, "absent", last_error="corrupt health record")
    now = time.time() if now is None else now
    try:
        return _decode(exchange, doc, now, interval)
    except (TypeError, ValueError):
        return WorkerHealth(exchange, "absent", last_error="corrupt health record")


def _decode(exchange: str, doc: dict[str, Any], now: float, interval: float) -> WorkerHealth:
    updated = float(doc.get("updated_at") or 0.0)
    status = str(doc.get("status") or "absent")
    record_interval = float(doc.get("interval") or interval)
    if status not in (STOPPED,) and now - updated > 3 * record_interval:
        status = "stale"
    aged = max(0.0, now - updated) if status != STOPPED else 0.0  # the record itself ages between refreshes
    age = doc.get("last_tick_age_s")
    if isinstance(age, int | float):
        age = age + aged
    write_age = doc.get("last_write_age_s")
    if isinstance(write_age, int | float):
        write_age = write_age + aged
    cover = doc.get("coverage")
    return WorkerHealth(
        exchange=exchange, status=status, pid=doc.get("pid"), host=str(doc.get("host") or ""),
        started_at=float(doc.get("started_at") or 0.0), updated_at=updated,
        symbols=int(doc.get("symbols") or 0), ticks=int(doc.get("ticks") or 0),
        ticks_per_s=float(doc.get("ticks_per_s") or 0.0), rejected=dict(doc.get("rejected") or {}),
        reconnects=int(doc.get("reconnects") or 0),
        last_tick_age_s=None if age is None else float(age),
        stalest=[(str(s), float(a)) for s, a in doc.get("stalest") or []],
        redis=str(doc.get("redis") or ""), last_error=str(doc.get("last_error") or ""), raw=doc,
        detail=str(doc.get("status_detail") or ""),
        coverage=(int(cover[0]), int(cover[1])) if isinstance(cover, list) and len(cover) == 2 else None,
        write_age_s=None if write_age is None else float(write_age),
        last_error_at=float(doc["last_error_at"]) if doc.get("last_error_at") else None,
    )

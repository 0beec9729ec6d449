"""Health records: what a worker writes every few seconds, and the decoder every reader shares.

Two records per worker:
- ours, `{namespace}:health:{exchange}` (JSON, TTL 3x the interval): a missing key means no
  live worker; an old `updated_at` means its event loop is stuck;
- fullon's ProcessCache record (`process:data:*` and friends), so fullon monitoring lists it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

# Worker-reported status words; readers add `stale` (record too old) and `absent` (no record).
STARTING, RUNNING, ERROR, STOPPING, STOPPED = "starting", "running", "error", "stopping", "stopped"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def process_id(exchange: str, started_at: float) -> str:
    return f"tick:{exchange}:{started_at}"


def process_record(pid: str, exchange: str, status: str, message: str, created_at: float,
                   now: float, params: dict[str, Any]) -> dict[str, Any]:
    """fullon ProcessCache `process:data:{id}` content. fullon's words: running/error/stopped..."""
    fullon_status = {STARTING: "starting", RUNNING: "running", ERROR: "error",
                     STOPPING: "running", STOPPED: "stopped"}[status]
    return {
        "process_id": pid, "process_type": "tick", "component": exchange, "params": params,
        "status": fullon_status, "message": message, "created_at": iso(created_at),
        "updated_at": iso(now), "heartbeat": iso(now),
    }


@dataclass(frozen=True)
class WorkerHealth:
    """A decoded health record, as `tickerctl ps`, `health` and ops scripts see it."""

    exchange: str
    status: str  # starting, running, error, stopping, stopped, stale, absent
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
    age = doc.get("last_tick_age_s")
    if isinstance(age, int | float) and status != STOPPED:
        age = age + max(0.0, now - updated)  # the record itself ages between refreshes
    return WorkerHealth(
        exchange=exchange, status=status, pid=doc.get("pid"), host=str(doc.get("host") or ""),
        started_at=float(doc.get("started_at") or 0.0), updated_at=updated,
        symbols=int(doc.get("symbols") or 0), ticks=int(doc.get("ticks") or 0),
        ticks_per_s=float(doc.get("ticks_per_s") or 0.0), rejected=dict(doc.get("rejected") or {}),
        reconnects=int(doc.get("reconnects") or 0),
        last_tick_age_s=None if age is None else float(age),
        stalest=[(str(s), float(a)) for s, a in doc.get("stalest") or []],
        redis=str(doc.get("redis") or ""), last_error=str(doc.get("last_error") or ""), raw=doc,
    )

"""Prometheus metrics: the health records and supervisor state in the text exposition format.

`render` is pure (records in, text out), so what a scrape shows is exactly what `tickerctl ps`
shows: both go through `status.rows` and `health.decode`. `serve` is a thin aiohttp shell that
reads Redis on every GET /metrics, so any host that reaches Redis can export, and the exporter
holds no state of its own (counters reset when a worker restarts; Prometheus handles that).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from fullon_ticker_service import health, status
from fullon_ticker_service.config import Settings

PREFIX = "fullon_ticker"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Every status word a row can carry (status.rows); one gauge series per word, 1 for the current one.
STATUS_WORDS = ("starting", "running", "degraded", "redis-error", "clock-skew", "no-data", "error", "backoff",
                "stale", "stopping", "stopped", "failed", "standby", "unplaced")


@dataclass
class Family:
    """One metric family: its HELP/TYPE header and its samples."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    samples: list[tuple[dict[str, str], float | int]] = field(default_factory=list)

    def add(self, value: float | int | None, **labels: str) -> None:
        if value is not None:
            self.samples.append((labels, value))

    def text(self) -> str:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples:
            lines.append(f"{self.name}{_labels(labels)} {_number(value)}")
        return "\n".join(lines)


def render(supervisor: dict[str, Any] | None, records: dict[str, bytes | None], now: float,
           interval: float) -> str:
    """The exposition text for one namespace: supervisor state plus every worker's health record."""
    families: dict[str, Family] = {}

    def fam(name: str, kind: str, text: str) -> Family:
        return families.setdefault(name, Family(f"{PREFIX}_{name}", kind, text))

    live = bool(supervisor) and not (supervisor or {}).get("stopped")
    fam("redis_reachable", "gauge", "1 when the exporter could read Redis").add(1)
    fam("supervisor_up", "gauge", "1 when a supervisor publishes its state for this namespace").add(int(live))
    up = fam("up", "gauge", "1 when the exchange's worker is running: every symbol fresh in Redis")
    word = fam("status", "gauge", "1 for the exchange's current status word, 0 for the others")
    restarts = fam("restarts_total", "counter", "worker restarts by the supervisor")
    symbols = fam("symbols", "gauge", "symbols the exchange's worker collects")
    ticks = fam("ticks_total", "counter", "tickers accepted by the worker since it started")
    rate = fam("ticks_per_second", "gauge", "accepted tickers per second, over the last health interval")
    rejected = fam("rejected_total", "counter", "tickers rejected by the worker, by reason")
    reconnects = fam("reconnects_total", "counter", "websocket reconnects")
    stale_rc = fam("stale_reconnects_total", "counter", "reconnects forced by silent symbols")
    written = fam("written_total", "counter", "tickers written to Redis")
    trips = fam("redis_round_trips_total", "counter", "Redis round trips of the writer")
    flushes = fam("flushes_total", "counter", "writer flushes")
    older = fam("older_in_redis_total", "counter", "ticks not written because Redis held a newer one")
    flush_s = fam("last_flush_seconds", "gauge", "duration of the writer's last flush")
    pending = fam("pending", "gauge", "ticks waiting for the next flush")
    age = fam("last_tick_age_seconds", "gauge", "seconds since the worker received its last ticker")
    write_age = fam("last_write_age_seconds", "gauge", "seconds since Redis accepted the worker's last value")
    fresh = fam("symbols_fresh", "gauge", "symbols whose last value Redis accepted within symbol_stale_after")
    never = fam("symbols_never_written", "gauge", "symbols with no value written since the worker started")
    frozen = fam("symbols_frozen", "gauge", "symbols Redis refuses: it holds a ticker_time in the future")
    write_error = fam("redis_write_error", "gauge", "1 while the worker's flushes fail, by error kind "
                      "(OOM, READONLY, NOAUTH, timeout, connection...)")
    offset = fam("clock_offset_seconds", "gauge", "median of exchange time minus arrival time (exchange clock "
                 "offset plus latency)")
    record_age = fam("health_record_age_seconds", "gauge", "seconds since the worker last wrote its health record")
    redis_up = fam("worker_redis_up", "gauge", "1 when the worker's last Redis write succeeded")
    uptime = fam("uptime_seconds", "gauge", "seconds since the worker started")

    for row in status.rows(supervisor, records, now, interval):
        ex = row["exchange"]
        up.add(int(row["status"] == "running"), exchange=ex)
        words = STATUS_WORDS if row["status"] in STATUS_WORDS else (*STATUS_WORDS, row["status"])
        for w in words:
            word.add(int(row["status"] == w), exchange=ex, status=w)
        restarts.add(row["restarts"], exchange=ex)
        symbols.add(row["symbols"], exchange=ex)
        rec = health.decode(ex, records.get(ex), now, interval)
        if rec.raw is None:  # no health record: only the supervisor's view exists
            continue
        raw = rec.raw
        ticks.add(rec.ticks, exchange=ex)
        rate.add(rec.ticks_per_s, exchange=ex)
        for reason, count in sorted((rec.rejected or {}).items()):
            rejected.add(int(count), exchange=ex, reason=str(reason))
        reconnects.add(rec.reconnects, exchange=ex)
        stale_rc.add(_int(raw.get("stale_reconnects")), exchange=ex)
        written.add(_int(raw.get("written")), exchange=ex)
        trips.add(_int(raw.get("redis_round_trips")), exchange=ex)
        flushes.add(_int(raw.get("flushes")), exchange=ex)
        older.add(_int(raw.get("older_in_redis")), exchange=ex)
        ms = raw.get("last_flush_ms")
        flush_s.add(None if not isinstance(ms, int | float) else ms / 1000.0, exchange=ex)
        pending.add(_int(raw.get("pending")), exchange=ex)
        age.add(None if rec.last_tick_age_s is None else round(rec.last_tick_age_s, 3), exchange=ex)
        write_age.add(None if rec.write_age_s is None else round(rec.write_age_s, 3), exchange=ex)
        if rec.coverage:
            fresh.add(rec.coverage[0], exchange=ex)
        never.add(_int(raw.get("never_written_count")), exchange=ex)
        frozen.add(_int(raw.get("frozen_count")), exchange=ex)
        kind = str(raw.get("redis_write") or "ok")
        if kind != "ok":
            write_error.add(1, exchange=ex, kind=kind)
        co = raw.get("clock_offset_s")
        offset.add(co if isinstance(co, int | float) else None, exchange=ex)
        record_age.add(round(max(0.0, now - rec.updated_at), 3), exchange=ex)
        redis_up.add(int(rec.redis == "up"), exchange=ex)
        uptime.add(round(rec.uptime_s, 3), exchange=ex)
    return "\n".join(f.text() for f in families.values()) + "\n"


def render_unreachable() -> str:
    """What a scrape shows when Redis cannot be read: the scrape itself succeeds, the gauge says why."""
    f = Family(f"{PREFIX}_redis_reachable", "gauge", "1 when the exporter could read Redis")
    f.add(0)
    return f.text() + "\n"


def scrape(settings: Settings, now: float | None = None) -> str:
    """Read the namespace's records from Redis (sync, one short connection) and render them."""
    from redis.exceptions import RedisError

    try:
        supervisor, records = status.collect(settings)
    except (RedisError, OSError):
        return render_unreachable()
    return render(supervisor, records, time.time() if now is None else now, settings.service.health_interval)


async def start(settings: Settings, host: str = "127.0.0.1", port: int = 9464) -> tuple[Any, int]:
    """Start the HTTP endpoint; returns (aiohttp AppRunner to `cleanup()`, the bound port; 0 picks one)."""
    from aiohttp import web

    async def metrics(request: web.Request) -> web.Response:
        text = await asyncio.to_thread(scrape, settings)
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="fullon_ticker_service metrics: GET /metrics\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return runner, int(bound)


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = 9464) -> None:
    """Serve GET /metrics until cancelled (each scrape reads Redis afresh)."""
    runner, _ = await start(settings, host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# --- exposition format details ---------------------------------------------------------------

def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")

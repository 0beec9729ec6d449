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
from collections.abc import Callable
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


def _num(v: Any) -> float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


# One gauge or counter per exchange, from its decoded health record (h) and raw record (raw).
_PER_WORKER: tuple[tuple[str, str, str, Callable[[health.WorkerHealth, dict[str, Any], float], Any]], ...] = (
    ("ticks_total", "counter", "tickers accepted by the worker since it started", lambda h, raw, now: h.ticks),
    ("ticks_per_second", "gauge", "accepted tickers per second, over the last health interval",
     lambda h, raw, now: h.ticks_per_s),
    ("reconnects_total", "counter", "websocket reconnects", lambda h, raw, now: h.reconnects),
    ("stale_reconnects_total", "counter", "reconnects forced by silent symbols",
     lambda h, raw, now: _int(raw.get("stale_reconnects"))),
    ("written_total", "counter", "tickers written to Redis", lambda h, raw, now: _int(raw.get("written"))),
    ("redis_round_trips_total", "counter", "Redis round trips of the writer",
     lambda h, raw, now: _int(raw.get("redis_round_trips"))),
    ("flushes_total", "counter", "writer flushes", lambda h, raw, now: _int(raw.get("flushes"))),
    ("older_in_redis_total", "counter", "ticks not written because Redis held a newer one",
     lambda h, raw, now: _int(raw.get("older_in_redis"))),
    ("last_flush_seconds", "gauge", "duration of the writer's last flush",
     lambda h, raw, now: None if _num(raw.get("last_flush_ms")) is None else raw["last_flush_ms"] / 1000.0),
    ("pending", "gauge", "ticks waiting for the next flush", lambda h, raw, now: _int(raw.get("pending"))),
    ("last_tick_age_seconds", "gauge", "seconds since the worker received its last ticker",
     lambda h, raw, now: None if h.last_tick_age_s is None else round(h.last_tick_age_s, 3)),
    ("last_write_age_seconds", "gauge", "seconds since Redis accepted the worker's last value",
     lambda h, raw, now: None if h.write_age_s is None else round(h.write_age_s, 3)),
    ("symbols_fresh", "gauge", "symbols whose last value Redis accepted within symbol_stale_after",
     lambda h, raw, now: h.coverage[0] if h.coverage else None),
    ("symbols_never_written", "gauge", "symbols with no value written since the worker started",
     lambda h, raw, now: _int(raw.get("never_written_count"))),
    ("symbols_frozen", "gauge", "symbols Redis refuses: it holds a ticker_time in the future",
     lambda h, raw, now: _int(raw.get("frozen_count"))),
    ("clock_offset_seconds", "gauge", "median of exchange time minus arrival time (exchange clock offset plus "
     "latency)", lambda h, raw, now: _num(raw.get("clock_offset_s"))),
    ("health_record_age_seconds", "gauge", "seconds since the worker last wrote its health record",
     lambda h, raw, now: round(max(0.0, now - h.updated_at), 3)),
    ("worker_redis_up", "gauge", "1 when the worker's last Redis write succeeded",
     lambda h, raw, now: int(h.redis == "up")),
    ("uptime_seconds", "gauge", "seconds since the worker started", lambda h, raw, now: round(h.uptime_s, 3)),
    ("native_decoder", "gauge", "1 while our native decoder parses the exchange's busiest channels (0: ccxt)",
     lambda h, raw, now: int(raw.get("decoder") == "native")),
    ("decoder_mismatches_total", "counter", "shadow checks where ccxt parsed a frame differently from our decoder",
     lambda h, raw, now: _int(raw.get("decoder_mismatches"))),
)


def render(supervisor: dict[str, Any] | None, records: dict[str, bytes | None], now: float,
           interval: float) -> str:
    """The exposition text for one namespace: supervisor state plus every worker's health record."""
    fams = {name: Family(f"{PREFIX}_{name}", kind, text) for name, kind, text in (
        ("redis_reachable", "gauge", "1 when the exporter could read Redis"),
        ("supervisor_up", "gauge", "1 when a supervisor publishes its state for this namespace"),
        ("up", "gauge", "1 when the exchange's worker is running: every symbol fresh in Redis"),
        ("status", "gauge", "1 for the exchange's current status word, 0 for the others"),
        ("restarts_total", "counter", "worker restarts by the supervisor"),
        ("symbols", "gauge", "symbols the exchange's worker collects"),
        ("rejected_total", "counter", "tickers rejected by the worker, by reason"),
        ("redis_write_error", "gauge", "1 while the worker's flushes fail, by error kind (OOM, READONLY, NOAUTH, "
                                       "timeout, connection...)"),
        *((name, kind, text) for name, kind, text, _ in _PER_WORKER))}
    fams["redis_reachable"].add(1)
    fams["supervisor_up"].add(int(bool(supervisor) and not (supervisor or {}).get("stopped")))
    for row in status.rows(supervisor, records, now, interval):
        _exchange(fams, row, health.decode(row["exchange"], records.get(row["exchange"]), now, interval), now)
    return "\n".join(f.text() for f in fams.values()) + "\n"


def _exchange(fams: dict[str, Family], row: dict[str, Any], h: health.WorkerHealth, now: float) -> None:
    """One exchange's samples: its status from the row, the rest from its health record if any."""
    ex = row["exchange"]
    fams["up"].add(int(row["status"] == "running"), exchange=ex)
    words = STATUS_WORDS if row["status"] in STATUS_WORDS else (*STATUS_WORDS, row["status"])
    for w in words:
        fams["status"].add(int(row["status"] == w), exchange=ex, status=w)
    fams["restarts_total"].add(row["restarts"], exchange=ex)
    fams["symbols"].add(row["symbols"], exchange=ex)
    if h.raw is None:  # no health record: only the supervisor's view exists
        return
    for reason, count in sorted((h.rejected or {}).items()):
        fams["rejected_total"].add(int(count), exchange=ex, reason=str(reason))
    kind = str(h.raw.get("redis_write") or "ok")
    if kind != "ok":
        fams["redis_write_error"].add(1, exchange=ex, kind=kind)
    for name, _, _, value in _PER_WORKER:
        fams[name].add(value(h, h.raw, now), exchange=ex)


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

"""The worker's health report: judged from what Redis confirmed, assembled from each part's
`snapshot()`, written from the worker's own event loop (so a stuck loop goes stale) every health
interval or lease-renewal period.

An owner writes its health record, the per-symbol table and fullon's process records in one fenced
script that also renews the lease (`Lease.report`). A standby writes nothing of the exchange's: it
only announces itself armed (connected and holding ticks) for the owning host's supervisor.

The status (`judge`) says whether fresh values reach Redis: per symbol, the time Redis last
accepted one of its values (writer.confirmed), against `symbol_stale_after`; plus the write
state, the exchange's clock offset and the subscriptions. The last error is kept with its time and
cleared once the worker has been running cleanly for `error_clear_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from loguru import logger
from redis.exceptions import RedisError

from fullon_ticker_service import health, keys
from fullon_ticker_service.config import ExchangeSettings, Settings
from fullon_ticker_service.worker.intake import Intake
from fullon_ticker_service.worker.ownership import Lease, LeaseLost
from fullon_ticker_service.worker.writer import TickWriter

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
NAMED = 10  # symbols named per list in the health record (the rest are counted)


class Reporter:
    def __init__(self, name: str, settings: Settings, cfg: ExchangeSettings, redis: Any, lease: Lease,
                 writer: TickWriter, intake: Intake, parts: Callable[[float], dict[str, Any]],
                 phase: Callable[[], str], failing: Callable[[], str], on_lease_lost: Callable[[str], None]) -> None:
        self.name = name
        self.settings = settings
        self.cfg = cfg
        self.redis = redis
        self.lease = lease
        self.writer = writer
        self.intake = intake
        self.parts = parts  # monotonic now -> the subscriptions' snapshot (and any other part's)
        self.phase = phase
        self.failing = failing  # "" or the error of a subscription failing max_retries in a row
        self.on_lease_lost = on_lease_lost
        self.log = logger.bind(exchange=name)
        self.started_at = time.time()
        self.process_id = health.process_id(name, self.started_at)
        self.host = socket.gethostname()
        self.host_id = lease.host_id
        self.armed = False  # our standby record is published
        self.now = asyncio.Event()  # set: report at once, not at the next period
        self.judged: tuple[str, str] = (health.STARTING, "")
        self.last_error = ""
        self.last_error_at = 0.0
        self._healthy_since: float | None = None
        self._failed = False
        self._last_ticks, self._last_rate_at, self._rate = 0, time.monotonic(), 0.0
        self._last_rejects: Counter[str] = Counter()

    @property
    def period(self) -> float:
        return min(self.settings.service.health_interval, self.settings.cluster.renew_every)

    @property
    def error_clear_after(self) -> float:
        return 10 * self.settings.service.health_interval

    def note_error(self, message: str) -> None:
        self.last_error, self.last_error_at = message[:300], time.time()

    async def loop(self) -> None:
        """Report (and so renew the lease) every period; a standby checks four times a second whether
        it can announce itself armed."""
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():  # redis-py can swallow a cancellation
                raise asyncio.CancelledError
            await self.publish()
            self.now.clear()
            wait = self.period if self.lease.value or self.armed else min(self.period, 0.25)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.now.wait()

    # --- judging ----------------------------------------------------------------------------------
    def freshness(self, now: float) -> tuple[health.Freshness, dict[str, Any]]:
        """What Redis confirmed of each wanted symbol (epoch `now`): the judge's input, and the named
        lists for the record."""
        cfg, intake, confirmed = self.cfg, self.intake, self.writer.confirmed
        limit = cfg.symbol_stale_after or 300.0
        fresh, never, stale, in_grace = 0, [], [], False
        last_write = 0.0
        for s in intake.wanted:
            c = confirmed.get(s)
            if c is not None:
                last_write = max(last_write, c[0])
                if now - c[0] <= limit:
                    fresh += 1
                    continue
                stale.append((now - c[0], s))
            elif now - intake.added_at.get(s, now) > cfg.first_tick_grace:
                never.append(s)
            else:
                in_grace = True
        stale.sort(reverse=True)
        frozen = sorted((s, t) for s, t in self.writer.refused.items() if t > now + cfg.max_skew)
        f = health.Freshness(
            wanted=len(intake.wanted), fresh=fresh, missing_past_grace=len(never) + len(stale),
            written_ever=sum(1 for s in intake.wanted if s in confirmed), in_grace=in_grace,
            write_error=self.writer.write_error, clock_offset=intake.clock_offset(), failing=self.failing())
        details = {
            "coverage": [fresh, len(intake.wanted)], "symbol_stale_after": limit,
            "never_written": sorted(never)[:NAMED], "never_written_count": len(never),
            "stale_symbols": [[s, round(a, 1)] for a, s in stale[:NAMED]], "stale_count": len(stale),
            "frozen": [[s, t] for s, t in frozen[:NAMED]], "frozen_count": len(frozen),
            "last_write_age_s": round(now - last_write, 3) if last_write else None,
        }
        return f, details

    def judge(self, now: float) -> tuple[dict[str, Any], str, str]:
        """(the freshness details, status, detail); clears the last error after a clean stretch."""
        f, details = self.freshness(now)
        status, detail = health.judge(self.phase(), f, self.cfg.max_skew, self.cfg.max_behind)
        self.judged = (status, detail)
        if status != health.RUNNING:
            self._healthy_since = None
        elif self._healthy_since is None:
            self._healthy_since = now
        elif self.last_error and now - max(self._healthy_since, self.last_error_at) >= self.error_clear_after:
            self.last_error = ""
        return details, status, detail

    # --- the record -------------------------------------------------------------------------------
    def record(self, final_status: str = "") -> dict[str, Any]:
        now_m, now = time.monotonic(), time.time()
        details, status, detail = self.judge(now)
        if final_status:
            status, detail = final_status, ""
        intake = self.intake.snapshot(now_m)
        dt = now_m - self._last_rate_at
        if dt >= 0.5:
            self._rate = round((intake["ticks"] - self._last_ticks) / dt, 2)
            self._last_ticks, self._last_rate_at = intake["ticks"], now_m
        rejects = Counter(self.intake.rejected)
        recent, self._last_rejects = dict(rejects - self._last_rejects), rejects
        return {
            "exchange": self.name, "pid": os.getpid(), "host": self.host, "host_id": self.host_id,
            "token": self.lease.token or None, "role": "owner" if self.lease.value else "standby",
            "status": status, "status_detail": detail, "process_id": self.process_id,
            "started_at": self.started_at, "updated_at": now, "interval": self.settings.service.health_interval,
            "method": None, "subscriptions": 0, "reconnects": 0, "stale_reconnects": 0,
            **intake, **self.parts(now_m), **details, "ticks_per_s": self._rate, "rejects_recent": recent,
            **self.writer.snapshot(), "last_error": self.last_error, "last_error_at": self.last_error_at or None,
            **_resources(),
        }

    def symbols_table(self, now: float) -> dict[str, Any]:
        """One row per wanted symbol (`tickerctl ps --symbols`): [written at, that value's exchange
        time, the streams that fed it, rejected updates, the newer time Redis holds if it refused]."""
        confirmed, refused, intake = self.writer.confirmed, self.writer.refused, self.intake
        rows = {}
        for s in sorted(intake.wanted):
            at, t = confirmed.get(s, (None, None))
            rows[s] = [at, t, intake.streams_of(s), intake.rejected_by_symbol.get(s, 0), refused.get(s)]
        return {"updated_at": now, "symbols": rows}

    async def publish(self, final_status: str = "") -> None:
        """One report. A refusal means the lease moved on (`on_lease_lost`); a Redis error is only
        noted: the next report retries, and the writer replays every symbol once Redis answers."""
        if self.lease.lost:
            return
        record = self.record(final_status)
        try:
            if self.lease.value:
                await self._publish_owner(record, final=bool(final_status))
            else:
                await self._publish_standby(record, final=bool(final_status))
            if self._failed:  # Redis is back (maybe empty): refill every symbol now
                self._failed = False
                self.writer.replay_all()
        except LeaseLost as exc:
            self.on_lease_lost(str(exc))
        except (RedisError, OSError) as exc:
            self._failed = True
            self.log.debug(f"health record not written: {exc}")

    async def _publish_owner(self, record: dict[str, Any], final: bool) -> None:
        now = record["updated_at"]
        interval = self.settings.service.health_interval
        status = record["status"]
        message = record["last_error"] if status != health.RUNNING and record["last_error"] else \
            f"{status} {record['status_detail']}".strip()
        proc = health.process_record(
            self.process_id, self.name, status, message, self.started_at, now,
            {"exchange": self.name, "symbols": record["symbols"], "host": self.host, "host_id": self.host_id,
             "pid": os.getpid(), "token": self.lease.token})
        await self.lease.report(orjson.dumps(record), int(interval * 3000), orjson.dumps(proc), self.process_id,
                                health.iso(now), final or status == health.STOPPED,
                                orjson.dumps(self.symbols_table(now)))

    async def _publish_standby(self, record: dict[str, Any], final: bool) -> None:
        key = keys.armed(self.settings.service.namespace, self.name, self.host_id)
        if final:
            await self.redis.delete(key)
            self.armed = False
        elif self.phase() == health.RUNNING and self.writer.latest:
            await self.redis.set(key, orjson.dumps({**record, "status": health.ARMED}),
                                 px=int(max(1.0, 3 * self.period) * 1000))
            if not self.armed:
                self.log.info(f"standby armed with {len(self.writer.latest)} symbols; waiting for the lease")
            self.armed = True

    async def disarm(self) -> None:
        """Our standby became the owner: its armed record goes."""
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(keys.armed(self.settings.service.namespace, self.name, self.host_id))
        self.armed = False


def _resources() -> dict[str, Any]:
    """What a leak would grow: resident memory, open descriptors, asyncio tasks (soak tests, operators)."""
    out: dict[str, Any] = {"tasks": len(asyncio.all_tasks())}
    with contextlib.suppress(OSError, ValueError, IndexError):
        out["rss_mb"] = round(int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE / 2**20, 1)
        out["fds"] = len(os.listdir("/proc/self/fd"))
    return out

"""The worker's health report: assembled from each part's `snapshot()`, written from the worker's
own event loop (so a stuck loop goes stale) every health interval or lease-renewal period.

An owner writes its health record and fullon's process records in one fenced script that also
renews the lease (`Lease.report`). A standby writes nothing of the exchange's: it only announces
itself armed (connected and holding ticks) for the owning host's supervisor to hand over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from loguru import logger
from redis.exceptions import RedisError

from fullon_ticker_service import health, keys
from fullon_ticker_service.config import Settings
from fullon_ticker_service.worker.ownership import Lease, LeaseLost
from fullon_ticker_service.worker.writer import TickWriter

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Reporter:
    def __init__(self, name: str, settings: Settings, redis: Any, lease: Lease, writer: TickWriter,
                 parts: Callable[[float], dict[str, Any]], status: Callable[[], str],
                 last_error: Callable[[], str], on_lease_lost: Callable[[str], None]) -> None:
        self.name = name
        self.settings = settings
        self.redis = redis
        self.lease = lease
        self.writer = writer
        self.parts = parts  # monotonic now -> the parts' snapshots merged
        self.status = status
        self.last_error = last_error
        self.on_lease_lost = on_lease_lost
        self.log = logger.bind(exchange=name)
        self.started_at = time.time()
        self.process_id = health.process_id(name, self.started_at)
        self.host = socket.gethostname()
        self.host_id = lease.host_id
        self.armed = False  # our standby record is published
        self.now = asyncio.Event()  # set: report at once, not at the next period
        self._failed = False
        self._last_ticks, self._last_rate_at, self._rate = 0, time.monotonic(), 0.0

    @property
    def period(self) -> float:
        return min(self.settings.service.health_interval, self.settings.cluster.renew_every)

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

    def record(self, status: str) -> dict[str, Any]:
        now_m, now = time.monotonic(), time.time()
        parts = self.parts(now_m)
        dt = now_m - self._last_rate_at
        if dt >= 0.5:
            self._rate = round((parts["ticks"] - self._last_ticks) / dt, 2)
            self._last_ticks, self._last_rate_at = parts["ticks"], now_m
        return {
            "exchange": self.name, "pid": os.getpid(), "host": self.host, "host_id": self.host_id,
            "token": self.lease.token or None, "role": "owner" if self.lease.value else "standby",
            "status": status, "process_id": self.process_id, "started_at": self.started_at, "updated_at": now,
            "interval": self.settings.service.health_interval, "method": None, "subscriptions": 0,
            "reconnects": 0, "stale_reconnects": 0, **parts, "ticks_per_s": self._rate,
            **self.writer.snapshot(), "last_error": self.last_error(), **_resources(),
        }

    async def publish(self, final_status: str = "") -> None:
        """One report. A refusal means the lease moved on (`on_lease_lost`); a Redis error is only
        noted: the next report retries, and the writer replays every symbol once Redis answers."""
        if self.lease.lost:
            return
        status = final_status or self.status()
        record = self.record(status)
        try:
            if self.lease.value:
                await self._publish_owner(record, status, final=bool(final_status))
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

    async def _publish_owner(self, record: dict[str, Any], status: str, final: bool) -> None:
        now = time.time()
        interval = self.settings.service.health_interval
        proc = health.process_record(
            self.process_id, self.name, status, record["last_error"] or f"{record['symbols']} symbols",
            self.started_at, now, {"exchange": self.name, "symbols": record["symbols"], "host": self.host,
                                   "host_id": self.host_id, "pid": os.getpid(), "token": self.lease.token})
        await self.lease.report(orjson.dumps(record), int(interval * 3000), orjson.dumps(proc), self.process_id,
                                health.iso(now), final or status == health.STOPPED)

    async def _publish_standby(self, record: dict[str, Any], final: bool) -> None:
        key = keys.armed(self.settings.service.namespace, self.name, self.host_id)
        if final:
            await self.redis.delete(key)
            self.armed = False
        elif record["status"] == health.RUNNING and self.writer.latest:
            await self.redis.set(key, orjson.dumps(record), px=int(max(1.0, 3 * self.period) * 1000))
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

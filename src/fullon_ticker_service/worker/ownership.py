"""The exchange's lease as one worker holds it: its value and token, whether it was lost, and the
calls that take, renew (fused with the health report) and give it back (scripts in lease.py).

A worker started by its supervisor gets the lease in its spec (owner) or later over the pipe
(a standby until then). A worker run alone (by hand, tests, the benchmark) takes it itself and
waits as a standby while another worker holds it. Once Redis refuses a fenced write the lease is
lost for good: this worker writes nothing more and exits for its supervisor to re-evaluate.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from loguru import logger
from redis.exceptions import RedisError

from fullon_ticker_service import lease as scripts


class LeaseLost(Exception):
    """Redis refused a fenced write: another worker holds the exchange's lease now."""


class Lease:
    def __init__(self, redis: Any, namespace: str, exchange: str, host_id: str, ttl_ms: int,
                 value: str = "") -> None:
        self.redis, self.namespace, self.exchange, self.host_id = redis, namespace, exchange, host_id
        self.ttl_ms = ttl_ms
        self.value = value  # '' = not (yet) ours: a standby holds ticks and writes nothing
        self.lost = False
        self._granted = asyncio.Event()
        if value:
            self._granted.set()
        self._waiting_for = ""
        self.log = logger.bind(exchange=exchange)

    @property
    def token(self) -> int:
        return scripts.token(self.value) if self.value else 0

    @property
    def held(self) -> bool:
        return bool(self.value) and not self.lost

    async def granted(self) -> None:
        await self._granted.wait()

    def grant(self, value: str) -> None:
        """The lease is ours now (acquired by our supervisor, or by `try_acquire`)."""
        self.value = value
        self._granted.set()

    def lose(self) -> bool:
        """Mark the lease lost; True the first time (the caller says so and stops)."""
        if self.lost:
            return False
        self.lost = True
        return True

    async def try_acquire(self) -> bool:
        """Take the lease ourselves (no supervisor). False while another worker holds it or Redis does
        not answer."""
        try:
            got, value = await scripts.arun(self.redis, scripts.acquire(
                self.namespace, self.exchange, self.host_id, os.getpid(), self.ttl_ms))
        except (RedisError, OSError) as exc:
            self.log.warning(f"lease not acquired yet (Redis: {exc})")
            return False
        if got:
            self.grant(value)
            return True
        if value != self._waiting_for:
            self.log.warning(f"{self.exchange} is being written under lease {value!r}; waiting for it")
            self._waiting_for = value
        return False

    async def acquire_when_free(self) -> None:
        while not await self.try_acquire():  # noqa: ASYNC110 - polling Redis, not a local flag
            await asyncio.sleep(0.2)

    async def report(self, health_json: bytes, health_px: int, process_json: bytes, process_id: str,
                     now_iso: str, final: bool, symbols_json: bytes) -> None:
        """Renew the lease and write our health, per-symbol and fullon's process records, fenced in one
        script. Raises LeaseLost when another worker holds the lease."""
        held = await scripts.arun(self.redis, scripts.report(
            self.namespace, self.exchange, self.value, self.ttl_ms, health_json, health_px, process_json,
            process_id, now_iso, final, symbols_json))
        if not held:
            raise LeaseLost(f"the lease is no longer {self.value!r}")

    async def release(self) -> None:
        """Give the lease back at once (compare-and-delete), so a standby elsewhere need not wait for the TTL."""
        if self.held:
            await scripts.arun(self.redis, scripts.release(self.namespace, self.exchange, self.value))

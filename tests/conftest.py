"""Shared test helpers. Tests use real Redis/PostgreSQL on loopback and real ccxt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def eventually(check: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0,
                     interval: float = 0.02, what: str = "condition") -> Any:
    """Poll `check` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def assert_matches_quote(ticker: dict[str, Any], q: Any, *, timestamp: bool = True,
                         volume: bool = True) -> None:
    """A ccxt ticker equals what the simulator sent (prices exact on the 1e-8 grid)."""
    assert ticker["symbol"] == q.symbol
    assert ticker["last"] == pytest.approx(q.last, rel=1e-12), ticker
    assert ticker["bid"] == pytest.approx(q.bid, rel=1e-12), ticker
    assert ticker["ask"] == pytest.approx(q.ask, rel=1e-12), ticker
    if volume:
        assert ticker["baseVolume"] == pytest.approx(q.volume, rel=1e-12), ticker
    if timestamp:
        assert ticker["timestamp"] == q.ts_ms, ticker

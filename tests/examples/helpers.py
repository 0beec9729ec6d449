"""Run the examples as users do (a subprocess per script) against the test's Redis database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB, eventually

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def script_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any Redis/catalog/TICKER_* setting, pointed at the test db."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REDIS_", "TICKER_", "DB_")) and k != "DATABASE_URL"}
    env.update(REDIS_HOST=SHARED_REDIS_HOST, REDIS_PORT=str(SHARED_REDIS_PORT), REDIS_DB=str(TEST_REDIS_DB))
    env.update(extra)
    return env


async def run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 15.0) -> tuple[int, str, str]:  # noqa: ASYNC109
    """Run one example to completion; a hang fails the test instead of blocking the suite."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / script), *args, cwd=cwd, env=env or script_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{script} {args} did not finish within {timeout}s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Running:
    """A long-running example whose stdout lines are collected while the test acts."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.stderr = b""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode().rstrip("\n"))

    def having(self, word: str) -> list[str]:
        return [line for line in self.lines if f" {word} " in line]

    async def wait_line(self, word: str, timeout: float = 5.0) -> str:  # noqa: ASYNC109
        got = await eventually(lambda: self.having(word), timeout, 0.02, f"a {word} line (output: {self.lines})")
        return got[0]

    async def exit_code(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return rc


@contextlib.asynccontextmanager
async def running(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> AsyncIterator[Running]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / script), *args, cwd=cwd, env=env or script_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    r = Running(proc)
    try:
        yield r
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        r._reader.cancel()


async def put_tick(redis: Any, exchange: str, symbol: str, price: float, when: float | None = None,
                   **fields: Any) -> dict[str, Any]:
    """Write one tick in the exact fullon layout the worker writes (hash field + ticker_time)."""
    when = time.time() if when is None else when
    tick = {"symbol": symbol, "exchange": exchange, "price": price, "volume": 12.5, "time": when,
            "bid": price - 0.5, "ask": price + 0.5, "last": price, "change": 1.25, "percentage": 0.5,
            **fields}
    await redis.hset(f"tickers:{exchange}", symbol, orjson.dumps(tick))
    await redis.set(f"ticker_time:{exchange}:{symbol}", repr(when))
    return tick

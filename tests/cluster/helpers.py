"""Several `tickerctl up` hosts on one machine (distinct host ids) against one private Redis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from fullon_ticker_service import lease
from fullon_ticker_service.sim import Simulator
from tests.faults.helpers import fault_config
from tests.supervisor.helpers import _children, env

NAMESPACE = "tst"
# Short, so the failover tests stay short. CLUSTER_LEASE_TTL=5 CLUSTER_HOST_TTL=3 runs them with
# the defaults (the README's failover figures).
LEASE_TTL = float(os.environ.get("CLUSTER_LEASE_TTL", "3"))
HOST_TTL = float(os.environ.get("CLUSTER_HOST_TTL", "1.5"))
VENUES = ("binance", "okx", "bybit")
NAMES = [f"{v}_{c}" for v in VENUES for c in "abc"]  # nine exchanges over three simulated venues


def cluster_config(path: Path, sim: Simulator, redis_url: str, *, lease_ttl: float = LEASE_TTL,
                   host_ttl: float = HOST_TTL, extra_redis: str = "", capacity: int = 0) -> Path:
    exchanges = {f"{v}_{c}": {"venue": v, "symbols": sim.symbols(v)[:4], "stale_after": 3.0}
                 for v in VENUES for c in "abc" if v in sim.exchanges}
    fault_config(path, sim, exchanges, redis_url, supervisor={"start_grace": 20.0})
    text = path.read_text() + (f"\n[cluster]\nlease_ttl = {lease_ttl!r}\nhost_ttl = {host_ttl!r}\n"
                               f"capacity = {capacity}\n")
    if extra_redis:
        text = text.replace("[redis]\n", f"[redis]\n{extra_redis}\n", 1)
    path.write_text(text)
    return path


class Host:
    """One `tickerctl up` with its own host id; its output goes to a log file."""

    def __init__(self, host_id: str, config: Path, logdir: Path) -> None:
        self.host_id = host_id
        self.log = logdir / f"host-{host_id}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "fullon_ticker_service.cli", "up", "-c", str(config)],
                                         env={**env(), "TICKER_HOST_ID": host_id}, stdout=out,
                                         stderr=subprocess.STDOUT)

    def pids(self) -> list[int]:
        """The supervisor and every process under it (fork server, workers)."""
        children, out, todo = _children(), [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += [c for c, _ in children.get(pid, [])]
        return out

    def signal_all(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal_all(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.signal_all(signal.SIGKILL)
                self.proc.wait(5)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class Watcher:
    """Records every accepted flush (`{ns}:flushes`: exchange, token, symbols written) in the order
    Redis accepted them, with the time it arrived here."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.events: list[tuple[float, str, int, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe(f"{NAMESPACE}:flushes")
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.pubsub.aclose()

    async def _run(self) -> None:
        while True:
            msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg and msg["type"] == "message":
                ex, n, written = msg["data"].decode().split()
                self.events.append((time.monotonic(), ex, int(n), int(written)))

    def regressions(self) -> list[str]:
        """Accepted writes by an older token after a newer one wrote: two accepting writers."""
        newest: dict[str, int] = {}
        bad = []
        for _, ex, n, _ in self.events:
            if n < newest.get(ex, 0):
                bad.append(f"{ex}: token {n} wrote after token {newest[ex]}")
            newest[ex] = max(newest.get(ex, 0), n)
        return bad

    def first_write(self, exchange: str, token: int, after: float = 0.0) -> float | None:
        return next((t for t, ex, n, _ in self.events if ex == exchange and n == token and t >= after), None)

    def last_write(self, exchange: str, token: int) -> float | None:
        return max((t for t, ex, n, _ in self.events if ex == exchange and n == token), default=None)

    def spacing(self, exchange: str, token: int) -> list[float]:
        """Intervals between consecutive accepted flushes of one owner: the normal flush spacing."""
        times = [t for t, ex, n, _ in self.events if ex == exchange and n == token]
        return [b - a for a, b in itertools.pairwise(times)]

    def tokens(self, exchange: str) -> list[int]:
        return sorted({n for _, ex, n, _ in self.events if ex == exchange})


async def owners(redis: Any, names: list[str]) -> dict[str, tuple[str, int]]:
    """exchange -> (host id, token) of its lease holder."""
    raw = await redis.mget([f"{NAMESPACE}:lease:{n}" for n in names])
    out = {}
    for name, value in zip(names, raw, strict=True):
        if value:
            n, host, _ = lease.holder(value.decode())
            out[name] = (host, n)
    return out


async def settled(redis: Any, names: list[str]) -> dict[str, tuple[str, int]] | None:
    """Every exchange has a lease, and its health record is the lease holder's worker, running."""
    own = await owners(redis, names)
    if set(own) != set(names):
        return None
    records = await redis.mget([f"{NAMESPACE}:health:{n}" for n in names])
    for name, raw in zip(names, records, strict=True):
        doc = orjson.loads(raw) if raw else {}
        if (doc.get("status"), doc.get("host_id"), doc.get("token")) != ("running", *own[name]):
            return None
    return own


async def stable(redis: Any, names: list[str], quiet: float = 2.0, timeout: float = 60.0,  # noqa: ASYNC109
                 want: Any = None) -> dict[str, tuple[str, int]]:
    """Wait until `settled` holds and the owners did not change for `quiet` seconds (and `want(owners)`)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        own = await settled(redis, names)
        if own != last:
            last, since = own, time.monotonic()
        elif own is not None and time.monotonic() - since >= quiet and (want is None or want(own)):
            return own
        await asyncio.sleep(0.1)
    raise AssertionError(f"owners did not settle in {timeout}s (last: {last})")


def per_host(own: dict[str, tuple[str, int]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for host, _ in own.values():
        out[host] += 1
    return dict(out)

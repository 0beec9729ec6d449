"""The write path: coalesce the latest tick per symbol, flush it to Redis in one round trip.

`put()` is called for every accepted tick (from ccxt's parse path, synchronously); it only
replaces `pending[symbol]` and wakes the flusher. The flusher swaps the pending map out and
sends it as one EVALSHA per ≤ BATCH symbols, all in a single write (one round trip). Up to DEPTH
flushes are in flight at once on the writer's connection (wire.py reads their replies in the
order they were sent): a tick that arrives while a flush is out goes out at once in the next one
instead of waiting a whole round trip for its turn. While DEPTH flushes are out new ticks
accumulate, so the batch size adapts to the rate: one tick per flush when idle, hundreds under a
burst.

The Lua script first checks that this worker still holds the exchange's lease (lease.py; a
refusal raises `LeaseLost` and nothing is written), then writes the fullon keys (HSET tickers,
SET ticker_time, PUBLISH ticker_updates) only when the stored `ticker_time` is not newer: nothing
older ever overwrites something newer, also across worker restarts, a handover between hosts,
or values held back during a Redis outage. A worker started as a standby has no lease yet: it
keeps the latest tick per symbol and flushes them all the moment its `Lease` is granted.

Redis down or refusing writes (OOM, a READONLY replica): pending stays in memory (one entry per
symbol, so bounded), the flusher retries with short jittered backoff and the newest values go out
on the first successful round trip. A failed flush puts back each of its symbols' *newest* tick
(`latest`), never its own: with two flushes failing on one lost connection, the older batch must
not win. After any failure the next flush replays the latest accepted tick of *every* symbol
(`latest`), so a Redis that came back empty is refilled at once; the script's time check makes
that replay harmless when Redis kept its data.

What health is judged by: per symbol, when its last value was confirmed written by Redis and that
value's exchange time (`confirmed`), the symbols Redis refused because it holds a newer time
(`refused`: a future `ticker_time` there freezes a symbol), and the write state (`write_error`:
"" or the error kind, OOM / READONLY / NOAUTH / timeout / connection...).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Callable

import orjson
from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from fullon_ticker_service import keys
from fullon_ticker_service.backoff import delay
from fullon_ticker_service.lease import HELD
from fullon_ticker_service.outage import Outage
from fullon_ticker_service.redis_client import error_kind, error_text
from fullon_ticker_service.tick import Tick
from fullon_ticker_service.worker.ownership import Lease, LeaseLost
from fullon_ticker_service.worker.wire import Dropped, Wire

BATCH = 500  # symbols per script call: bounds how long one call blocks Redis (~1 ms)
DEPTH = 2  # flushes in flight at once (1 with a flush_interval: that spaces them)

# Fenced: nothing is written unless the caller holds the exchange's lease (lease.py).
# KEYS: lease, fence, fenced-count hash, tickers:{ex}, then ticker_time:{ex}:{sym} per symbol.
# ARGV: lease value, token, lease ttl ms, exchange, audit channel, then per symbol:
#       symbol, time (decimal string), json, channel.
# -> {symbols written, then symbol, stored time for each symbol refused as older}, or -1 when fenced.
WRITE_NEWER = HELD + """
if not held(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3]) then
  redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
  return -1
end
local written, out = 0, {0}
for i = 5, #KEYS do
  local j = 5 + (i - 5) * 4
  local t = ARGV[j + 2]
  local cur = redis.call('GET', KEYS[i])
  if (not cur) or tonumber(cur) <= tonumber(t) then
    redis.call('HSET', KEYS[4], ARGV[j + 1], ARGV[j + 3])
    redis.call('SET', KEYS[i], t)
    redis.call('PUBLISH', ARGV[j + 4], ARGV[j + 3])
    written = written + 1
  else
    table.insert(out, ARGV[j + 1])
    table.insert(out, cur)
  end
end
if written > 0 then redis.call('PUBLISH', ARGV[5], ARGV[4] .. ' ' .. ARGV[2] .. ' ' .. written) end
out[1] = written
return out
"""
WRITE_NEWER_SHA = hashlib.sha1(WRITE_NEWER.encode()).hexdigest()


# KEYS: lease, fence, tickers:{ex}, ticker_time keys. ARGV: lease value, token, ttl ms, symbols.
REMOVE = HELD + """
if not held(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3]) then return -1 end
for i = 4, #ARGV do redis.call('HDEL', KEYS[3], ARGV[i]) end
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


# The same, for symbols nobody collects any more, and only those not written since a cutoff (exchange
# time, epoch s): a price someone still keeps fresh (another deployment, another namespace) stays.
# KEYS: lease, fence, tickers:{ex}, ticker_time keys. ARGV: lease value, token, ttl ms, cutoff,
# symbols (aligned with the time keys). -> the symbols deleted, or -1 when fenced.
SWEEP = HELD + """
if not held(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3]) then return -1 end
local gone = {}
for i = 4, #KEYS do
  local t = tonumber(redis.call('GET', KEYS[i]) or '')
  if (not t) or t < tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[3], ARGV[i + 1])
    redis.call('DEL', KEYS[i])
    table.insert(gone, ARGV[i + 1])
  end
end
return gone
"""


class TickWriter:
    """Latest-per-symbol buffer plus the task that flushes it."""

    def __init__(self, redis: Redis, exchange: str, namespace: str, lease: Lease, min_interval: float = 0.0) -> None:
        self.redis = redis
        self.wire = Wire(redis)  # the flushes' own connection (wire.py); everything else uses `redis`
        self.exchange = exchange
        self.namespace = namespace
        self.lease = lease  # not granted yet = standby: hold ticks, write nothing
        self.min_interval = min_interval
        self.pending: dict[str, Tick] = {}
        self.latest: dict[str, Tick] = {}  # last accepted tick per symbol, for replay after outages
        self._replay = False
        self._boarding = False  # a flush task was made and has not yet taken its batch
        self._wake = asyncio.Event()
        self.write_error = ""  # "" = the last flush was accepted; else its kind (OOM, timeout...)
        self.write_error_detail = ""
        self.outage = Outage("Redis writes")
        self.confirmed: dict[str, tuple[float, float]] = {}  # symbol -> (written at, its tick's time)
        self.refused: dict[str, float] = {}  # symbol -> the newer time Redis holds (its last write refused)
        # counters for the health record
        self.flushes = 0
        self.written = 0
        self.older_in_redis = 0  # refused by the script: Redis already held a newer value
        self.round_trips = 0
        self.fenced = 0  # flushes Redis refused: the lease had moved on
        self.last_flush_ms = 0.0

    def put(self, symbol: str, tick: Tick) -> None:
        self.pending[symbol] = tick
        self.latest[symbol] = tick
        self._wake.set()

    def discard(self, symbols: set[str]) -> None:
        for s in symbols:
            self.pending.pop(s, None)
            self.latest.pop(s, None)
            self.confirmed.pop(s, None)
            self.refused.pop(s, None)

    def replay_all(self) -> None:
        """Re-send every symbol's latest tick on the next flush (Redis may have lost them)."""
        self._replay = True
        self._wake.set()

    async def run(self) -> None:
        """Flush forever; cancelled by the worker at shutdown (then call `flush_now`). Flushes run as
        tasks, at most DEPTH at once; each takes the pending batch when it first runs (ticks that
        arrive until then ride along: fewer round trips, measured lower CPU and latency at 1-3 k/s
        than taking it when the task is made), and no new one is made before the last has taken
        its batch. They finish in the order they started (one connection) and are settled here in
        that order: a failure backs off before the next flush starts."""
        attempt = 0
        me = asyncio.current_task()
        flights: deque[asyncio.Task[int | None]] = deque()
        depth = 1 if self.min_interval else DEPTH
        try:
            while True:
                if me is not None and me.cancelling():
                    # a cancellation that landed inside redis-py can be swallowed there (the command
                    # then returns normally); honour it here or the task could never be stopped
                    raise asyncio.CancelledError
                await self.lease.granted()
                await self._wake.wait()
                self._wake.clear()
                while flights and (flights[0].done() or len(flights) >= depth):
                    attempt = await self._settle(flights.popleft(), attempt)
                if self._replay:  # after a failure: every symbol's latest tick goes out again
                    self._replay = False
                    for symbol, tick in self.latest.items():
                        self.pending.setdefault(symbol, tick)
                if not self.pending or self._boarding:
                    continue
                self._boarding = True
                flight = asyncio.create_task(self._flight(), name="flush")
                flight.add_done_callback(self._landed)
                flights.append(flight)
                if self.min_interval:
                    attempt = await self._settle(flights.popleft(), attempt)
                    if not attempt:
                        await asyncio.sleep(self.min_interval)
        finally:
            self._boarding = False
            for flight in flights:  # each puts its batch back into pending (_flush)
                flight.cancel()
            if flights:
                await asyncio.wait(flights)
            for flight in flights:
                if not flight.cancelled():
                    flight.exception()  # retrieved: it was put back, the caller flushes what is pending

    def _landed(self, flight: asyncio.Task[int | None]) -> None:
        """A failed flight wakes the flusher even when no tick arrives: its batch is waiting."""
        if not flight.cancelled() and flight.exception() is not None:
            self._wake.set()

    async def _flight(self) -> int | None:
        """One flush of the run loop, with what is pending when it first runs (None: nothing was, it
        was discarded meanwhile). A failure is recorded when it happens, in the order flushes
        complete (as a success is), except the knock-on failure of a flush queued behind one that
        dropped the connection: that one was recorded already."""
        self._boarding = False
        batch, self.pending = self.pending, {}
        if not batch:
            return None
        try:
            return await self._flush(batch)
        except Dropped:
            raise
        except (RedisError, OSError) as exc:
            me = asyncio.current_task()
            if me is None or not me.cancelling():  # redis-py may report a cancel as an error
                self.failed(exc)
            raise

    async def _settle(self, flight: asyncio.Task[int | None], attempt: int) -> int:
        """Wait for the oldest flight; after a write failure back off. -> the attempt count."""
        try:
            return attempt if await flight is None else 0  # an empty flight proves nothing
        except Dropped:  # its batch is back in pending; the failure before it backed off already
            self._replay = True
            return attempt
        except (RedisError, OSError) as exc:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise asyncio.CancelledError from exc  # redis-py may report a cancel as an error
            attempt += 1
            self._replay = True
            await asyncio.sleep(delay(attempt, 0.05, 0.5))  # back within 1 s of Redis' return
            self._wake.set()
            return attempt

    async def flush_now(self) -> int:
        """Send everything pending in one round trip. On failure each of the batch's symbols goes
        back into pending with its newest tick (a symbol discarded meanwhile stays out)."""
        batch, self.pending = self.pending, {}
        return await self._flush(batch) if batch else 0

    async def _flush(self, batch: dict[str, Tick]) -> int:
        started = time.perf_counter()
        try:
            try:
                refused = await self._send(batch)
            except NoScriptError:
                # Redis lost the script (restarted): load it and send again, the batch rebuilt from
                # each symbol's newest tick, since a flush behind this one may have written newer
                await self.redis.script_load(WRITE_NEWER)
                self.round_trips += 2  # the refused call and the load
                batch = self._newest(batch)
                refused = await self._send(batch) if batch else {}
        except BaseException:
            self.pending.update(self._newest(batch))
            raise
        now = time.time()
        self.last_flush_ms = (time.perf_counter() - started) * 1000
        self.flushes += 1
        self.round_trips += 1
        written = len(batch) - len(refused)
        self.written += written
        self.older_in_redis += len(refused)
        confirmed, stored_refused = self.confirmed, self.refused
        for symbol, tick in batch.items():
            if symbol in refused:
                stored_refused[symbol] = refused[symbol]
            else:
                confirmed[symbol] = (now, tick["time"])
                if stored_refused:
                    stored_refused.pop(symbol, None)
        self.write_error = ""
        if self.outage.active and (line := self.outage.succeeded(time.monotonic())):
            logger.info(f"{line}; {len(self.pending)} symbols pending")
        return written

    def _newest(self, batch: dict[str, Tick]) -> dict[str, Tick]:
        """The batch's symbols with their newest tick; symbols discarded meanwhile left out."""
        latest = self.latest
        return {symbol: newest for symbol in batch if (newest := latest.get(symbol)) is not None}

    def failed(self, exc: BaseException) -> None:
        """A flush failed: remember its kind for health, and say so (once, then summarised)."""
        self.write_error = error_kind(exc)
        self.write_error_detail = error_text(exc)
        line = self.outage.failed(self.write_error, self.write_error_detail, time.monotonic())
        if line:
            logger.error(f"{line}; holding the latest tick per symbol in memory")

    async def _send(self, batch: dict[str, Tick]) -> dict[str, float]:
        """One EVALSHA per BATCH symbols, all in one write on the writer's own connection (wire.py):
        one round trip. A Redis that lost the script answers NOSCRIPT (`_flush` loads it and sends
        again, harmless because the script never writes older over newer)."""
        if not self.lease.value:
            raise LeaseLost("no lease yet")
        ex, ns = self.exchange, self.namespace
        head_keys = (keys.lease(ns, ex), keys.fence(ns, ex), keys.fenced(ns), keys.tickers(ex))
        head_args = (self.lease.value, self.lease.token, self.lease.ttl_ms, ex, keys.flush_audit(ns))
        items = list(batch.items())
        calls = []
        for start in range(0, len(items), BATCH):
            ks = list(head_keys)
            args: list[str | bytes | int] = list(head_args)
            for symbol, tick in items[start:start + BATCH]:
                ks.append(keys.ticker_time(ex, symbol))
                args += (symbol, repr(tick["time"]), orjson.dumps(tick), keys.ticker_updates(ex, symbol))
            calls.append((len(ks), *ks, *args))
        return await self._evalsha(calls)

    async def _evalsha(self, calls: list[tuple[int | str | bytes, ...]]) -> dict[str, float]:
        """-> the symbols Redis refused (it holds a newer time), with that time."""
        # A PING ahead of the scripts, so that subscribers hear of a write before we do. Redis writes
        # the replies of one event-loop pass newest-queued client first: a script's reply would be
        # queued after its PUBLISHes and go out before them, and on a busy host we would take the CPU
        # a subscriber is woken for. The PING's reply queues our connection first.
        results = await self.wire.call([("EVALSHA", WRITE_NEWER_SHA, *call) for call in calls], ping_first=True)
        if any(not isinstance(r, list) for r in results):  # -1: fenced
            self.fenced += 1
            raise LeaseLost(f"the lease is no longer {self.lease.value!r}")
        return {(r[i].decode() if isinstance(r[i], bytes) else str(r[i])): float(r[i + 1])
                for r in results for i in range(1, len(r) - 1, 2)}

    async def remove(self, symbols: set[str]) -> None:
        """Delete symbols no longer collected, so no one reads a price that stopped updating."""
        self.discard(symbols)
        if not symbols or not self.lease.held:
            return
        ex, ns, names = self.exchange, self.namespace, sorted(symbols)
        ks = [keys.lease(ns, ex), keys.fence(ns, ex), keys.tickers(ex), *(keys.ticker_time(ex, s) for s in names)]
        if int(await self.redis.eval(REMOVE, len(ks), *ks, self.lease.value, self.lease.token, self.lease.ttl_ms,
                                     *names)) < 0:
            raise LeaseLost(f"the lease is no longer {self.lease.value!r}")

    async def sweep(self, keep: Callable[[], set[str]], older_than: float) -> list[str]:
        """Delete the prices of symbols this exchange no longer collects that nobody has written since
        `older_than` (epoch s): removed from the catalog while no worker ran, so no one deleted them.
        `keep` is asked after the reads, so a symbol added meanwhile is never swept; the age test is
        in the script, so a value written meanwhile is never deleted. -> the symbols deleted."""
        ex, ns = self.exchange, self.namespace
        found = {k.decode() for k in await self.redis.hkeys(keys.tickers(ex))}
        prefix = keys.ticker_time(ex, "")
        async for k in self.redis.scan_iter(match=keys.ticker_time(ex, "*"), count=1000):
            found.add(k.decode()[len(prefix):])
        candidates = sorted(found - keep())
        gone: list[str] = []
        for start in range(0, len(candidates), BATCH):
            if not self.lease.held:
                raise LeaseLost("no lease")
            names = candidates[start:start + BATCH]
            ks = [keys.lease(ns, ex), keys.fence(ns, ex), keys.tickers(ex), *(keys.ticker_time(ex, s) for s in names)]
            out = await self.redis.eval(SWEEP, len(ks), *ks, self.lease.value, self.lease.token, self.lease.ttl_ms,
                                        repr(older_than), *names)
            if not isinstance(out, list):
                raise LeaseLost(f"the lease is no longer {self.lease.value!r}")
            gone += [g.decode() if isinstance(g, bytes) else str(g) for g in out]
        self.discard(set(gone))
        return gone

    def snapshot(self) -> dict[str, object]:
        """The writer's part of the health record."""
        return {"redis": "up" if not self.write_error else "down", "redis_write": self.write_error or "ok",
                "redis_write_error": self.write_error_detail if self.write_error else "",
                "pending": len(self.pending), "flushes": self.flushes,
                "written": self.written, "older_in_redis": self.older_in_redis, "redis_round_trips": self.round_trips,
                "last_flush_ms": round(self.last_flush_ms, 3), "fenced_flushes": self.fenced}

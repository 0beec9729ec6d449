"""The exchange worker: one process, one exchange, every ticker into Redis.

Data path. ccxt's multi-symbol watches lose wake-ups under load (ccxt issue 30220): a
`watch_tickers` loop wakes far less often than frames arrive. So we do not consume what the
watch call returns. Instead `exchange.tickers` is replaced by a dict subclass whose
`__setitem__` hands every parsed ticker to `on_ticker` the moment ccxt stores it (all ccxt.pro
ticker handlers store with `self.tickers[symbol] = parsed`). The watch loops only keep the
subscriptions alive and surface connection errors. `on_ticker` normalises, validates, rejects
older ticks, and puts the tick into the coalescing writer (`writer.py`).

Connection health. Each subscription chunk runs its own loop: an error -> jittered capped
backoff -> the next watch call reconnects and resubscribes. A watchdog forces a reconnect when
the exchange (or one symbol) is silent too long, because ccxt's keepalive can take minutes to
notice a dead socket and a malformed frame silently stops ccxt's receive loop.

Ownership. Every write is fenced by the exchange's lease (lease.py): the ticks (writer.py) and
the health report, which also renews the lease. A worker started without a lease is a standby:
it connects and holds the latest tick per symbol, announces itself armed, and flushes all of it
the moment the supervisor sends the lease. A refused write means another worker owns the
exchange now: stop writing at once and exit (EXIT_FENCED) for the supervisor to re-evaluate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import orjson
from loguru import logger
from redis.exceptions import RedisError

from fullon_ticker_service import health, keys, lease
from fullon_ticker_service.backoff import delay
from fullon_ticker_service.channels import Plan, chunked, plan_for
from fullon_ticker_service.config import ConfigError, ExchangeSettings
from fullon_ticker_service.launch import EXIT_CONFIG, EXIT_CRASH, EXIT_FENCED, EXIT_OK, EXIT_PARENT_GONE, WorkerSpec
from fullon_ticker_service.redis_client import make_redis
from fullon_ticker_service.tick import MALFORMED, OLDER, normalise, validate
from fullon_ticker_service.writer import LeaseLost, TickWriter

STABLE_AFTER = 30.0  # seconds of working connection before the backoff attempt count resets
REJECT_LOG_EVERY = 10.0  # at most one rejection summary line per this many seconds


class TickerSink(dict):  # type: ignore[type-arg]
    """`exchange.tickers` replacement: every store by ccxt is also reported to `on_set`."""

    __slots__ = ("on_set",)

    def __init__(self, on_set: Any, initial: dict[str, Any] | None = None) -> None:
        super().__init__(initial or {})
        self.on_set = on_set

    def __setitem__(self, symbol: str, ticker: Any) -> None:
        dict.__setitem__(self, symbol, ticker)
        self.on_set(symbol, ticker)


@dataclass
class Chunk:
    symbols: list[str]
    task: asyncio.Task[None] | None = None
    attempt: int = 0
    connected_at: float = 0.0
    forced: bool = False  # its connection was failed by us (watchdog), not by the exchange


@dataclass
class Stats:
    ticks: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    stale_reconnects: int = 0
    failures_in_row: int = 0
    last_error: str = ""
    last_ticks: int = 0
    last_rate_at: float = field(default_factory=time.monotonic)
    ticks_per_s: float = 0.0


class Worker:
    def __init__(self, spec: WorkerSpec, control: Connection | None = None) -> None:
        self.spec = spec
        self.control = control  # symbol sets from the supervisor; EOF = supervisor gone
        self._control_queue: asyncio.Queue[Any] = asyncio.Queue()
        self.name = spec.exchange
        self.settings = spec.settings
        self.cfg: ExchangeSettings = spec.settings.exchange(spec.exchange)
        self.log = logger.bind(exchange=self.name)
        self.redis = make_redis(spec.settings.redis)
        self.ns = spec.settings.service.namespace
        self.writer = TickWriter(self.redis, self.name, self.ns, spec.lease,
                                 int(spec.settings.cluster.lease_ttl * 1000), self.cfg.flush_interval)
        self.exchange: Any = None
        self.plan: Plan | None = None
        self.wanted: set[str] = set()
        self.unknown: list[str] = []
        self.chunks: list[Chunk] = []
        self.last_time: dict[str, float] = {}  # newest accepted tick time per symbol
        self.last_seen: dict[str, float] = {}  # monotonic arrival per symbol (any ticker)
        self.last_any = time.monotonic()
        self.stats = Stats()
        self.status = health.STARTING
        self.started_at = time.time()
        self.process_id = health.process_id(self.name, self.started_at)
        self.host = socket.gethostname()
        self.host_id = spec.host_id or self.host
        self.lost = False  # Redis refused our writes: the lease belongs to another worker now
        self._armed = False  # our standby record is published
        self._report_now = asyncio.Event()
        self._lease_task: asyncio.Task[None] | None = None  # a worker without a supervisor takes its own
        self._waiting_for = ""
        self._stop = asyncio.Event()
        self._exit_code = EXIT_OK
        self._last_reject_log = 0.0
        self._unlogged_rejects: Counter[str] = Counter()
        self._last_symbol_kick = 0.0
        self._health_failed = False
        self._early_symbols: set[str] | None = None

    # --- the hot path ---------------------------------------------------------------------
    def on_ticker(self, symbol: str, ticker: Any) -> None:
        """Called synchronously from ccxt's parser for every ticker it stores."""
        mono = time.monotonic()
        self.last_any = mono
        if symbol not in self.wanted:
            return
        self.last_seen[symbol] = mono
        now = time.time()
        try:
            tick = normalise(self.name, ticker, now)
            reason = validate(tick, now, self.cfg.max_skew)
        except Exception:  # never let our code break ccxt's message handler
            reason, tick = MALFORMED, None
        if reason is None and tick is not None and tick["time"] < self.last_time.get(symbol, 0.0):
            reason = OLDER
        if reason is not None:
            self.reject(symbol, reason)
            return
        self.last_time[symbol] = tick["time"]  # type: ignore[index]
        self.stats.ticks += 1
        self.writer.put(symbol, tick)  # type: ignore[arg-type]

    def reject(self, symbol: str, reason: str) -> None:
        self.stats.rejected[reason] += 1
        self._unlogged_rejects[reason] += 1
        mono = time.monotonic()
        if mono - self._last_reject_log >= REJECT_LOG_EVERY:
            summary = ", ".join(f"{k}={v}" for k, v in sorted(self._unlogged_rejects.items()))
            self.log.warning(f"rejected ticks (latest {symbol}: {reason}); since last report: {summary}")
            self._unlogged_rejects.clear()
            self._last_reject_log = mono

    # --- lifecycle --------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def dump_tasks(self) -> None:
        """SIGUSR1: log where every asyncio task is waiting (for a worker that seems stuck)."""
        for task in asyncio.all_tasks():
            self.log.warning(f"task {task.get_name()}: {_await_chain(task)}")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self.dump_tasks)
        loop.set_exception_handler(self._loop_exception)
        tasks: list[asyncio.Task[Any]] = []
        # watch for the supervisor's death from the first moment: a start can retry for long
        # (markets over REST, an unreachable exchange) and must not outlive its supervisor
        if self.spec.parent_pid:
            tasks.append(asyncio.create_task(self._watch_parent(), name="parent"))
        if self.control is not None:
            loop.add_reader(self.control.fileno(), self._on_control)
            tasks.append(asyncio.create_task(self._control_loop(), name="control"))
        # the report renews the lease from the first moment: a start can outlast the lease TTL
        tasks.append(asyncio.create_task(self._health_loop(), name="health"))
        if not self.spec.lease and not self.spec.standby and not await self._try_own_lease():
            # run without a supervisor and the exchange is taken: wait for it as a standby
            self._lease_task = asyncio.create_task(self._acquire_own_lease(), name="lease")
        code, final = None, health.ERROR
        try:
            if not await self._until_stopped(self._start_exchange()):
                code, final = self._exit_code, health.STOPPED
        except ConfigError as exc:
            self.log.error(f"configuration error: {exc}")
            self.stats.last_error = str(exc)
            code = EXIT_CONFIG
        except Exception as exc:  # a crash at start still leaves its reason where `ps` reads it
            self.log.exception(f"worker failed to start: {type(exc).__name__}: {exc}")
            self.stats.last_error = f"start failed: {type(exc).__name__}: {exc}"[:300]
            code = EXIT_CRASH
        if code is not None:
            budget = 0.4 if code == EXIT_PARENT_GONE else 2.0
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks, timeout=budget)
            await self._publish_final(final, budget)
            await self._close(budget)
            return code
        tasks += [
            asyncio.create_task(self.writer.run(), name="flusher"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
        ]
        self._subscribe(sorted(self.wanted))
        self.status = health.RUNNING
        self._report_now.set()  # say so now, not at the next period
        if self._early_symbols is not None:  # the catalog changed while we were starting
            await self.update_symbols(self._early_symbols)
        self.log.info(f"collecting {len(self.wanted)} symbols via {self.plan.method} "  # type: ignore[union-attr]
                      f"({len(self.chunks)} subscriptions)")
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:  # a background task ended: that is a bug, make it a crash
                if t is not stop_wait and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        except LeaseLost as exc:
            self._lease_lost(str(exc))
        except Exception as exc:
            self.log.exception(f"worker crashed: {exc}")
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            self._exit_code = EXIT_CRASH
        finally:
            await self._shutdown([stop_wait, *tasks])
        return self._exit_code

    async def _start_exchange(self) -> None:
        ccxt_id = self.cfg.ccxt_id or self.name
        cls = getattr(ccxtpro, ccxt_id, None)
        if cls is None or not isinstance(cls, type):
            raise ConfigError(f"unknown ccxt exchange id {ccxt_id!r} (ccxt.pro has no such exchange)")
        config = {"enableRateLimit": True, **self.cfg.ccxt}
        self.exchange = cls(config)
        # ccxt (4.5.90) adds its own per-URL dial backoff (0.1 s doubling to 30 s, no jitter, reset
        # only by a successful connect) on top of ours: after an outage it held reconnects for up
        # to 30 s. Our chunk loops' jittered, capped backoff is the only one.
        self.exchange.ws_dial_delay = lambda url: 0.0
        _limit_frames(self.exchange, self.cfg.max_frame_bytes)
        self.plan = plan_for(ccxt_id, self.exchange.has, self.cfg.method, self.cfg.channel, self.cfg.chunk)
        if not self.exchange.has.get(_camel(self.plan.method)):
            raise ConfigError(f"ccxt {ccxt_id} has no {self.plan.method}")
        await self._load_markets()
        self.exchange.tickers = TickerSink(self.on_ticker, self.exchange.tickers)
        self.set_wanted(set(self.spec.symbols))
        if not self.wanted:
            given = ", ".join(self.unknown) or "(none given)"
            raise ConfigError(f"none of the symbols is listed by {ccxt_id}: {given}")

    async def _load_markets(self) -> None:
        """Markets from the snapshot (`markets` setting) or ccxt's REST call; an unreachable
        source is retried with backoff (a stop ends the wait), a bad one is a config error."""
        source = self.cfg.markets
        attempt = 0
        while True:
            try:
                if source:
                    self.exchange.set_markets(await _read_markets(source))
                else:
                    await self.exchange.load_markets()
                return
            except (ccxt.NetworkError, ccxt.ExchangeNotAvailable, MarketsUnavailable) as exc:
                attempt += 1
                wait = delay(attempt, self.cfg.reconnect_delay, self.cfg.reconnect_max_delay)
                self.log.warning(f"markets not loaded ({type(exc).__name__}: {exc}); retry in {wait:.1f}s")
                self.stats.last_error = f"markets: {exc}"
                await self._sleep_or_stop(wait)
                if self._stop.is_set():
                    raise ConfigError("stopped before markets could be loaded") from None

    def set_wanted(self, symbols: set[str]) -> tuple[set[str], set[str]]:
        """Filter to listed markets; returns (added, removed) relative to the current set."""
        markets = self.exchange.markets or {}
        listed = {s for s in symbols if s in markets}
        for s in sorted(symbols - listed):
            if s not in self.unknown:
                self.log.error(f"symbol {s!r} is not listed by {self.exchange.id}; skipped")
                self.unknown.append(s)
        added, removed = listed - self.wanted, self.wanted - listed
        self.wanted = listed
        now = time.monotonic()
        for s in added:
            self.last_seen.setdefault(s, now)
        for s in removed:
            self.last_seen.pop(s, None)
            self.last_time.pop(s, None)
        return added, removed

    async def update_symbols(self, symbols: set[str]) -> None:
        """Apply a new symbol set while running, without dropping unaffected subscriptions."""
        added, removed = self.set_wanted(symbols)
        if removed:
            for chunk in [c for c in self.chunks if removed & set(c.symbols)]:
                await self._drop_chunk(chunk)
                keep = [s for s in chunk.symbols if s not in removed]
                if keep:
                    added |= set(keep)
            try:
                await self.writer.remove(removed)
            except (RedisError, OSError) as exc:
                self.log.error(f"could not remove {len(removed)} symbols from redis: {exc}")
            self.log.info(f"stopped collecting {', '.join(sorted(removed))}")
        if added:
            self._subscribe(sorted(added))
            self.log.info(f"now collecting {', '.join(sorted(added))}")

    # --- subscriptions ----------------------------------------------------------------------
    def _subscribe(self, symbols: list[str]) -> None:
        assert self.plan is not None
        for part in chunked(symbols, self.plan.chunk):
            chunk = Chunk(part)
            chunk.task = asyncio.create_task(self._watch(chunk), name=f"watch:{part[0]}+{len(part) - 1}")
            self.chunks.append(chunk)

    async def _drop_chunk(self, chunk: Chunk) -> None:
        self.chunks.remove(chunk)
        if chunk.task:
            chunk.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await chunk.task
        if self.plan and self.plan.unwatch:
            method = "un_watch_ticker" if self.plan.method == "watch_ticker" else "un_watch_tickers"
            arg: Any = chunk.symbols[0] if self.plan.method == "watch_ticker" else chunk.symbols
            try:
                await asyncio.wait_for(getattr(self.exchange, method)(arg, dict(self.plan.params)), 5)
            except Exception as exc:  # best effort: data for unwanted symbols is ignored anyway
                self.log.debug(f"{method} failed: {type(exc).__name__}: {exc}")

    async def _watch(self, chunk: Chunk) -> None:
        assert self.plan is not None
        plan = self.plan
        watch = getattr(self.exchange, plan.method)
        while not self._stop.is_set():
            arg: Any = chunk.symbols[0] if plan.method == "watch_ticker" else list(chunk.symbols)
            try:
                await watch(arg, dict(plan.params))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # our own cancellation
                await self._failed(chunk, "ccxt cancelled the subscription")
                continue
            except (ccxt.NetworkError, ccxt.ExchangeError) as exc:
                # ExchangeError covers subscription rejections (e.g. BadSymbol, UnsubscribeError)
                await self._failed(chunk, f"{type(exc).__name__}: {exc}")
                continue
            now = time.monotonic()
            chunk.forced = False
            if chunk.attempt:
                if not chunk.connected_at:
                    chunk.connected_at = now
                    self.stats.reconnects += 1
                    self.stats.failures_in_row = 0
                    if self.status == health.ERROR:
                        self.status = health.RUNNING
                    self.log.info(f"resubscribed {len(chunk.symbols)} symbols after {chunk.attempt} attempt(s)")
                elif now - chunk.connected_at >= STABLE_AFTER:
                    chunk.attempt, chunk.connected_at = 0, 0.0

    async def _failed(self, chunk: Chunk, error: str) -> None:
        # a reconnect we forced (silence watchdog) is not the exchange failing: do not grow the backoff
        chunk.attempt = 1 if chunk.forced else chunk.attempt + 1
        chunk.forced = False
        chunk.connected_at = 0.0
        self.stats.failures_in_row += 1
        self.stats.last_error = error[:300]
        if self.stats.failures_in_row >= self.cfg.max_retries > 0 and self.status == health.RUNNING:
            self.status = health.ERROR
        wait = delay(chunk.attempt, self.cfg.reconnect_delay, self.cfg.reconnect_max_delay)
        self.log.warning(f"subscription of {len(chunk.symbols)} symbols failed ({error[:200]}); "
                         f"attempt {chunk.attempt}, retry in {wait:.2f}s")
        await self._sleep_or_stop(wait)

    def force_reconnect(self, why: str) -> None:
        """Fail every open connection so the watch loops reconnect and resubscribe."""
        clients = list(getattr(self.exchange, "clients", {}).values())
        self.log.warning(f"forcing reconnect of {len(clients)} connection(s): {why}")
        for chunk in self.chunks:
            chunk.forced = True
        for client in clients:
            with contextlib.suppress(Exception):
                client.on_error(ccxt.NetworkError(f"watchdog: {why}"))

    # --- background loops -------------------------------------------------------------------
    async def _watchdog(self) -> None:
        period = max(0.1, min(1.0, self.cfg.stale_after / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            silent = now - self.last_any
            if silent >= self.cfg.stale_after and self.wanted:
                self.stats.stale_reconnects += 1
                self.force_reconnect(f"no data for {silent:.1f}s")
                self.last_any = now  # give the reconnect a full period before judging again
                continue
            limit = self.cfg.symbol_stale_after
            if limit and self.wanted and now - self._last_symbol_kick >= limit:
                stale = [s for s in self.wanted if now - self.last_seen.get(s, now) >= limit]
                if stale:
                    self._last_symbol_kick = now
                    self.stats.stale_reconnects += 1
                    self.force_reconnect(f"{len(stale)} symbol(s) silent for {limit:g}s, e.g. {stale[0]}")

    @property
    def _report_period(self) -> float:
        return min(self.settings.service.health_interval, self.settings.cluster.renew_every)

    async def _health_loop(self) -> None:
        """Report (and so renew the lease) every renewal period or health interval, whichever is
        shorter; a standby checks four times a second whether it can announce itself armed."""
        period = self._report_period
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():  # redis-py can swallow a cancellation
                raise asyncio.CancelledError
            await self._publish_health()
            self._report_now.clear()
            wait = period if self.writer.lease or self._armed else min(period, 0.25)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._report_now.wait()

    def health_record(self) -> dict[str, Any]:
        now_m, now = time.monotonic(), time.time()
        st = self.stats
        dt = now_m - st.last_rate_at
        if dt >= 0.5:
            st.ticks_per_s = round((st.ticks - st.last_ticks) / dt, 2)
            st.last_ticks, st.last_rate_at = st.ticks, now_m
        ages = sorted(((now_m - self.last_seen.get(s, now_m), s) for s in self.wanted), reverse=True)
        w = self.writer
        return {
            "exchange": self.name, "pid": os.getpid(), "host": self.host, "host_id": self.host_id,
            "token": lease.token(self.writer.lease) if self.writer.lease else None,
            "role": "owner" if self.writer.lease else "standby", "status": self.status,
            "process_id": self.process_id, "started_at": self.started_at, "updated_at": now,
            "interval": self.settings.service.health_interval,
            "symbols": len(self.wanted), "unknown_symbols": self.unknown[:20],
            "method": self.plan.method if self.plan else None, "subscriptions": len(self.chunks),
            "ticks": st.ticks, "ticks_per_s": st.ticks_per_s, "rejected": dict(st.rejected),
            "reconnects": st.reconnects, "stale_reconnects": st.stale_reconnects,
            "last_tick_age_s": round(now_m - self.last_any, 3),
            "stalest": [[s, round(a, 3)] for a, s in ages[:5]],
            "redis": "up" if w.redis_up else "down", "pending": len(w.pending),
            "flushes": w.flushes, "written": w.written, "older_in_redis": w.older_in_redis,
            "redis_round_trips": w.round_trips, "last_flush_ms": round(w.last_flush_ms, 3),
            "fenced_flushes": w.fenced,
            "last_error": st.last_error, **_resources(),
        }

    async def _publish_health(self, status: str | None = None, final: bool = False) -> None:
        """The owner's report: lease renewal, our health record and fullon's process records, in one
        fenced script. A standby only announces itself armed (connected and holding ticks)."""
        if status:
            self.status = status
        if self.lost:
            return
        record = self.health_record()
        interval = self.settings.service.health_interval
        now = time.time()
        try:
            if not self.writer.lease:
                await self._publish_standby(record, final)
            else:
                proc = health.process_record(
                    self.process_id, self.name, self.status, self.stats.last_error or f"{len(self.wanted)} symbols",
                    self.started_at, now, {"exchange": self.name, "symbols": len(self.wanted), "host": self.host,
                                           "host_id": self.host_id, "pid": os.getpid(),
                                           "token": lease.token(self.writer.lease)})
                ks = (keys.lease(self.ns, self.name), keys.fence(self.ns, self.name), keys.health(self.ns, self.name),
                      keys.process_data(self.process_id), keys.process_active(), keys.PROCESS_COMPONENTS,
                      keys.fenced(self.ns))
                held = await self.redis.eval(
                    lease.REPORT, len(ks), *ks, self.writer.lease, lease.token(self.writer.lease),
                    self.writer.lease_ttl_ms, orjson.dumps(record), int(interval * 3000), orjson.dumps(proc),
                    keys.PROCESS_DATA_TTL, self.process_id, health.iso(now), self.name,
                    "1" if final or self.status == health.STOPPED else "0")
                if not int(held):
                    self._lease_lost(f"the lease is no longer {self.writer.lease!r}")
                    return
            if self._health_failed:  # Redis is back (maybe empty): refill every symbol now
                self._health_failed = False
                self.writer.replay_all()
        except (RedisError, OSError) as exc:
            self._health_failed = True
            self.log.debug(f"health record not written: {exc}")

    async def _publish_standby(self, record: dict[str, Any], final: bool) -> None:
        key = keys.armed(self.ns, self.name, self.host_id)
        if final:  # a standby that failed leaves its reason (status error) for its supervisor
            if self.status == health.ERROR:
                await self.redis.set(key, orjson.dumps(record), px=int(self.settings.service.health_interval * 3000))
            else:
                await self.redis.delete(key)
            self._armed = False
        elif self.status == health.RUNNING and self.writer.latest:
            await self.redis.set(key, orjson.dumps(record), px=int(max(1.0, 3 * self._report_period) * 1000))
            if not self._armed:
                self.log.info(f"standby armed with {len(self.writer.latest)} symbols; waiting for the lease")
            self._armed = True

    def _lease_lost(self, why: str) -> None:
        """Another worker owns the exchange now: write nothing more, exit for the supervisor."""
        if self.lost:
            return
        self.lost = True
        self.log.error(f"lease lost ({why}); {len(self.writer.pending)} held symbols not written; stopping "
                       f"for the supervisor to re-evaluate")
        self.stats.last_error = "lease lost to another writer"
        self._exit_code = EXIT_FENCED
        self.stop()

    async def _try_own_lease(self) -> bool:
        """A worker run without a supervisor (by hand, tests, the benchmark) takes the exchange's
        lease itself. False while another worker holds it (or Redis does not answer)."""
        try:
            got, value = lease.acquired(await self.redis.eval(
                *lease.acquire_call(self.ns, self.name, self.host_id, os.getpid(), self.writer.lease_ttl_ms)))
        except (RedisError, OSError) as exc:
            self.log.warning(f"lease not acquired yet (Redis: {exc})")
            return False
        if got:
            await self._take_lease(value)
            return True
        if value != self._waiting_for:
            self.log.warning(f"{self.name} is being written under lease {value!r}; waiting for it")
            self._waiting_for = value
        return False

    async def _acquire_own_lease(self) -> None:
        while not await self._try_own_lease():  # noqa: ASYNC110 - polling Redis, not a local flag
            await asyncio.sleep(0.2)

    async def _take_lease(self, value: str) -> None:
        """The supervisor acquired the lease for our standby: flush everything held, report as owner."""
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(keys.armed(self.ns, self.name, self.host_id))
        self._armed = False
        self.writer.set_lease(value)
        self._report_now.set()
        self.log.info(f"lease received (token {lease.token(value)}); flushing {len(self.writer.latest)} symbols")

    async def _watch_parent(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if os.getppid() != self.spec.parent_pid:
                self.log.error("supervisor is gone; stopping")
                self._exit_code = EXIT_PARENT_GONE
                self.stop()
                return

    def _on_control(self) -> None:
        """Readable control pipe: queue each symbol set; EOF means the supervisor is gone."""
        assert self.control is not None
        try:
            while self.control.poll():
                self._control_queue.put_nowait(self.control.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.control.fileno())
            self._control_queue.put_nowait(None)

    async def _control_loop(self) -> None:
        while True:
            symbols = await self._control_queue.get()
            if isinstance(symbols, dict):  # {"lease": value}
                await self._take_lease(str(symbols["lease"]))
                continue
            if symbols is None:
                self.log.error("supervisor is gone (control pipe closed); stopping")
                self._exit_code = EXIT_PARENT_GONE
                self.stop()
                return
            if self.status == health.STARTING:  # applied once subscribed (see run)
                self._early_symbols = set(symbols)
                continue
            await self.update_symbols(set(symbols))

    async def _until_stopped(self, coro: Any) -> bool:
        """Run `coro` unless a stop comes first (then cancel it); True when it completed."""
        work, stop = asyncio.ensure_future(coro), asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if work.done():
            work.result()  # its exception, if any
            return True
        work.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(work, 0.2)
        self.log.info("stopped while starting")
        return False

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """ccxt runs its receive loop in done-callbacks: a frame it cannot parse raises there and
        silently stops that connection's receive loop. Say so in one line and reconnect now."""
        exc = context.get("exception")
        msg = f"{type(exc).__name__}: {exc}" if exc else str(context.get("message"))
        self.log.error(f"unhandled error in event loop ({msg[:200]}); reconnecting")
        self.stats.rejected[MALFORMED] += 1
        self.stats.last_error = msg[:300]
        if self.exchange is not None and not self._stop.is_set():
            self.force_reconnect("receive loop failed")

    # --- shutdown ---------------------------------------------------------------------------
    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Stop taking ticks, write what is held, report, give the lease back; only then close the
        exchange's sockets (the slow part: a close handshake per connection), so a standby elsewhere
        takes over after one flush, not after our goodbyes."""
        # With the supervisor gone nobody waits for a graceful stop: the promise is "no worker
        # left after 2 s", so every step gets a short deadline.
        budget = 0.4 if self._exit_code == EXIT_PARENT_GONE else 2.0
        self.status = health.STOPPING
        self._stop_taking_ticks()  # no tick may be accepted after the final flush
        if self._lease_task is not None:  # nor a lease taken after it was given back
            self._lease_task.cancel()
        for chunk in self.chunks:
            if chunk.task:
                chunk.task.cancel()
        for t in tasks:
            t.cancel()
        pending = [*tasks, *(c.task for c in self.chunks if c.task)]
        _, stuck = await asyncio.wait(pending, timeout=budget)
        for t in stuck:  # a task that ignores cancellation must not hold the shutdown hostage
            self.log.error(f"task {t.get_name()} did not stop on cancel ({_await_chain(t)}); leaving it")
        if self.writer.lease and not self.lost:
            try:
                await asyncio.wait_for(self.writer.flush_now(), budget)
            except LeaseLost as exc:
                self._lease_lost(str(exc))
            except (Exception, asyncio.CancelledError) as exc:
                self.log.error(f"final flush failed, {len(self.writer.pending)} symbols not written: {exc}")
        await self._publish_final(health.STOPPED if self._exit_code in (EXIT_OK, EXIT_PARENT_GONE)
                                  else health.ERROR, budget)
        await self._close(budget)
        self.log.info(f"stopped (exit {self._exit_code}); {self.stats.ticks} ticks accepted")

    def _stop_taking_ticks(self) -> None:
        """Frames ccxt still parses (until its sockets close) are dropped, not buffered."""
        if self.exchange is not None and isinstance(self.exchange.tickers, TickerSink):
            self.exchange.tickers.on_set = lambda symbol, ticker: None

    async def _publish_final(self, status: str, budget: float = 2.0) -> None:
        """The last report (fullon: a stopped or failed process leaves the active lists), then the
        lease goes back at once, so a standby elsewhere takes over without waiting for the TTL."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._publish_health(status, final=True), budget)
        if self.writer.lease and not self.lost:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.redis.eval(*lease.release_call(self.ns, self.name, self.writer.lease)),
                                       budget)

    async def _close_exchange(self, budget: float = 2.0) -> None:
        if self.exchange is not None:
            self._stop_taking_ticks()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.exchange.close(), budget)
            self.exchange = None

    async def _close(self, budget: float = 2.0) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
        await self._close_exchange(budget)
        with contextlib.suppress(Exception):
            await self.redis.aclose()


def _await_chain(task: asyncio.Task[Any]) -> str:
    """Where a task waits: its await chain down to the innermost frame (for debugging dumps)."""
    chain, coro = [], task.get_coro()
    while coro is not None and len(chain) < 12:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(chain) or "(not started)"


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resources() -> dict[str, Any]:
    """What a leak would grow: resident memory, open descriptors, asyncio tasks (soak tests, operators)."""
    out: dict[str, Any] = {"tasks": len(asyncio.all_tasks())}
    with contextlib.suppress(OSError, ValueError, IndexError):
        out["rss_mb"] = round(int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE / 2**20, 1)
        out["fds"] = len(os.listdir("/proc/self/fd"))
    return out


class _FrameLimit:
    """An aiohttp session as ccxt sees it, but whose websockets refuse frames over `limit` bytes.

    ccxt hard-codes a 10 MiB limit; a larger frame makes aiohttp fail the connection (close code
    1009), which ccxt reports as a NetworkError, so the usual reconnect path handles it.
    """

    def __init__(self, session: Any, limit: int) -> None:
        self._session, self._limit = session, limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def ws_connect(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.ws_connect(*args, **{**kwargs, "max_msg_size": self._limit})


def _limit_frames(exchange: Any, limit: int) -> None:
    """Every websocket client `exchange` creates connects through `_FrameLimit`."""
    make_client = exchange.client

    def client(url: str) -> Any:
        c = make_client(url)
        if not getattr(c, "_frame_limit", None):
            connect = c.create_connection
            c.create_connection = lambda session: connect(_FrameLimit(session, limit))
            c._frame_limit = limit
        return c

    exchange.client = client


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


class MarketsUnavailable(Exception):
    """The markets snapshot could not be fetched now (network); worth retrying."""


async def _read_markets(source: str) -> list[dict[str, Any]]:
    """A markets snapshot: a JSON list of ccxt market dicts, from a file or an http(s) URL."""
    try:
        if source.startswith(("http://", "https://")):
            import aiohttp

            timeout = aiohttp.ClientTimeout(10)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session, session.get(source) as r:
                    if 400 <= r.status < 500:  # a wrong URL does not fix itself
                        raise ConfigError(f"markets snapshot {source!r}: HTTP {r.status}")
                    r.raise_for_status()
                    body = await r.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise MarketsUnavailable(f"{source}: {type(exc).__name__}: {exc}") from None
        else:
            # start-up only, before any subscription: a blocking read of a small file is fine
            body = Path(source).read_bytes()  # noqa: ASYNC240
        data = orjson.loads(body)
    except (ConfigError, MarketsUnavailable):
        raise
    except Exception as exc:  # a missing file or broken JSON: the operator must fix it
        raise ConfigError(f"markets snapshot {source!r} unreadable: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(m, dict) and "symbol" in m for m in data):
        raise ConfigError(f"markets snapshot {source!r}: expected a JSON list of market objects")
    return data


# --- process entry points --------------------------------------------------------------------
def run_process(spec: WorkerSpec, control: Connection | None = None) -> int:
    """Entry point in a fresh process: logging, uvloop, run, exit code."""
    from fullon_ticker_service import logs

    svc = spec.settings.service
    logs.setup(svc.log_level, svc.log_format, exchange=spec.exchange, component="worker")
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep running without it
        runner = asyncio.run
    try:
        return runner(_run(spec, control))
    except KeyboardInterrupt:
        return EXIT_OK


async def _run(spec: WorkerSpec, control: Connection | None) -> int:
    return await Worker(spec, control).run()  # built inside the loop it runs on


def main(argv: list[str] | None = None) -> int:
    """`python -m fullon_ticker_service.worker EXCHANGE [SYMBOL ...] [--config FILE]`."""
    import argparse

    from fullon_ticker_service import config

    p = argparse.ArgumentParser(prog="python -m fullon_ticker_service.worker",
                                description="Run one exchange worker in the foreground.")
    p.add_argument("exchange")
    p.add_argument("symbols", nargs="*", help="unified symbols; default: the config file's catalog")
    p.add_argument("--config", default=None)
    args = p.parse_args(argv)
    try:
        settings = config.load(args.config)
    except ConfigError as exc:
        print(f"tickerctl worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    symbols = tuple(args.symbols) or settings.exchange(args.exchange).symbols
    return run_process(WorkerSpec(args.exchange, symbols, settings))


if __name__ == "__main__":
    sys.exit(main())

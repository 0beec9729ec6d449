"""One worker process from start to exit: build the parts, run them, one shutdown path, exit code.

    start  -> the ccxt exchange, its markets, the parser (decoder.py), the wanted symbols (exchange.py, intake.py)
    serve  -> subscriptions + watchdog (subscriptions.py), the flusher (writer.py),
              the health report (report.py), the supervisor's pipe (link.py)
    stop   -> stop taking ticks, final flush, final report, give the lease back, close sockets

Every write is fenced by the exchange's lease (ownership.py). A refused write means another
worker owns the exchange now: stop writing at once and exit (EXIT_FENCED) for the supervisor to
re-evaluate.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Coroutine
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger
from redis.exceptions import RedisError

from fullon_ticker_service import health
from fullon_ticker_service.config import ConfigError
from fullon_ticker_service.launch import EXIT_CONFIG, EXIT_CRASH, EXIT_FENCED, EXIT_OK, EXIT_PARENT_GONE, WorkerSpec
from fullon_ticker_service.redis_client import make_redis
from fullon_ticker_service.tick import MALFORMED
from fullon_ticker_service.worker import exchange as exchanges
from fullon_ticker_service.worker.decoder import Decoder
from fullon_ticker_service.worker.intake import Intake
from fullon_ticker_service.worker.link import Link
from fullon_ticker_service.worker.ownership import Lease, LeaseLost
from fullon_ticker_service.worker.report import Reporter
from fullon_ticker_service.worker.subscriptions import Subscriptions
from fullon_ticker_service.worker.writer import TickWriter


class Worker:
    def __init__(self, spec: WorkerSpec, control: Connection | None = None) -> None:
        self.spec = spec
        self.name = spec.exchange
        self.settings = spec.settings
        self.cfg = spec.settings.exchange(spec.exchange)
        self.log = logger.bind(exchange=self.name)
        self.redis = make_redis(spec.settings.redis)
        ns = spec.settings.service.namespace
        self.lease = Lease(self.redis, ns, self.name, spec.host_id or socket.gethostname(),
                           int(spec.settings.cluster.lease_ttl * 1000), spec.lease)
        self.writer = TickWriter(self.redis, self.name, ns, self.lease, self.cfg.flush_interval)
        self.intake = Intake(self.name, self.cfg, self.writer)
        self.exchange: Any = None
        self.subs: Subscriptions | None = None
        self.decoder = Decoder(self.name, self.cfg)
        self.link = Link(control, spec.parent_pid, lambda: (self.phase, self.status, self.last_error))
        self.reporter = Reporter(self.name, spec.settings, self.cfg, self.redis, self.lease, self.writer, self.intake,
                                 self._parts, lambda: self.phase, self._failing, self._lease_lost)
        self.phase = health.STARTING  # starting -> running -> stopping -> stopped/error: the only one we set
        self.exit_code = EXIT_OK
        self._stop = asyncio.Event()
        self._early_symbols: set[str] | None = None  # a catalog change that came while starting

    @property
    def status(self) -> str:
        """The reported status: the phase, or while running what the last report judged (health.judge)."""
        return self.reporter.judged[0] if self.phase == health.RUNNING else self.phase

    @property
    def last_error(self) -> str:
        return self.reporter.last_error

    def note_error(self, message: str) -> None:
        self.reporter.note_error(message)
        self.link.tell()

    def _failing(self) -> str:
        """The error of a subscription that failed `max_retries` reconnects in a row, else ""."""
        if self.subs is None or not self.subs.failing:
            return ""
        worst = max(self.subs.subs, key=lambda s: s.failures_in_row)
        return f"{worst.failures_in_row} failed reconnects of {len(worst.symbols)} {worst.stream.kind} symbols: " \
               f"{worst.last_error}"

    def stop(self, code: int = EXIT_OK) -> None:
        """Begin the shutdown; a failure code overrides a clean one."""
        if code != EXIT_OK or not self._stop.is_set():
            self.exit_code = code
        self._stop.set()

    # --- run ----------------------------------------------------------------------------------
    async def run(self) -> int:
        self._install_handlers()
        # the pipe and the report (which renews the lease) run from the first moment: a start can
        # retry for long (markets over REST, an unreachable exchange) and must neither outlive its
        # supervisor nor let the lease lapse
        tasks = [*self.link.start(), asyncio.create_task(self._inbox(), name="control"),
                 asyncio.create_task(self.reporter.loop(), name="health")]
        if not self.lease.value and not self.spec.standby and not await self.lease.try_acquire():
            # run without a supervisor and the exchange is taken: wait for it as a standby
            tasks.append(asyncio.create_task(self._acquire_own_lease(), name="lease"))
        try:
            if await self._until_stopped(self._start()):
                tasks += [asyncio.create_task(self.writer.run(), name="flusher"),
                          asyncio.create_task(self.subs.watchdog(), name="watchdog")]  # type: ignore[union-attr]
                await self._serve(tasks)
        except ConfigError as exc:
            self.log.error(f"configuration error: {exc}")
            self.note_error(str(exc))
            self.stop(EXIT_CONFIG)
        except LeaseLost as exc:
            self._lease_lost(str(exc))
        except Exception as exc:
            what = "failed to start" if self.phase == health.STARTING else "crashed"
            self.log.exception(f"worker {what}: {type(exc).__name__}: {exc}")
            self.note_error(f"{'start failed: ' if self.phase == health.STARTING else ''}{type(exc).__name__}: {exc}")
            self.stop(EXIT_CRASH)
        finally:
            await self._shutdown(tasks)
        return self.exit_code

    async def _start(self) -> None:
        self.exchange, streams = exchanges.build(self.name, self.cfg)
        await exchanges.load_markets(self.exchange, self.cfg, self.note_error)
        await exchanges.open_loop(self.exchange)
        self.intake.hook(self.exchange)
        self.decoder.install(self.exchange)
        self.intake.set_wanted(set(self.spec.symbols), self.exchange.markets or {})
        if not self.intake.wanted:
            given = ", ".join(self.intake.unknown) or "(none given)"
            raise ConfigError(f"none of the symbols is listed by {self.exchange.id}: {given}")
        self.subs = Subscriptions(self.exchange, streams, self.cfg, self.intake, self.note_error)

    async def _serve(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Subscribe, say we run, then wait for a stop (or for a background task to fail)."""
        assert self.subs is not None
        await self.subs.add(sorted(self.intake.wanted))
        self.phase = health.RUNNING
        self.reporter.now.set()  # say so now, not at the next period
        self.link.tell()
        if self._early_symbols is not None:
            await self.update_symbols(self._early_symbols)
        await self._sweep()
        self.log.info(f"collecting {len(self.intake.wanted)} symbols via "
                      f"{' + '.join(s.method for s in self.subs.streams)} ({len(self.subs.subs)} subscriptions)")
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:  # a background task ended: that is a bug (or a lost lease), make it an exit
                if t is not stop_wait and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            stop_wait.cancel()

    async def _sweep(self) -> None:
        """Once we own the exchange: delete prices of symbols that left the catalog while no worker
        ran and that nobody has written for `symbol_stale_after` (a removal while running is
        `update_symbols`), so readers never get a frozen price."""
        if not self.lease.held or self.subs is None:
            return
        try:
            async with asyncio.timeout(10):
                gone = await self.writer.sweep(lambda: self.intake.wanted | set(self.intake.unknown),
                                               time.time() - self.cfg.symbol_stale_after)
        except LeaseLost as exc:
            self._lease_lost(str(exc))
            return
        except (RedisError, OSError, TimeoutError) as exc:
            self.log.warning(f"could not look for prices of symbols no longer collected: {exc}")
            return
        if gone:
            more = f" and {len(gone) - 5} more" if len(gone) > 5 else ""
            self.log.info(f"deleted the prices of {len(gone)} symbols no longer in the catalog: "
                          f"{', '.join(gone[:5])}{more}")

    async def update_symbols(self, symbols: set[str]) -> None:
        """Apply a new symbol set while running, without dropping unaffected subscriptions."""
        assert self.subs is not None
        added, removed = self.intake.set_wanted(symbols, self.exchange.markets or {})
        await self.subs.update(added, removed)
        if removed:
            try:
                await self.writer.remove(removed)
            except LeaseLost as exc:
                self._lease_lost(str(exc))
            except Exception as exc:
                self.log.error(f"could not remove {len(removed)} symbols from redis: {exc}")
            self.log.info(f"stopped collecting {', '.join(sorted(removed))}")
        if added:
            self.log.info(f"now collecting {', '.join(sorted(added))}")

    # --- ownership and the supervisor -----------------------------------------------------------
    async def _inbox(self) -> None:
        while True:
            msg = await self.link.inbox.get()
            if msg is None:
                self.log.error("supervisor is gone; stopping")
                self.stop(EXIT_PARENT_GONE)
                return
            if "lease" in msg:
                self.lease.grant(str(msg["lease"]))
                await self._took_lease()
            elif "symbols" in msg:
                if self.subs is None or self.phase != health.RUNNING:
                    self._early_symbols = set(msg["symbols"])  # applied once subscribed
                else:
                    await self.update_symbols(set(msg["symbols"]))

    async def _acquire_own_lease(self) -> None:
        await self.lease.acquire_when_free()
        await self._took_lease()
        # live until the stop: `_serve` reads a background task that ends as the worker's end
        await self._stop.wait()

    async def _took_lease(self) -> None:
        """Our standby owns the exchange now: the writer flushes everything held, we report as owner."""
        await self.reporter.disarm()
        self.reporter.now.set()
        self.log.info(f"lease received (token {self.lease.token}); flushing {len(self.writer.latest)} symbols")
        if self.phase == health.RUNNING:
            await self._sweep()

    def _lease_lost(self, why: str) -> None:
        """Another worker owns the exchange now: write nothing more, exit for the supervisor."""
        if not self.lease.lose():
            return
        self.log.error(f"lease lost ({why}); {len(self.writer.pending)} held symbols not written; stopping "
                       f"for the supervisor to re-evaluate")
        self.note_error("lease lost to another writer")
        self.stop(EXIT_FENCED)

    # --- signals and loop errors --------------------------------------------------------------
    def _install_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self.dump_tasks)
        loop.set_exception_handler(self._loop_exception)

    def dump_tasks(self) -> None:
        """SIGUSR1: log where every asyncio task is waiting (for a worker that seems stuck)."""
        for task in asyncio.all_tasks():
            self.log.warning(f"task {task.get_name()}: {_await_chain(task)}")

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """ccxt runs its receive loop in done-callbacks: a frame it cannot parse raises there and
        silently stops that connection's receive loop. Say so in one line and reconnect now."""
        exc = context.get("exception")
        msg = f"{type(exc).__name__}: {exc}" if exc else str(context.get("message"))
        self.log.error(f"unhandled error in event loop ({msg[:200]}); reconnecting")
        self.intake.rejected[MALFORMED] += 1
        self.note_error(msg)
        if self.subs is not None and not self._stop.is_set():
            self.subs.force_reconnect("receive loop failed")

    def _parts(self, now: float) -> dict[str, Any]:
        return {**(self.subs.snapshot() if self.subs else {}), **self.decoder.snapshot()}

    async def _until_stopped(self, coro: Coroutine[Any, Any, None]) -> bool:
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

    # --- the one shutdown path ------------------------------------------------------------------
    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Stop taking ticks, write what is held, report, give the lease back; only then close the
        exchange's sockets (the slow part: a close handshake per connection), so a standby elsewhere
        takes over after one flush, not after our goodbyes."""
        # With the supervisor gone nobody waits for a graceful stop: the promise is "no worker
        # left after 2 s", so every step gets a short deadline.
        budget = 0.4 if self.exit_code == EXIT_PARENT_GONE else 2.0
        final = health.STOPPED if self.exit_code in (EXIT_OK, EXIT_PARENT_GONE) else health.ERROR
        self.phase = health.STOPPING
        self.intake.close()  # no tick may be accepted after the final flush
        pending = [*tasks, *(self.subs.close() if self.subs else [])]
        for t in tasks:
            t.cancel()
        _, stuck = await asyncio.wait(pending, timeout=budget) if pending else (set(), set())
        for t in stuck:  # a task that ignores cancellation must not hold the shutdown hostage
            self.log.error(f"task {t.get_name()} did not stop on cancel ({_await_chain(t)}); leaving it")
        if self.lease.held and self.writer.pending:
            try:
                await asyncio.wait_for(self.writer.flush_now(), budget)
            except LeaseLost as exc:
                self._lease_lost(str(exc))
                final = health.ERROR
            except (Exception, asyncio.CancelledError) as exc:
                self.log.error(f"final flush failed, {len(self.writer.pending)} symbols not written: {exc}")
        self.phase = final
        # the last report (fullon: a stopped or failed process leaves the active lists), then the
        # lease goes back at once, so a standby elsewhere takes over without waiting for the TTL
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reporter.publish(final), budget)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.lease.release(), budget)
        self.link.tell(force=True)  # the supervisor learns our final status and error from the pipe
        self.link.close()
        if self.exchange is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.exchange.close(), budget)
        with contextlib.suppress(Exception):
            await self.writer.wire.close()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        self.log.info(f"stopped (exit {self.exit_code}); {self.intake.ticks} ticks accepted")


def _await_chain(task: asyncio.Task[Any]) -> str:
    """Where a task waits: its await chain down to the innermost frame (for debugging dumps)."""
    chain, coro = [], task.get_coro()
    while coro is not None and len(chain) < 12:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(chain) or "(not started)"


# --- process entry points --------------------------------------------------------------------
def run_process(spec: WorkerSpec, control: Connection | None = None) -> int:
    """Entry point in a fresh process: logging, uvloop, run, exit code."""
    from fullon_ticker_service import logs
    from fullon_ticker_service.proctitle import set_title

    set_title(f"worker {spec.exchange}" + ("" if spec.lease or not spec.standby else " (standby)"))
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


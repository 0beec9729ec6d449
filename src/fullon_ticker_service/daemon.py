"""`TickerDaemon`: the service embedded in another program's asyncio code.

It runs the same supervisor as `tickerctl up`, in a spawned child process (signals, worker
processes and restart policy stay there), and feeds it the catalog over a pipe, so
`process_ticker()` adds a symbol without restarting anything.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger

from fullon_ticker_service import catalog as cat
from fullon_ticker_service import config, health, keys, status
from fullon_ticker_service.config import Settings, valid_symbol
from fullon_ticker_service.redis_client import make_redis


def _supervise(settings: Settings, initial: cat.Catalog, conn: Connection) -> None:
    import sys

    from fullon_ticker_service import logs
    from fullon_ticker_service.supervisor import Supervisor

    logs.setup(settings.service.log_level, settings.service.log_format)
    sys.exit(Supervisor(settings, catalog=initial, catalog_conn=conn).run())


class TickerDaemon:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or config.load()
        self.status = "stopped"
        self.catalog: cat.Catalog = {}
        self.process_id: str | None = None
        self._proc: Any = None
        self._conn: Connection | None = None
        self.log = logger.bind(component="daemon")

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    async def start(self, only: cat.Catalog | None = None) -> None:
        """Start collecting every catalog symbol (or just `only`). Raises on failure (status `error`)."""
        if self.is_running():
            return
        try:
            self.catalog = only if only is not None else await self._load_catalog()
            redis = make_redis(self.settings.redis)
            try:
                await redis.ping()
            finally:
                await redis.aclose()
            ctx = multiprocessing.get_context("spawn")
            mine, theirs = ctx.Pipe(duplex=False)
            self._proc = ctx.Process(target=_supervise, args=(self.settings, self.catalog, mine),
                                     name="tick-supervisor")
            self._proc.start()
            mine.close()
            self._conn = theirs
            self.process_id = health.process_id("daemon", time.time())
            await asyncio.sleep(0.2)
            if not self._proc.is_alive():
                raise RuntimeError(f"supervisor exited at once (code {self._proc.exitcode}); another one running?")
            self.status = "running"
        except Exception:
            self.status = "error"
            raise

    async def _load_catalog(self) -> cat.Catalog:
        if not self.settings.database.enabled:
            return cat.from_config(self.settings)
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.settings.database.url, autocommit=True,
                                                         connect_timeout=5) as conn:
            rows = await (await conn.execute(cat.CATALOG_QUERY, (self.settings.database.admin_mail,))).fetchall()
        catalog, problems = cat.from_rows(rows, self.settings)
        for p in problems:
            self.log.error(f"catalog: {p}")
        return catalog

    async def stop(self) -> None:
        """Graceful stop; never raises; safe when not running."""
        try:
            if self._proc is not None and self._proc.is_alive():
                os.kill(self._proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + self.settings.supervisor.stop_timeout + 5
                # a child process has no awaitable exit here; poll it briefly
                while self._proc.is_alive() and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                if self._proc.is_alive():
                    self.log.error("supervisor did not stop in time; killing it")
                    self._proc.kill()
                self._proc.join(1)
        except Exception as exc:  # stop() must never raise
            self.log.error(f"stop failed: {type(exc).__name__}: {exc}")
        finally:
            if self._conn is not None:
                self._conn.close()
            self._proc, self._conn = None, None
            self.status = "stopped"

    async def process_ticker(self, symbol: Any, exchange: str | None = None) -> None:
        """Collect one more symbol: added live when running, a fresh start when stopped.

        `symbol` is a unified symbol with `exchange`, or a fullon Symbol-like object carrying
        `.symbol` and `.exchange_name` (or `.cat_exchange.name`).
        """
        name = exchange or getattr(symbol, "exchange_name", None) or getattr(
            getattr(symbol, "cat_exchange", None), "name", None)
        sym = getattr(symbol, "symbol", symbol)
        if not isinstance(sym, str) or not valid_symbol(sym):
            raise ValueError(f"invalid symbol {sym!r}: expected a unified symbol like BTC/USDT")
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ValueError(f"invalid or missing exchange for {sym!r}: {name!r}")
        if self.is_running():
            current = set(self.catalog.get(name, ()))
            if sym in current:
                return
            self.catalog = {**self.catalog, name: tuple(sorted(current | {sym}))}
            assert self._conn is not None
            self._conn.send(self.catalog)
            return
        if self._proc is not None or self.status == "running":
            self.log.error(f"inconsistent state (status {self.status}, supervisor gone); call stop() first")
            return
        await self.start(only={name: (sym,)})

    async def get_health(self) -> dict[str, Any]:
        redis = make_redis(self.settings.redis)
        ns = self.settings.service.namespace
        try:
            raw_sup = await redis.get(keys.supervisor_state(ns, self.settings.cluster.host_id or socket.gethostname()))
            names = sorted(set(self.catalog))
            records = dict(zip(names, await redis.mget([keys.health(ns, n) for n in names]), strict=True)) \
                if names else {}
        except Exception as exc:
            return {"status": "error", "running": self.is_running(), "process_id": self.process_id,
                    "collector": "inactive", "exchanges": sorted(self.catalog), "symbol_count": 0,
                    "error": f"redis: {exc}"}
        finally:
            await redis.aclose()
        import orjson

        sup = orjson.loads(raw_sup) if raw_sup else None
        workers = status.rows(sup, records, time.time(), self.settings.service.health_interval)
        running = self.is_running()
        return {
            "status": "running" if running else ("error" if self.status == "error" else "stopped"),
            "running": running,
            "process_id": self.process_id,
            "collector": "active" if running and any(w["status"] == "running" for w in workers) else "inactive",
            "exchanges": sorted(self.catalog),
            "symbol_count": sum(len(v) for v in self.catalog.values()),
            "workers": workers,
        }

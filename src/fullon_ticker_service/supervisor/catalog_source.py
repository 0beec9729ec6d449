"""Where the supervisor's catalog comes from, behind one interface.

- `Fixed`: given by the embedding API (`TickerDaemon`), with updates over a pipe;
- `FromConfig`: the config file's `[exchanges]` (re-read on SIGHUP);
- `FromPostgres`: fullon's tables, polled every `database.poll_interval` and at once on a NOTIFY
  when `db init --notify` installed triggers; an outage keeps the last catalog and retries with
  backoff.
Each offers `fds()` so the supervisor's select wakes on its input.
"""

from __future__ import annotations

import contextlib
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger

from fullon_ticker_service import catalog as cat
from fullon_ticker_service.backoff import delay
from fullon_ticker_service.config import Settings
from fullon_ticker_service.supervisor.cluster import one_line


class CatalogSource:
    """`read(now)` returns a catalog when one is due (else None); `refresh()` makes one due now."""

    gone = False  # the source can never answer again (the embedding process went away)

    def __init__(self) -> None:
        self.due_at = 0.0

    def refresh(self) -> None:
        self.due_at = 0.0

    def read(self, now: float) -> cat.Catalog | None:
        raise NotImplementedError

    def fds(self) -> list[int]:
        return []

    def readable(self, fd: int) -> None:
        """Input arrived on one of `fds()`."""

    def reload(self, settings: Settings) -> None:
        """New settings after SIGHUP."""

    def close(self) -> None:
        pass


class Fixed(CatalogSource):
    def __init__(self, catalog: cat.Catalog, conn: Connection | None) -> None:
        super().__init__()
        self.catalog = catalog
        self.conn = conn

    def read(self, now: float) -> cat.Catalog | None:
        if now < self.due_at:
            return None
        self.due_at = float("inf")  # until the pipe brings a change
        return self.catalog

    def fds(self) -> list[int]:
        return [self.conn.fileno()] if self.conn is not None else []

    def readable(self, fd: int) -> None:
        try:
            while self.conn is not None and self.conn.poll():
                self.catalog = {k: tuple(v) for k, v in self.conn.recv().items()}
                self.due_at = 0.0
        except (EOFError, OSError):  # the embedding process is gone: stop like on SIGTERM
            self.conn = None
            self.gone = True


class FromConfig(CatalogSource):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def read(self, now: float) -> cat.Catalog | None:
        if now < self.due_at:
            return None
        self.due_at = float("inf")  # until SIGHUP
        return cat.from_config(self.settings)

    def reload(self, settings: Settings) -> None:
        self.settings = settings


class FromPostgres(CatalogSource):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.pg: Any = None
        self.attempt = 0
        self.problems: set[str] = set()
        self.have_one = False
        self.log = logger.bind(component="supervisor")

    def read(self, now: float) -> cat.Catalog | None:
        if now < self.due_at:
            return None
        try:
            if self.pg is None:
                self.pg = cat.connect(self.settings)
                self.pg.execute(f"LISTEN {cat.CHANNEL}")
            catalog, problems = cat.load_pg(self.pg, self.settings)
        except Exception as exc:
            self.attempt += 1
            wait = delay(self.attempt, 1.0, 30.0)
            state = "keeping the last catalog" if self.have_one else "no catalog yet"
            self.log.error(f"catalog from PostgreSQL failed ({one_line(exc)}); {state}; retry in {wait:.1f}s")
            self.close()
            self.due_at = now + wait
            return None
        for p in sorted(set(problems) - self.problems):  # each once, not at every poll
            self.log.error(f"catalog: {p}")
        self.problems = set(problems)
        self.attempt = 0
        self.have_one = True
        self.due_at = now + self.settings.database.poll_interval
        return catalog

    def fds(self) -> list[int]:
        if self.pg is None:
            return []
        try:
            return [self.pg.fileno()]
        except Exception:
            return []

    def readable(self, fd: int) -> None:
        """A NOTIFY (a catalog table changed): read the catalog at the next tick."""
        try:
            for _ in self.pg.notifies(timeout=0, stop_after=1000):
                self.due_at = 0.0
        except Exception as exc:
            self.log.error(f"catalog listener lost ({one_line(exc)})")
            self.close()
            self.due_at = 0.0

    def close(self) -> None:
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.close()
        self.pg = None


def source_for(settings: Settings, fixed: cat.Catalog | None, conn: Connection | None) -> CatalogSource:
    if fixed is not None:
        return Fixed(fixed, conn)
    if settings.database.enabled:
        return FromPostgres(settings)
    return FromConfig(settings)

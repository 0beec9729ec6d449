"""The supervisor's control loop.

A short tick (`TICK` s, woken early by signals and catalog input) does, in order:

    signals -> heartbeat (hosts, lease holders) -> hear the workers -> reap exited workers ->
    kill stops past their deadline -> kill hung workers -> refresh the catalog -> reconcile ->
    publish state

Signal handlers only record the signal; the loop does the work. The exchanges and their workers
are the `Fleet`'s (fleet.py); this module owns the loop, signals, reloads and the state for `ps`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger

from fullon_ticker_service import catalog as cat
from fullon_ticker_service.config import Settings
from fullon_ticker_service.launch import spawn_target
from fullon_ticker_service.policy import RestartPolicy
from fullon_ticker_service.proctitle import set_title
from fullon_ticker_service.supervisor.catalog_source import source_for
from fullon_ticker_service.supervisor.children import Launcher, ProcessLauncher
from fullon_ticker_service.supervisor.cluster import Cluster
from fullon_ticker_service.supervisor.fleet import Fleet
from fullon_ticker_service.supervisor.pidlock import AlreadyRunning, PidLock, reap_orphans
from fullon_ticker_service.supervisor.slot import Slot

TICK = 0.5


class Supervisor:
    def __init__(self, settings: Settings, policy: RestartPolicy | None = None, target: Any = spawn_target,
                 catalog: cat.Catalog | None = None, catalog_conn: Connection | None = None, *,
                 launcher: Launcher | None = None, cluster: Cluster | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.cluster = cluster or Cluster(settings)
        self.fleet = Fleet(settings, launcher or ProcessLauncher(settings.supervisor.start_method, target),
                           self.cluster, clock)
        if policy is not None:
            self.fleet.policy = policy
        self.source = source_for(settings, catalog, catalog_conn)
        self.embedded = catalog is not None  # the embedding API gives the catalog; SIGHUP reloads nothing
        self.clock = clock
        self.lock = PidLock(settings)
        self.log = logger.bind(component="supervisor")
        self.catalog: cat.Catalog | None = None
        self.signals: list[int] = []
        self.stopping = False
        self._wake_r, self._wake_w = os.pipe()

    @property
    def slots(self) -> dict[str, Slot]:
        return self.fleet.slots

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns 0 when every worker stopped cleanly."""
        self.lock.acquire()
        try:
            self.cluster.join()
        except AlreadyRunning:
            self.lock.release()
            raise
        self._install_signals()
        set_title(f"supervisor [{self.settings.service.namespace}]")
        self.log.info(f"supervisor pid {os.getpid()} starting; catalog from "
                      f"{'PostgreSQL' if self.settings.database.enabled and not self.embedded else 'config'}")
        try:
            while not self.step():
                self._sleep(self._next_wait())
        finally:
            self._teardown()
        self.log.info("supervisor stopped")
        return 0 if self.fleet.clean else 1

    def step(self) -> bool:
        """One tick; True once a stop has finished."""
        fleet = self.fleet
        self._dispatch_signals()
        self._heartbeat()
        fleet.hear()
        fleet.reap()
        reap_orphans({s.proc.pid for s in fleet.slots.values() if s.proc is not None})
        fleet.sweep_stops()
        if self.stopping:
            if not fleet.alive():
                return True
        else:
            fleet.check_heartbeats()
            self.refresh_catalog()
            if self.catalog is not None:
                fleet.reconcile(self.catalog)
        self.publish()
        return False

    def _heartbeat(self) -> None:
        names = sorted(set(self.catalog or ()) | set(self.slots))
        if self.cluster.heartbeat(names) is False and not self.stopping:
            self.log.error(f"another supervisor registered as host {self.cluster.host_id!r} (we were paused, cut "
                           f"off, or started while Redis was down); stopping our workers")
            self.fleet.clean = False
            self.begin_stop()

    def refresh_catalog(self) -> None:
        catalog = self.source.read(self.clock())
        if catalog is None:
            return
        if catalog != self.catalog:
            self.log.info(f"catalog: {len(catalog)} exchanges, {sum(len(v) for v in catalog.values())} symbols")
        self.catalog = catalog

    def begin_stop(self) -> None:
        self.log.info(f"stopping {self.fleet.alive()} worker(s)")
        self.stopping = True
        self.fleet.stop_all()

    # --- sleeping -------------------------------------------------------------------------------
    def _next_wait(self) -> float:
        """Sleep one tick, or less when a restart is due sooner (so short backoffs keep their jitter)."""
        return max(0.01, min([TICK, *self.fleet.next_due(self.clock())]))

    def _sleep(self, seconds: float) -> None:
        """While one of our standbys waits for a lease held elsewhere, wake the moment it is released."""
        waiting = self.fleet.waiting_standbys()
        if waiting:
            self.cluster.wait_for_release(waiting, seconds, self._wait)
        else:
            self._wait(seconds)

    def _wait(self, seconds: float) -> bool:
        """Sleep until a signal or catalog input (True when a signal woke us)."""
        fds = [self._wake_r, *self.source.fds()]
        try:
            ready, _, _ = select.select(fds, [], [], seconds)
        except (InterruptedError, OSError, ValueError):
            return False
        for fd in ready:
            if fd != self._wake_r:
                self.source.readable(fd)
        if self._wake_r not in ready:
            return False
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 512)
        return True

    # --- signals --------------------------------------------------------------------------------
    def _install_signals(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def _dispatch_signals(self) -> None:
        if self.source.gone and not self.stopping:
            self.log.error("embedding process is gone; stopping")
            self.begin_stop()
        while self.signals:
            sig = self.signals.pop(0)
            if sig in (signal.SIGTERM, signal.SIGINT):
                if self.stopping:
                    self.log.warning("second stop signal: killing workers now")
                    self.fleet.kill_alive("second stop signal")
                else:
                    self.begin_stop()
            elif sig == signal.SIGHUP:
                self.log.info("SIGHUP: re-reading the configuration and the catalog")
                self.source.refresh()
                if not self.embedded:
                    self._reload_config()

    def _reload_config(self) -> None:
        """Apply a re-read config file: the catalog (when it comes from the file), exchange settings
        and restart policy. Redis, namespace, database and cluster settings (apart from capacity)
        need a restart of the supervisor (said in one line)."""
        from fullon_ticker_service import config

        old = self.settings
        try:
            new = config.load(old.source if old.source.endswith(".toml") else None)
        except config.ConfigError as exc:
            self.log.error(f"SIGHUP: configuration not reloaded, keeping the running one: {exc}")
            return
        fixed = [k for k in ("redis", "database", "service") if getattr(new, k) != getattr(old, k)]
        if dataclasses.replace(new.cluster, capacity=old.cluster.capacity) != old.cluster:
            fixed.append("cluster")  # all but capacity: capacity applies live (it is in our heartbeat)
        if fixed:
            self.log.warning(f"SIGHUP: [{'], ['.join(fixed)}] changed; restart the supervisor to apply them")
        self.settings = dataclasses.replace(new, redis=old.redis, database=old.database, service=old.service,
                                            cluster=dataclasses.replace(old.cluster, capacity=new.cluster.capacity))
        self.cluster.settings = self.settings
        self.source.reload(self.settings)
        self.fleet.reload(old, self.settings)

    # --- state for `tickerctl ps` ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "host": self.cluster.host, "host_id": self.cluster.host_id, "pid": os.getpid(),
            "updated_at": time.time(), "stopping": self.stopping, "capacity": self.settings.cluster.capacity,
            "live_hosts": sorted(self.cluster.live_hosts),
            "unplaced": sorted(e for e, h in self.fleet.desired.items() if h is None),
            "exchanges": self.fleet.state(),
        }

    def publish(self) -> None:
        self.cluster.publish(self.state())

    def _teardown(self) -> None:
        self.fleet.kill_all()
        self.cluster.publish(self.state(), final=True)
        self.fleet.release_all()
        self.cluster.leave()
        self.cluster.close()
        self.source.close()
        self.lock.release()

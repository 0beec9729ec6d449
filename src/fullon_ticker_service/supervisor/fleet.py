"""The exchanges this host supervises and their worker processes: the supervisor's state machine.

Each tick the loop asks the fleet to hear its workers (beats, running, errors), reap the exited
ones (restart policy: backoff or parked), kill stops that outlived `stop_timeout` and loops that
stopped beating, and reconcile with the catalog and the placement: start, hand over, retire.
Decisions that can be pure are (policy.py, placement.py); processes come from a `Launcher` and
Redis from the `Cluster`, so tests drive this with a fake process table and clock.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from fullon_ticker_service import catalog as cat
from fullon_ticker_service import health, lease
from fullon_ticker_service.config import Settings
from fullon_ticker_service.launch import EXIT_FENCED, WorkerSpec
from fullon_ticker_service.placement import place
from fullon_ticker_service.policy import RestartPolicy, RestartState, after_exit
from fullon_ticker_service.supervisor.children import Launcher
from fullon_ticker_service.supervisor.cluster import Cluster
from fullon_ticker_service.supervisor.slot import Slot, Status


class Fleet:
    def __init__(self, settings: Settings, launcher: Launcher, cluster: Cluster, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.policy = policy_of(settings)
        self.launcher = launcher
        self.cluster = cluster
        self.clock = clock
        self.log = logger.bind(component="supervisor")
        self.slots: dict[str, Slot] = {}
        self.desired: dict[str, str | None] = {}  # exchange -> host id (placement.py)
        self.stopping = False  # the whole supervisor stops: every exit is final
        self.clean = True  # every worker stopped by itself (no SIGKILL, exit 0)
        self._handover_logged: set[str] = set()
        self._orphans: list[str] | None = None  # exchanges removed while we were down (None: not looked yet)

    @property
    def host_id(self) -> str:
        return self.cluster.host_id

    @property
    def stop_timeout(self) -> float:
        return self.settings.supervisor.stop_timeout

    def alive(self) -> int:
        return sum(1 for s in self.slots.values() if s.alive)

    def stop_all(self) -> None:
        self.stopping = True
        for slot in self.slots.values():
            self.stop_worker(slot, "supervisor stopping")

    def reload(self, old: Settings, new: Settings) -> None:
        """New settings (SIGHUP): a worker whose connection settings changed is restarted."""
        self.settings, self.policy = new, policy_of(new)
        for name, slot in self.slots.items():
            if _connection(old, name) != _connection(new, name) and slot.alive:
                self.log.info(f"{name}: exchange settings changed; restarting its worker")
                self.stop_worker(slot, "exchange settings changed")

    def next_due(self, now: float) -> list[float]:
        """Seconds until each scheduled restart."""
        return [s.start_at - now for s in self.slots.values() if s.status == Status.BACKOFF and s.proc is None]

    def waiting_standbys(self) -> list[str]:
        """Our standbys placed here whose lease another host still holds."""
        return [s.name for s in self.slots.values()
                if s.status == Status.STANDBY and not s.lease and self.desired.get(s.name) == self.host_id]

    # --- workers ----------------------------------------------------------------------------------
    def spawn_worker(self, slot: Slot) -> None:
        parent = None if getattr(self.launcher, "forks", True) else os.getpid()
        spec = WorkerSpec(slot.name, slot.symbols, self.settings, parent_pid=parent, lease=slot.lease,
                          standby=not slot.lease, host_id=self.host_id)
        slot.proc = self.launcher.spawn(spec, self.clock())
        slot.set(Status.STARTING if slot.lease else Status.STANDBY, "worker started")
        role = f"token {lease.token(slot.lease)}" if slot.lease else "standby: another host still holds the lease"
        self.log.info(f"{slot.name}: started worker pid {slot.proc.pid} ({len(slot.symbols)} symbols, {role})")

    def hear(self) -> None:
        """Read what every worker said over its pipe: beats, the moment it runs, its last error."""
        now = self.clock()
        for slot in self.slots.values():
            proc = slot.proc
            if proc is None:
                continue
            proc.receive(now)
            if proc.reported == health.RUNNING and slot.status in (Status.STARTING, Status.STANDBY):
                slot.set(Status.RUNNING if slot.lease else Status.STANDBY, "the worker runs")
            if proc.error and proc.status not in ("", health.STARTING, health.RUNNING):
                slot.error(proc.error, now)
            elif (slot.last_error and proc.status == health.RUNNING and not proc.error
                  and now - slot.error_at >= 10 * self.settings.service.health_interval):
                slot.last_error = ""  # running cleanly for a while: the old error no longer says anything

    def reap(self) -> None:
        now = self.clock()
        for slot in self.slots.values():
            proc = slot.proc
            if proc is None or proc.alive():
                continue
            code = proc.reap()
            slot.proc = None
            if code == EXIT_FENCED:  # another worker holds the lease: re-evaluate now, no backoff
                slot.lease = ""
                slot.error("lease lost to another writer; its writes were refused", now)
                slot.set(Status.IDLE, "fenced")
                self.log.warning(f"{slot.name}: worker exited: {slot.last_error}")
                continue
            if slot.status == Status.STOPPING or self.stopping:
                self._release(slot)  # the worker released it after its final flush; this covers a kill
                slot.set(Status.STOPPED, f"exit {code}")
                if code not in (0, None):
                    self.clean = False
                self.log.info(f"{slot.name}: worker exited ({code})")
                continue
            slot.error(proc.error or _exit_reason(code), now)
            decision = after_exit(slot.restart, self.policy, code, now - proc.started_at, now)
            slot.set(Status(decision.status), decision.reason)
            if decision.start_at is not None:
                slot.start_at = decision.start_at
            if decision.status == Status.FAILED:
                self.log.error(f"{slot.name}: parked as failed: {decision.reason}; last error: {slot.last_error}")
            else:
                self.log.warning(f"{slot.name}: {decision.reason}")

    def sweep_stops(self) -> None:
        """Every worker asked to stop (by a stop, a reload, placement, the catalog) gets `stop_timeout`
        to go; then SIGKILL."""
        now = self.clock()
        for slot in self.slots.values():
            if slot.proc is not None and slot.proc.overdue(now, self.stop_timeout):
                self.log.error(f"{slot.name}: did not stop within {self.stop_timeout:g}s; SIGKILL")
                if self.stopping:
                    self.clean = False
                slot.proc.kill(now)

    def kill_alive(self, why: str) -> None:
        now = self.clock()
        for slot in self.slots.values():
            if slot.alive:
                self.log.error(f"{slot.name}: SIGKILL ({why})")
                self.clean = False
                slot.proc.kill(now)  # type: ignore[union-attr]

    def check_heartbeats(self) -> None:
        """Kill a worker whose event loop stopped beating over its pipe (hung loop)."""
        now = self.clock()
        for slot in self.slots.values():
            proc = slot.proc
            if proc is None or slot.status == Status.STOPPING or not proc.alive():
                continue
            if proc.last_beat is None:
                age, limit = now - proc.started_at, self.policy.start_grace
            else:
                age, limit = now - proc.last_beat, self.policy.heartbeat_timeout
            if age > limit:
                slot.error(f"no heartbeat for {age:.0f}s; killed", now)
                self.log.error(f"{slot.name}: {slot.last_error}")
                proc.kill(now)

    def stop_worker(self, slot: Slot, why: str) -> None:
        if slot.alive:
            slot.set(Status.STOPPING, why)
            slot.proc.terminate(self.clock())  # type: ignore[union-attr]
        elif slot.status in (Status.BACKOFF, Status.STARTING):
            slot.set(Status.STOPPED, why)

    def _release(self, slot: Slot) -> None:
        self.cluster.release(slot.name, slot.lease)
        slot.lease = ""

    # --- catalog and placement ------------------------------------------------------------------
    def reconcile(self, catalog: cat.Catalog) -> None:
        """Make what runs here match the catalog and the placement."""
        if self.cluster.ok:
            self.desired = place(catalog, self.cluster.capacities(), self.cluster.holders())
        for name, symbols in catalog.items():
            mine = self.desired.get(name) == self.host_id
            slot = self.slots.get(name)
            if slot is None:
                if not mine:
                    continue
                slot = self.slots[name] = Slot(name, symbols)
            self._apply_symbols(slot, symbols)
            if slot.alive:
                if slot.status != Status.STOPPING:
                    self._steer(slot, mine)
            elif not mine:  # placed on another host: hand the lease back, forget the slot
                self._release(slot)
                del self.slots[name]
            else:
                self._start_if_due(slot)
        for name, slot in list(self.slots.items()):
            if name not in catalog:
                self._retire(slot)
        self._forget_orphans(catalog)

    def _forget_orphans(self, catalog: cat.Catalog) -> None:
        """Once per start: an exchange that left the catalog while no supervisor ran still has its
        prices in Redis, none written for `symbol_stale_after`; delete them like a removal while
        running (`_retire`). Retried each tick while another holder keeps its lease or Redis cannot
        answer."""
        if self._orphans is None and self.cluster.ok:
            self._orphans = self.cluster.orphans(
                catalog, lambda name: time.time() - self.settings.exchange(name).symbol_stale_after)
        if self._orphans:
            self._orphans = [name for name in self._orphans
                             if name not in catalog and name not in self.slots and not self.cluster.forget(name, ())]

    def _apply_symbols(self, slot: Slot, symbols: tuple[str, ...]) -> None:
        if symbols == slot.symbols:
            return
        slot.symbols = symbols
        if slot.alive:
            slot.proc.send({"symbols": list(symbols)})  # type: ignore[union-attr]
            self.log.info(f"{slot.name}: sent {len(symbols)} symbols to the worker")
        elif slot.status == Status.FAILED:  # a changed catalog may fix it: try again now
            slot.start_at, slot.restart = self.clock(), RestartState()
            slot.set(Status.BACKOFF, "catalog changed")

    def _start_if_due(self, slot: Slot) -> None:
        if slot.status == Status.FAILED or (slot.status == Status.BACKOFF and self.clock() < slot.start_at):
            return
        if not self.cluster.ok and not slot.lease:
            return  # cannot tell who holds the lease while Redis is unreachable
        if not slot.lease:
            slot.lease = self.cluster.acquire(slot.name, slot.lease)
        if slot.status in (Status.BACKOFF, Status.STOPPED):
            slot.restarts += 1
        self.spawn_worker(slot)

    def _steer(self, slot: Slot, mine: bool) -> None:
        """A live worker: pass a standby the lease when it frees up; stop a standby no longer wanted;
        hand an owned exchange placed elsewhere over once the new host's standby is armed."""
        if not slot.lease:
            if not mine:
                self.log.info(f"{slot.name}: placed on {self.desired.get(slot.name)}; stopping our standby")
                self.stop_worker(slot, "placed elsewhere")
            elif value := self.cluster.acquire(slot.name, slot.lease):
                slot.lease = value
                slot.proc.send({"lease": value})  # type: ignore[union-attr]
                slot.set(Status.STARTING, "lease passed to our standby")
            return
        target = self.desired.get(slot.name)
        if mine or target is None:
            self._handover_logged.discard(slot.name)
        elif self.cluster.armed(slot.name, target):
            self.log.info(f"{slot.name}: handing over to host {target} (its standby is armed)")
            self._handover_logged.discard(slot.name)
            self.stop_worker(slot, f"handed over to {target}")
        elif slot.name not in self._handover_logged:
            self._handover_logged.add(slot.name)
            self.log.info(f"{slot.name}: placed on host {target}; collecting until its standby is armed")

    def _retire(self, slot: Slot) -> None:
        """The exchange left the catalog (removed or deactivated): stop its worker, delete its
        prices from Redis, forget it. (A plain stop of the service keeps them: a restart must not
        blank the cache.)"""
        if slot.alive:
            if slot.status != Status.STOPPING:
                self.log.info(f"{slot.name}: no longer active; stopping its worker")
                self.stop_worker(slot, "left the catalog")
            return
        self._release(slot)
        if self.cluster.forget(slot.name, slot.symbols):
            del self.slots[slot.name]

    # --- state for `tickerctl ps` and the end ---------------------------------------------------
    def state(self) -> dict[str, Any]:
        now = self.clock()
        return {
            s.name: {"status": str(s.status), "pid": s.proc.pid if s.proc is not None else None,
                     "restarts": s.restarts, "symbols": len(s.symbols), "last_error": s.last_error,
                     "last_error_at": round(time.time() - (now - s.error_at), 3) if s.last_error else None,
                     "host_id": self.host_id, "token": lease.token(s.lease) if s.lease else None,
                     "next_start_in": round(max(0.0, s.start_at - now), 2) if s.status == Status.BACKOFF else None}
            for s in self.slots.values()
        }

    def kill_all(self) -> None:
        now = self.clock()
        for slot in self.slots.values():
            if slot.alive:
                slot.proc.kill(now)  # type: ignore[union-attr]
                slot.proc.join(5)  # type: ignore[union-attr]

    def release_all(self) -> None:
        for slot in self.slots.values():
            self._release(slot)


def policy_of(settings: Settings) -> RestartPolicy:
    sv = settings.supervisor
    return RestartPolicy(sv.restart_base, sv.restart_cap, sv.stable_after, sv.max_crashes, sv.crash_window,
                         sv.heartbeat_timeout, sv.start_grace)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"worker killed by signal {signal.Signals(-code).name}"
    return f"worker exited with code {code}"


def _connection(settings: Settings, name: str) -> Any:
    """An exchange's settings apart from its symbols (those are applied live, without a restart)."""
    return dataclasses.replace(settings.exchange(name), symbols=())

"""One exchange under supervision: its symbols, its worker, its lease, and one status word.

Every status change goes through `Slot.set`, the one place that logs it (with the reason), so a
slot's history reads from the log without hunting for assignments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from loguru import logger

from fullon_ticker_service.policy import RestartState
from fullon_ticker_service.supervisor.children import Child


class Status(StrEnum):
    IDLE = "idle"  # known, no worker yet
    STARTING = "starting"  # worker started with the lease, not collecting yet
    STANDBY = "standby"  # worker connected without the lease (another host still holds it)
    RUNNING = "running"  # worker collecting under our lease
    BACKOFF = "backoff"  # crashed; restart scheduled at `start_at`
    STOPPING = "stopping"  # asked to stop; killed when `stop_timeout` passes
    STOPPED = "stopped"
    FAILED = "failed"  # parked: restarting cannot help (config error, crash loop)


@dataclass
class Slot:
    name: str
    symbols: tuple[str, ...]
    status: Status = Status.IDLE
    proc: Child | None = None
    start_at: float = 0.0  # monotonic time of the next (re)start
    restarts: int = 0
    restart: RestartState = field(default_factory=RestartState)
    last_error: str = ""
    error_at: float = 0.0  # monotonic time of last_error
    lease: str = ""  # the lease value our worker writes under; '' = none (a standby, or not ours)

    def set(self, status: Status, why: str = "") -> None:
        if status != self.status:
            logger.bind(component="supervisor").debug(
                f"{self.name}: {self.status} -> {status}{f' ({why})' if why else ''}")
            self.status = status

    def error(self, message: str, now: float) -> None:
        self.last_error, self.error_at = message, now

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

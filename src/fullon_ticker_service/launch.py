"""The supervisor <-> worker contract: what a worker is started with and what its exit code means.

Kept apart from `worker.py` so the supervisor, `tickerctl` and the embedding API never import
ccxt (~110 MB) just to start a worker: only the worker process itself loads the data path.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection

from fullon_ticker_service.config import Settings

EXIT_OK = 0
EXIT_CRASH = 1  # unexpected exception: restart with backoff
EXIT_CONFIG = 3  # unknown exchange id, no valid symbol, bad config: do not restart
EXIT_PARENT_GONE = 4  # the supervisor died; we stopped on our own
EXIT_FENCED = 5  # Redis refused our writes: another worker holds the exchange's lease now


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs; picklable for the supervisor's spawn/forkserver."""

    exchange: str  # catalog name (also the Redis key component)
    symbols: tuple[str, ...]
    settings: Settings
    parent_pid: int | None = None  # exit when this process is gone (spawn: our parent is the supervisor)
    lease: str = ""  # the exchange's lease (lease.py) acquired for us
    standby: bool = False  # no lease yet: hold ticks until the supervisor sends one (without a
    # supervisor, a worker given neither takes the lease itself)
    host_id: str = ""  # the host the lease was taken for


def spawn_target(spec: WorkerSpec, control: Connection | None = None) -> None:
    """multiprocessing target: run the worker and exit with its code."""
    from fullon_ticker_service.worker import run_process

    sys.exit(run_process(spec, control))

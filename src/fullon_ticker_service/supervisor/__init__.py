"""The supervisor: one worker process per exchange this host owns, kept matching the catalog.

    loop.py            Supervisor: the control loop, signals, reloads, the state for `ps`
    fleet.py           the state machine: the exchanges here and their workers (start, reap, stop, hand over)
    slot.py            one exchange under supervision and its status word (one place changes it)
    children.py        worker processes: start, pipe, terminate, kill, reap (the only os.kill)
    cluster.py         this host among the others through Redis: membership, leases, state for `ps`
    catalog_source.py  the catalog from the config file, PostgreSQL (+NOTIFY) or the embedding API
    pidlock.py         one supervisor per namespace and host: lock, pidfile; PID 1 orphan reaping
"""

from fullon_ticker_service.supervisor.loop import Supervisor
from fullon_ticker_service.supervisor.pidlock import AlreadyRunning

__all__ = ["AlreadyRunning", "Supervisor"]

"""Worker processes as the supervisor sees them: start, talk, stop, kill, reap.

`WorkerProcess` owns one child and its duplex pipe: symbol sets and the lease go out; the
worker's status, last error and beats come back (link.py on the worker's side). It is the only
code that signals a worker, and it remembers when a stop was asked for, so one deadline sweep
(`overdue`) escalates every stuck stop to SIGKILL, whoever asked for it.

`Launcher` is the only code that knows how a child starts: from a fork server with ccxt
preloaded, or `spawn` (see `worker_context`). Tests pass their own launcher and process objects.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from typing import Any, Protocol

from fullon_ticker_service.launch import WorkerSpec, spawn_target


class Child(Protocol):
    """What the supervisor needs of a worker process (a fake in the state machine's unit tests)."""

    pid: int
    started_at: float  # monotonic
    stopping_since: float | None  # monotonic time a stop was asked for
    last_beat: float | None  # monotonic time of the last message from the worker
    reported: str  # the phase the worker last reported: starting, running... ("" = nothing yet)
    status: str  # its judged status (running, degraded, redis-error...)
    error: str  # the worker's last reported error

    def alive(self) -> bool: ...
    def terminate(self, now: float) -> None: ...
    def overdue(self, now: float, timeout: float) -> bool: ...
    def kill(self, now: float) -> None: ...
    def send(self, message: dict[str, Any]) -> None: ...
    def receive(self, now: float) -> None: ...
    def fileno(self) -> int | None: ...
    def reap(self) -> int | None: ...
    def join(self, timeout: float) -> None: ...


class Launcher(Protocol):
    def spawn(self, spec: WorkerSpec, now: float) -> Child: ...


def worker_context(method: str) -> Any:
    """The multiprocessing context workers start from; both give a fresh interpreter state.

    `spawn` execs a new interpreter per worker (each imports ccxt itself, ~110 MB private).
    `forkserver` execs one server that imports ccxt.pro once (`preload.py`, heap frozen) and forks
    each worker from it, so the imported modules' pages are shared copy-on-write between workers.
    Neither inherits the supervisor's sockets, database connections or event loop.
    """
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["fullon_ticker_service.preload"])
    return ctx


class WorkerProcess:
    def __init__(self, proc: Any, conn: Any, now: float) -> None:
        self.proc = proc
        self.conn = conn
        self.pid: int = proc.pid
        self.started_at = now
        self.stopping_since: float | None = None
        self.killed_at: float | None = None
        self.eof = False
        self.last_beat: float | None = None
        self.reported = ""
        self.status = ""
        self.error = ""

    def alive(self) -> bool:
        return bool(self.proc.is_alive())

    def terminate(self, now: float) -> None:
        """Ask for a graceful stop (SIGTERM); `overdue` tells when to stop asking."""
        if self.stopping_since is None:
            self.stopping_since = now
        self._signal(signal.SIGTERM)

    def overdue(self, now: float, timeout: float) -> bool:
        """Asked to stop more than `timeout` ago and still alive (and not SIGKILLed in the last 5 s)."""
        return (self.stopping_since is not None and now - self.stopping_since > timeout
                and (self.killed_at is None or now - self.killed_at > 5.0) and self.alive())

    def kill(self, now: float) -> None:
        self.killed_at = now
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(message)

    def receive(self, now: float) -> None:
        """Take every message the worker sent: each one is a beat with its status and last error."""
        try:
            while self.conn is not None and self.conn.poll():
                msg = self.conn.recv()
                if isinstance(msg, dict):
                    self.last_beat = now
                    self.reported = str(msg.get("phase") or self.reported)
                    self.status = str(msg.get("status") or self.status)
                    self.error = str(msg.get("error") or "")
        except (EOFError, OSError, ValueError):
            pass  # the worker is gone or going: `reap` tells

    def fileno(self) -> int | None:
        try:
            return self.conn.fileno() if self.conn is not None else None
        except (OSError, ValueError):
            return None

    def reap(self) -> int | None:
        """Collect the exit status of a dead worker (read its last words first); frees the pipe."""
        self.receive(self.last_beat or self.started_at)
        self.proc.join(0)
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        return self.proc.exitcode

    def join(self, timeout: float) -> None:
        self.proc.join(timeout)


class ProcessLauncher:
    """Starts real worker processes (`target` is replaceable for tests that need a real child)."""

    def __init__(self, start_method: str, target: Any = spawn_target) -> None:
        self.ctx = worker_context(start_method)
        self.target = target

    def spawn(self, spec: WorkerSpec, now: float) -> WorkerProcess:
        ours, theirs = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=self.target, args=(spec, theirs), name=f"tick-{spec.exchange}", daemon=False)
        proc.start()
        theirs.close()
        return WorkerProcess(proc, ours, now)

    @property
    def forks(self) -> bool:
        """A forked worker's parent is the fork server, not us: it watches its pipe's EOF instead."""
        return self.ctx.get_start_method() != "spawn"

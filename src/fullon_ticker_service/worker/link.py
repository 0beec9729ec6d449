"""The worker's end of its supervisor's pipe.

In: symbol sets (`{"symbols": [...]}`) and the lease once the supervisor acquired it for our
standby (`{"lease": value}`). EOF means the supervisor is gone. Out: our phase (starting, running,
stopping...), judged status and last error, sent when they change and every `BEAT` seconds from
this event loop, so the supervisor sees a wedged loop (no beats), the moment we run, and why we
failed, without reading Redis.

A worker started by `spawn` also watches its parent pid (a forked worker's parent is the fork
server, so it relies on the pipe's EOF alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

BEAT = 1.0  # seconds between status messages while nothing changes


class Link:
    def __init__(self, conn: Connection | None, parent_pid: int | None,
                 state: Callable[[], tuple[str, str, str]]) -> None:
        self.conn = conn
        self.parent_pid = parent_pid
        self.state = state  # -> (phase, status, last error), sent to the supervisor
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()  # None: the supervisor is gone
        self._sent: tuple[str, str, str] | None = None

    def start(self) -> list[asyncio.Task[None]]:
        """Begin listening; returns the link's background tasks (owned by the worker)."""
        tasks = []
        if self.parent_pid:
            tasks.append(asyncio.create_task(self._watch_parent(), name="parent"))
        if self.conn is not None:
            asyncio.get_running_loop().add_reader(self.conn.fileno(), self._readable)
            tasks.append(asyncio.create_task(self._beat(), name="beat"))
        return tasks

    def tell(self, force: bool = False) -> None:
        """Send our status and last error if they changed (or `force`). Never blocks the loop: a
        message that does not fit the pipe now is dropped (the next beat repeats the state)."""
        if self.conn is None:
            return
        state = self.state()
        if state == self._sent and not force:
            return
        try:
            _, writable, _ = select.select([], [self.conn.fileno()], [], 0)
            if writable:
                self.conn.send({"phase": state[0], "status": state[1], "error": state[2]})
                self._sent = state
        except (OSError, ValueError):
            pass  # the supervisor is gone: its EOF reaches us through `_readable`

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.conn.fileno())

    def _readable(self) -> None:
        assert self.conn is not None
        try:
            while self.conn.poll():
                msg = self.conn.recv()
                if isinstance(msg, dict):
                    self.inbox.put_nowait(msg)
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self.inbox.put_nowait(None)

    async def _beat(self) -> None:
        while True:
            self.tell(force=True)
            await asyncio.sleep(BEAT)

    async def _watch_parent(self) -> None:
        while os.getppid() == self.parent_pid:  # noqa: ASYNC110 - polling the OS, not a local flag
            await asyncio.sleep(0.25)
        self.inbox.put_nowait(None)

"""A loopback TCP proxy that can partition its clients from the server, like a network would.

While partitioned the proxy keeps every connection open but forwards nothing: bytes already sent
wait in the proxy (and, once it stops reading, in the kernel), then arrive late when the
partition heals, as TCP retransmission delivers them after a real one. New connections are
accepted and held the same way. This is the case fencing exists for: a write sent before the
partition, delivered after another host took the exchange over.
"""

from __future__ import annotations

import asyncio
import contextlib


class PartitionProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.upstream_port = host, upstream_port
        self.port = 0
        self.connected = asyncio.Event()  # cleared while partitioned
        self.connected.set()
        self.held_bytes = 0  # bytes that waited out a partition
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> PartitionProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for w in self._writers:
            w.close()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def partition(self) -> None:
        self.connected.clear()

    def heal(self) -> None:
        self.connected.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.connected.wait()  # a connect during the partition hangs, as SYNs would
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                if not self.connected.is_set():
                    self.held_bytes += len(data)
                    await self.connected.wait()
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError):
            dst.close()

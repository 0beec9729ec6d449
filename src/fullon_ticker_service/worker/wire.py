"""The writer's own Redis connection: its script calls go onto the socket as bytes, and hiredis
parses the replies.

Why: through redis-py's client one EVALSHA cost the worker about 66 µs of CPU: each argument is
encoded in Python, the connection is checked out of the pool and released, the write is wrapped in
`wait_for`, the read in a timeout, and event hooks fire. At 1 k ticks/s almost every tick is its own
flush, so that was the largest part of the worker's CPU (docs/benchmarks.md). Here a call is
`hiredis.pack_command`, one write and one read.

The connection itself is redis-py's. The client's pool makes it (`make_connection`) and redis-py
connects it, so the address, TLS, AUTH, database and Sentinel's current master are exactly the
client's. Only the commands' bytes and their replies bypass redis-py.

Calls may overlap (the writer keeps two flushes in flight): each call writes its commands at once,
then reads its replies after those of every call that wrote before it. Redis answers one
connection's commands in the order they arrived, so the order of reading is the order of writing.

Failures raise redis-py's exceptions, and error replies go through redis-py's own error parser, so
`error_kind` and the writer's retry see what they saw before. After a failure that leaves the
stream in an unknown state (timeout, connection lost, cancelled mid-call), and after READONLY (a
demoted master), the connection is dropped; the next call makes a new one. A call queued behind
one that dropped the connection fails too (its replies went with the connection): a connection
error, so the writer retries it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis import __version__ as redis_version
from redis._parsers import BaseParser
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

READ_CHUNK = 1 << 16
DRAIN_ABOVE = 1 << 20  # bytes queued in the socket's buffer before a write waits for it to drain
PING = hiredis.pack_command(("PING",))


class Dropped(RedisConnectionError):
    """An earlier call on the connection failed (or was cancelled) and dropped it: this call's replies
    went with it. Its own failure was that earlier call's, already reported by it."""


class Wire:
    """One connection; overlapping calls get their replies in the order they were sent."""

    def __init__(self, redis: Redis) -> None:
        self.pool = redis.connection_pool
        self.timeout: float | None = self.pool.connection_kwargs.get("socket_timeout")
        self._conn: Any = None  # a connected redis-py Connection, or None
        self._parser: Any = None
        self._connecting: asyncio.Task[Any] | None = None  # overlapping first calls share one connect
        self._reading = asyncio.Lock()  # fair (FIFO): taken in the order the calls wrote
        self._sent = 0  # calls written on the current connection
        self._read = 0  # calls whose replies were read from it
        self.ping_allowed = True  # False once the server answered NOPERM to a PING (an ACL without it)

    async def call(self, commands: list[tuple[Any, ...]], ping_first: bool = False) -> list[Any]:
        """Send `commands` in one write and return their replies, in order (one round trip).
        `ping_first`: a PING goes ahead of them in the same write (its reply is not returned; an ACL
        that refuses it turns it off for good, the commands' own replies are unaffected)."""
        conn = self._conn
        if conn is None:
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
                self._connecting.add_done_callback(self._connected)
            conn = await asyncio.shield(self._connecting)  # a failed connect fails every call waiting on it
        lead = ping_first and self.ping_allowed
        if len(commands) == 1 and not lead:
            data = hiredis.pack_command(commands[0])
        else:
            data = (PING if lead else b"") + b"".join(hiredis.pack_command(c) for c in commands)
        parser = self._parser
        replies: list[Any] = []
        try:
            # no await between the write and the queueing for the read lock: read order = write order
            writer = conn._writer
            writer.write(data)
            if conn is self._conn:
                turn, self._sent = self._sent, self._sent + 1
            else:  # dropped while we connected: the check below fails us
                turn = -1
            async with asyncio.timeout(self.timeout), self._reading:
                if conn is not self._conn:  # a call before us dropped it: our replies are gone with it
                    raise Dropped(f"Connection to {self._where(conn)} was dropped by an earlier call")
                if turn != self._read:  # a call before us never read its replies: out of step
                    raise Dropped(f"Connection to {self._where(conn)} is out of step (call {turn}, "
                                  f"replies of call {self._read} next)")
                if writer.transport.get_write_buffer_size() > DRAIN_ABOVE:
                    await writer.drain()
                reader = conn._reader
                while len(replies) < len(commands) + lead:
                    reply = parser.gets()
                    if reply is False:
                        chunk = await reader.read(READ_CHUNK)
                        if not chunk:
                            raise RedisConnectionError("Connection closed by server.")
                        parser.feed(chunk)
                    else:
                        replies.append(reply)
                self._read += 1
        except BaseException as exc:
            await self._drop(conn)
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError(f"Timeout reading from {self._where(conn)}") from exc
            if isinstance(exc, OSError | AttributeError):  # AttributeError: the stream went away
                raise RedisConnectionError(f"Error while talking to {self._where(conn)}: {exc}") from exc
            raise
        if lead and isinstance(ping := replies.pop(0), hiredis.ReplyError) and str(ping).startswith("NOPERM"):
            self.ping_allowed = False
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                error = BaseParser.parse_error(str(reply))
                if isinstance(error, ReadOnlyError):
                    await self._drop(conn)  # a replica now: the next connection asks for the master again
                raise error
        return replies

    async def _connect(self) -> Any:
        conn = self.pool.make_connection()
        try:
            await conn.connect()
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        if not isinstance(getattr(conn, "_reader", None), asyncio.StreamReader) or \
                not isinstance(getattr(conn, "_writer", None), asyncio.StreamWriter):
            await conn.disconnect(nowait=True)  # a redis-py whose connections no longer hold asyncio streams
            raise RuntimeError(f"redis-py {redis_version} is not supported by the writer's connection (wire.py): "
                               "its connections have no asyncio streams; install redis>=5,<9")
        self._conn, self._parser, self._sent, self._read = conn, hiredis.Reader(), 0, 0
        return conn

    def _connected(self, task: asyncio.Task[Any]) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here too: every caller may have been cancelled meanwhile

    async def close(self) -> None:
        await self._drop(self._conn)

    async def _drop(self, conn: Any) -> None:
        """Close `conn` if it is still the current connection (a newer one is left alone)."""
        if conn is None or conn is not self._conn:
            return
        self._conn, self._parser = None, None
        try:
            await conn.disconnect(nowait=True)
        except Exception:  # closing a broken connection: nothing left to save
            pass

    @staticmethod
    def _where(conn: Any) -> str:
        host, port = getattr(conn, "host", None), getattr(conn, "port", None)
        return f"{host}:{port}" if host else "redis"

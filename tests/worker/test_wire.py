"""The writer's own connection (wire.py) against real redis-servers of the test's own: replies in
order, redis-py's error classes, and a connection that is never left out of step with its replies
(timeout, cancellation, a server killed, a demoted master), plain and over TLS.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fullon_ticker_service.redis_client import error_kind
from fullon_ticker_service.worker.wire import Dropped, Wire
from tests.servers import RedisServer, free_port


@pytest.fixture
async def wired(private_redis):
    r = Redis.from_url(private_redis.url, socket_timeout=0.5)
    wire = Wire(r)
    yield wire, r, private_redis
    await wire.close()
    await r.aclose()


async def test_commands_of_one_call_come_back_in_order(wired):
    wire, r, _ = wired
    replies = await wire.call([("SET", "k", "v"), ("GET", "k"), ("RPUSH", "l", 1, 2.5, b"x"), ("LRANGE", "l", 0, -1)])
    assert replies == [b"OK", b"v", 3, [b"1", b"2.5", b"x"]]
    assert await wire.call([("ECHO", "one")]) == [b"one"]
    clients = await r.client_list()
    assert sum(1 for c in clients if c["cmd"] in ("echo", "lrange")) == 1  # one connection did it all


async def test_error_replies_raise_redis_py_classes_and_keep_the_connection(wired):
    wire, _, _ = wired
    with pytest.raises(NoScriptError):
        await wire.call([("EVALSHA", "0" * 40, 0)])
    with pytest.raises(OutOfMemoryError) as exc:
        await wire.call([("EVAL", "return redis.error_reply('OOM command not allowed')", 0)])
    assert error_kind(exc.value) == "OOM"
    conn = wire._conn
    assert conn is not None and await wire.call([("PING",)]) == [b"PONG"] and wire._conn is conn


async def test_a_timeout_drops_the_connection_and_the_next_call_is_in_step(wired):
    """CLIENT PAUSE holds our reply past socket_timeout: a redis-py TimeoutError. The late reply must
    never be read as the answer to the next call."""
    wire, r, _ = wired
    await wire.call([("PING",)])
    await r.execute_command("CLIENT", "PAUSE", 1200, "ALL")
    with pytest.raises(RedisTimeoutError) as exc:
        await wire.call([("ECHO", "late")])
    assert error_kind(exc.value) == "timeout" and wire._conn is None
    await asyncio.sleep(0.9)  # the pause ends
    assert await wire.call([("ECHO", "next")]) == [b"next"]


async def test_a_call_cancelled_mid_flight_leaves_no_stale_reply(wired):
    wire, r, _ = wired
    await wire.call([("PING",)])
    await r.execute_command("CLIENT", "PAUSE", 300, "ALL")
    task = asyncio.create_task(wire.call([("ECHO", "cancelled")]))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wire._conn is None
    await asyncio.sleep(0.3)
    assert await wire.call([("ECHO", "after")]) == [b"after"]


async def test_a_killed_server_is_a_connection_error_then_a_restarted_one_works(wired):
    wire, _, server = wired
    await wire.call([("PING",)])
    server.kill()
    with pytest.raises(RedisConnectionError) as exc:
        await wire.call([("PING",)])
    assert error_kind(exc.value) == "connection"
    with pytest.raises(RedisConnectionError):
        await wire.call([("PING",)])  # still down: connecting fails, as redis-py's would
    server.start()
    assert await wire.call([("SET", "back", 1), ("GET", "back")]) == [b"OK", b"1"]


async def test_readonly_drops_the_connection(private_redis):
    replica = RedisServer(extra=["--replicaof", "127.0.0.1", str(private_redis.port)]).start()
    r = Redis.from_url(replica.url, socket_timeout=1)
    wire = Wire(r)
    try:
        with pytest.raises(ReadOnlyError) as exc:
            await wire.call([("EVAL", "return redis.call('SET', 'k', 'v')", 0)])
        assert error_kind(exc.value) == "READONLY"
        assert wire._conn is None  # the next call connects afresh (with Sentinel: to the new master)
    finally:
        await wire.close()
        await r.aclose()
        replica.stop()


def _certificate(where: Path) -> tuple[Path, Path]:
    cert, key = where / "redis.crt", where / "redis.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def tls_redis(tmp_path):
    """A redis-server speaking TLS only on its TLS port, with a password; -> (port, CA file)."""
    cert, key = _certificate(tmp_path)
    tls_port = free_port()
    server = RedisServer(extra=["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                                "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                                "--requirepass", "s3cret"])
    server.proc = subprocess.Popen(server.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield tls_port, cert  # RedisServer.start's probe knows no password: the test waits, over TLS
    server.stop()


async def test_tls_auth_and_database_come_from_the_client(tls_redis):
    """rediss:// with a CA file, a password and database 3: the wire's connection is redis-py's, so
    it speaks TLS, authenticates and selects the database exactly as the client does."""
    port, cert = tls_redis
    url = f"rediss://:s3cret@127.0.0.1:{port}/3?ssl_ca_certs={cert}"
    r = Redis.from_url(url, socket_timeout=2)
    for _ in range(100):
        try:
            await r.ping()
            break
        except (RedisConnectionError, OSError):
            await asyncio.sleep(0.05)
    wire = Wire(r)
    try:
        assert await wire.call([("SET", "tls", "yes")]) == [b"OK"]
        info = (await wire.call([("CLIENT", "INFO")]))[0].decode()
        assert " db=3 " in info
        assert await r.get("tls") == b"yes"  # the same database as the client's
        wrong = Redis.from_url(url.replace("s3cret", "wrong"), socket_timeout=2)
        with pytest.raises(Exception) as exc:
            await Wire(wrong).call([("PING",)])
        assert error_kind(exc.value) == "NOAUTH"
        await wrong.aclose()
    finally:
        await wire.close()
        await r.aclose()


async def test_a_redis_py_without_asyncio_streams_is_one_clear_error(private_redis, monkeypatch):
    """The wire reads redis-py's connection streams; a redis-py that changed them must say so, not
    look like a connection outage forever. (The one fake here: no such redis-py exists to install.)"""
    r = Redis.from_url(private_redis.url)
    pool = r.connection_pool
    real = pool.make_connection

    def make_connection():
        conn = real()
        original = conn.connect

        async def connect():
            await original()
            conn._writer.close()  # as if a future redis-py kept its socket elsewhere
            conn._reader = conn._writer = None

        conn.connect = connect
        return conn

    monkeypatch.setattr(pool, "make_connection", make_connection)
    wire = Wire(r)
    with pytest.raises(RuntimeError, match="is not supported by the writer's connection"):
        await wire.call([("PING",)])
    await r.aclose()


async def test_overlapping_calls_each_get_their_own_replies_on_one_connection(wired):
    """The writer keeps two flushes in flight: calls that overlap must read their replies in the
    order they wrote, and the first overlapping calls must make one connection, not several."""
    wire, r, _ = wired

    async def call(i: int) -> list:
        return await wire.call([("ECHO", f"a{i}"), ("INCRBY", "n", i), ("ECHO", f"b{i}")])

    for _ in range(20):
        replies = await asyncio.gather(*(call(i) for i in range(8)))
        for i, (a, _n, b) in enumerate(replies):
            assert (a, b) == (f"a{i}".encode(), f"b{i}".encode())
    assert int(await r.get("n")) == 20 * sum(range(8))
    clients = await r.client_list()
    assert sum(1 for c in clients if c["cmd"] in ("echo", "incrby")) == 1


async def test_a_call_queued_behind_a_timeout_fails_and_the_next_call_is_in_step(wired):
    """The first call times out and drops the connection; the one queued behind it lost its replies
    with it: a connection error (retried by the writer), never the other call's answer."""
    wire, r, _ = wired
    await wire.call([("PING",)])
    await r.execute_command("CLIENT", "PAUSE", 1200, "ALL")
    first = asyncio.create_task(wire.call([("ECHO", "first")]))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(wire.call([("ECHO", "second")]))
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(results[0], RedisTimeoutError)
    assert isinstance(results[1], Dropped), results[1]  # the first call's failure, not one of its own
    assert error_kind(results[1]) == "connection" and wire._conn is None
    await asyncio.sleep(1.0)  # the pause ends
    assert await wire.call([("ECHO", "next")]) == [b"next"]


async def test_cancelling_a_queued_call_fails_the_one_reading_and_leaves_no_stale_reply(wired):
    wire, r, _ = wired
    await wire.call([("PING",)])
    await r.execute_command("CLIENT", "PAUSE", 300, "ALL")
    reading = asyncio.create_task(wire.call([("ECHO", "reading")]))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(wire.call([("ECHO", "queued")]))
    await asyncio.sleep(0.05)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(RedisConnectionError):  # its stream was closed under it: retried by the writer
        await reading
    await asyncio.sleep(0.3)
    assert await wire.call([("ECHO", "after")]) == [b"after"]


async def test_overlapping_calls_share_one_connect_and_its_failure(wired):
    """Redis down: calls that overlap while connecting wait on one connect and fail with its error,
    not one connect timeout after another."""
    wire, _, server = wired
    server.kill()
    results = await asyncio.gather(*(wire.call([("PING",)]) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(x, RedisConnectionError) for x in results), results
    assert results[0] is results[1] is results[2]
    server.start()
    assert await wire.call([("PING",)]) == [b"PONG"]

"""The writer against a real Redis of the test's own (it flushes the server's scripts)."""

from __future__ import annotations

import asyncio
import shutil

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from fullon_ticker_service import keys
from fullon_ticker_service.worker.ownership import Lease
from fullon_ticker_service.worker.writer import BATCH, TickWriter
from tests.conftest import eventually

NS = "tst"


def tick(symbol: str, price: float, when: float) -> dict:
    return {"symbol": symbol, "exchange": "binance", "price": price, "volume": 1.0, "time": when, "bid": price - 1,
            "ask": price + 1, "last": price, "change": None, "percentage": None}


@pytest.fixture
async def writer(private_redis):
    r = Redis.from_url(private_redis.url)
    lease = Lease(r, NS, "binance", "host", 5000)
    assert await lease.try_acquire()
    yield TickWriter(r, "binance", NS, lease), r
    await r.aclose()


async def test_a_redis_that_lost_the_script_gets_it_again_and_the_flush_lands(writer):
    """SCRIPT FLUSH (as after a Redis restart without persistence of scripts): the next flush gets
    NOSCRIPT, loads the script and sends again, in the single-call and the pipelined (> BATCH) path."""
    w, r = writer
    w.put("BTC/USDT", tick("BTC/USDT", 100.0, 1.0))
    assert await w.flush_now() == 1 and w.round_trips == 3  # a fresh server has no script yet either
    w.put("BTC/USDT", tick("BTC/USDT", 101.0, 1.5))
    assert await w.flush_now() == 1 and w.round_trips == 4  # from now on one round trip a flush
    for n in (1, BATCH + 5):
        await r.script_flush()
        trips = w.round_trips
        for i in range(n):
            w.put(f"S{i}/USDT", tick(f"S{i}/USDT", 10.0 + n, 2.0 + n))
        assert await w.flush_now() == n
        assert w.round_trips == trips + 3  # the refused call, the load, the call again
        stored = await r.hget(keys.tickers("binance"), f"S{n - 1}/USDT")
        assert stored is not None and orjson.loads(stored)["price"] == 10.0 + n


async def test_older_is_refused_and_reported_with_the_time_redis_holds(writer):
    w, r = writer
    w.put("BTC/USDT", tick("BTC/USDT", 100.0, 5.0))
    await w.flush_now()
    w.put("BTC/USDT", tick("BTC/USDT", 99.0, 4.0))
    assert await w.flush_now() == 0
    assert w.refused == {"BTC/USDT": 5.0} and w.older_in_redis == 1
    assert orjson.loads(await r.hget(keys.tickers("binance"), "BTC/USDT"))["price"] == 100.0


@pytest.fixture
async def slow_writer(private_redis):
    """A writer whose flusher runs, on a Redis the test can pause (CLIENT PAUSE holds every reply)."""
    r = Redis.from_url(private_redis.url, socket_timeout=0.3)
    admin = Redis.from_url(private_redis.url)
    lease = Lease(admin, NS, "binance", "host", 10_000)
    assert await lease.try_acquire()
    w = TickWriter(r, "binance", NS, lease)
    w.put("WARM/USDT", tick("WARM/USDT", 1.0, 1.0))
    assert await w.flush_now() == 1  # the script is loaded, the wire connected
    task = asyncio.create_task(w.run())
    yield w, admin
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await w.wire.close()
    await r.aclose()
    await admin.aclose()


async def stored_price(r: Redis, symbol: str) -> float | None:
    raw = await r.hget(keys.tickers("binance"), symbol)
    return None if raw is None else orjson.loads(raw)["price"]


async def test_a_tick_does_not_wait_for_the_flush_in_flight_and_at_most_two_are_out(slow_writer):
    """While Redis holds its replies, the first tick's flush is out, the second tick goes out at once
    in a second flush, and only the third waits (pending) for a slot."""
    w, admin = slow_writer
    await admin.execute_command("CLIENT", "PAUSE", 250, "WRITE")
    flushes = w.flushes
    for i, symbol in enumerate(("A/USDT", "B/USDT", "C/USDT")):
        w.put(symbol, tick(symbol, 10.0 + i, 10.0))
        await asyncio.sleep(0.03)  # the flusher runs
    assert set(w.pending) == {"C/USDT"}  # A and B are in flight, C waits for one of them
    await eventually(lambda: w.flushes == flushes + 3, 5, 0.01, "three flushes")
    for i, symbol in enumerate(("A/USDT", "B/USDT", "C/USDT")):
        assert await stored_price(admin, symbol) == 10.0 + i
    assert w.write_error == "" and not w.pending


async def test_two_flights_lost_together_put_back_the_newest_tick_never_the_older_batch(slow_writer):
    """Two flushes carry the same symbol (older, then newer) and both fail on one stalled connection:
    what goes out after Redis is back is the newest tick, and Redis ends with it. A symbol removed
    while its flush was out is not put back."""
    w, admin = slow_writer
    await admin.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
    w.put("S/USDT", tick("S/USDT", 1.0, 20.0))
    w.put("GONE/USDT", tick("GONE/USDT", 5.0, 20.0))
    await asyncio.sleep(0.03)
    w.put("S/USDT", tick("S/USDT", 2.0, 21.0))
    await asyncio.sleep(0.03)
    assert not w.pending  # both flights are out
    w.discard({"GONE/USDT"})
    # both flights fail: the pause outlasts the timeout
    await eventually(lambda: w.write_error != "", 5, 0.01, "a failed flush")
    await eventually(lambda: w.write_error == "" and not w.pending, 5, 0.01, "the retry")
    assert await stored_price(admin, "S/USDT") == 2.0
    assert await stored_price(admin, "GONE/USDT") is None


async def test_with_redis_down_the_retries_back_off(slow_writer, private_redis):
    """Redis gone while ticks keep arriving: the retry delay grows to its cap (0.5 s) instead of
    restarting after every round (an empty second flush must not count as a success)."""
    w, _ = slow_writer
    private_redis.kill()
    deadline = asyncio.get_running_loop().time() + 3.0
    i = 0
    while asyncio.get_running_loop().time() < deadline:
        i += 1
        w.put(f"S{i % 20}/USDT", tick(f"S{i % 20}/USDT", 1.0 + i, 100.0 + i))
        await asyncio.sleep(0.01)
    # half-jittered 50 ms doubling to 0.5 s: ~12 failures in 3 s (one restarting backoff: ~80)
    assert 3 <= w.outage.failures <= 25, w.outage.failures
    assert w.write_error == "connection"
    private_redis.start()
    await eventually(lambda: w.write_error == "" and not w.pending, 5, 0.01, "the writes after Redis is back")


async def test_a_flush_queued_behind_a_timeout_does_not_replace_the_failure_kind(slow_writer):
    """Replies held back (CLIENT PAUSE) while ticks flow: the first flush times out and drops the
    connection, the one queued behind it fails with it. Health and the log say `timeout`, not a
    `connection` error that never happened."""
    w, admin = slow_writer
    await admin.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
    kinds = set()
    for i in range(150):
        w.put(f"S{i % 10}/USDT", tick(f"S{i % 10}/USDT", 1.0 + i, 200.0 + i))
        kinds.add(w.write_error)
        await asyncio.sleep(0.01)
    assert kinds == {"", "timeout"}, kinds
    await eventually(lambda: w.write_error == "" and not w.pending, 5, 0.01, "the writes after the pause")
    assert await stored_price(admin, "S9/USDT") == 150.0  # the last tick of S9 (i = 149)


async def test_a_flush_sent_again_after_noscript_carries_each_symbols_newest_tick(writer):
    """Redis lost the script while a flush was out and a newer tick of its symbol arrived meanwhile:
    the flush sent again after loading the script carries the newer tick, so a flush behind it can
    never be overtaken by this one's older batch."""
    w, r = writer
    w.put("X/USDT", tick("X/USDT", 1.0, 30.0))
    await w.flush_now()
    await r.script_flush()
    w.put("X/USDT", tick("X/USDT", 2.0, 31.0))
    first = asyncio.create_task(w.flush_now())
    await asyncio.sleep(0)  # it took its batch (X at 31.0) and sent it: NOSCRIPT is on its way
    w.put("X/USDT", tick("X/USDT", 3.0, 32.0))
    assert await first == 1
    assert await stored_price(r, "X/USDT") == 3.0 and w.confirmed["X/USDT"][1] == 32.0
    assert w.refused == {} and w.older_in_redis == 0


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace shows the order of redis-server's writes")
async def test_a_subscriber_hears_of_a_flush_before_the_writer_does(writer, private_redis, tmp_path):
    """Redis writes one pass's replies newest-queued client first: a script's own reply, queued after
    its PUBLISH, would leave before the subscriber's message. The flush's PING queues our connection
    first, so the message leaves first. Seen in redis-server's own write calls, three flushes."""
    w, r = writer
    w.put("WARM/USDT", tick("WARM/USDT", 1.0, 1.0))
    await w.flush_now()  # the script is loaded and the wire connected: each flush below is one call
    sub = r.pubsub()
    await sub.subscribe(keys.ticker_updates("binance", "BTC/USDT"))
    assert (await sub.get_message(timeout=2))["type"] == "subscribe"
    out = tmp_path / "writes"
    strace = await asyncio.create_subprocess_exec(
        "strace", "-e", "trace=write,writev", "-e", "signal=none", "-s", "40", "-o", str(out),
        "-p", str(private_redis.proc.pid), stderr=asyncio.subprocess.PIPE)
    try:
        assert strace.stderr is not None and b"attached" in await strace.stderr.readline()
        for i in range(3):
            w.put("BTC/USDT", tick("BTC/USDT", 100.0 + i, 10.0 + i))
            assert await w.flush_now() == 1
            message = await sub.get_message(timeout=2)
            assert message is not None and orjson.loads(message["data"])["price"] == 100.0 + i
    finally:
        strace.terminate()
        await asyncio.wait_for(strace.wait(), 5)
        await sub.aclose()
    # nothing else talks to this server meanwhile: a write that is not the message is the flush's reply
    writes = ["message" if "message" in line else "reply"
              for line in out.read_text().splitlines() if line.startswith(("write(", "writev("))]
    assert writes == ["message", "reply"] * 3, out.read_text()


async def test_a_redis_user_not_allowed_ping_loses_no_write(private_redis):
    """A deployment's ACL without PING: the first flush's PING is refused (NOPERM), its script lands all
    the same and health says ok; the writer sends no PING after that (the server logged one refusal)."""
    admin = Redis.from_url(private_redis.url)
    await admin.execute_command("ACL", "SETUSER", "ticker", "on", ">pw", "~*", "&*", "+@all", "-ping")
    r = Redis.from_url(f"redis://ticker:pw@127.0.0.1:{private_redis.port}/0")
    try:
        with pytest.raises(NoPermissionError):
            await r.ping()  # the ACL holds
        lease = Lease(r, NS, "binance", "host", 5000)
        assert await lease.try_acquire()
        w = TickWriter(r, "binance", NS, lease)
        for i in range(3):
            w.put("BTC/USDT", tick("BTC/USDT", 100.0 + i, 10.0 + i))
            assert await w.flush_now() == 1
            assert w.write_error == "" and w.snapshot()["redis_write"] == "ok"
            assert await stored_price(admin, "BTC/USDT") == 100.0 + i
        assert not w.wire.ping_allowed
        entries = [dict(zip(e[::2], e[1::2], strict=True)) if isinstance(e, list) else e
                   for e in await admin.execute_command("ACL", "LOG")]
        refused = [e for e in entries if e[b"object"] == b"ping" and e[b"username"] == b"ticker"]
        assert [e[b"count"] for e in refused] == [2], entries  # ours, and the test's own r.ping()
    finally:
        await r.aclose()
        await admin.aclose()

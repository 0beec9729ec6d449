"""A real worker process, real ccxt, real Redis, the simulator speaking Binance."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import orjson
import pytest

from fullon_ticker_service import keys
from fullon_ticker_service.sim import SimExchange, Simulator
from fullon_ticker_service.tick import FULLON_FIELDS
from fullon_ticker_service.worker.ownership import Lease
from tests.conftest import eventually
from tests.worker.helpers import NAMESPACE, all_match, health_of, settings_for, start_worker, stored


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=20, rate=0)]) as s:
        yield s


@pytest.fixture
def worker_proc():
    procs = []

    def start(*args, **kwargs):
        p = start_worker(*args, **kwargs)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(5)


async def test_values_in_redis_equal_what_was_sent(sim, redis_db, worker_proc):
    """Every symbol's stored tick equals the simulator's last frame, in the fullon layout."""
    symbols = sim.symbols("binance")
    pubsub = redis_db.pubsub()
    await pubsub.psubscribe("ticker_updates:binance:*")
    worker_proc(settings_for(sim, "binance"), "binance", symbols)
    await eventually(lambda: all_match(redis_db, sim, "binance"), 20, what="initial snapshot in redis")
    sim.set_rate("binance", 400, count=200)
    await sim.drained("binance")
    await eventually(lambda: all_match(redis_db, sim, "binance"), 10, what="burst values in redis")

    got = await stored(redis_db, "binance")
    for symbol, q in sim.last_good("binance").items():
        tick = got[symbol]
        assert tick["symbol"] == symbol and tick["exchange"] == "binance"
        assert tick["price"] == q.last and tick["volume"] == q.volume
        # the newer of the 24hrTicker's exchange time and the (unstamped) bookTicker's arrival
        assert q.ts_ms / 1000 <= tick["time"] <= time.time()
        assert tick["change"] == pytest.approx(q.change) and tick["percentage"] == pytest.approx(q.percentage, abs=1e-3)
        assert await redis_db.get(f"ticker_time:binance:{symbol}") == repr(tick["time"]).encode()
        assert list(tick) == list(FULLON_FIELDS)  # exactly fullon's ten fields, nothing of ours
    published, deadline = set(), time.monotonic() + 5
    while len(published) < len(symbols) and time.monotonic() < deadline:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if msg is not None:
            published.add(orjson.loads(msg["data"])["symbol"])
            assert msg["channel"].decode() == f"ticker_updates:binance:{orjson.loads(msg['data'])['symbol']}"
    assert published == set(symbols)
    await pubsub.aclose()

    h = await health_of(redis_db, "binance")
    assert h["status"] == "running" and h["symbols"] == len(symbols) and h["ticks"] >= 200
    assert h["redis_round_trips"] <= h["flushes"]
    pid = h["process_id"]
    assert (await redis_db.hget("process:components", "binance")).decode() == pid
    assert await redis_db.hexists("process:active:tick", pid)
    proc_data = orjson.loads(await redis_db.get(f"process:data:{pid}"))
    assert proc_data["process_type"] == "tick" and proc_data["component"] == "binance"
    assert proc_data["status"] == "running" and "+00:00" in proc_data["updated_at"]
    assert 86000 < await redis_db.ttl(f"process:data:{pid}") <= 86400


@pytest.mark.slow
async def test_burst_10k_per_second_500_symbols_leaves_nothing_stale(redis_db, worker_proc):
    """After a ≥10k ticks/s burst over 500 symbols, every stored value is the last one sent."""
    async with Simulator([SimExchange("binance", symbols=500, rate=0)]) as sim:
        worker_proc(settings_for(sim, "binance"), "binance", sim.symbols("binance"))
        await eventually(lambda: all_match(redis_db, sim, "binance"), 30, what="snapshot of 500 symbols")
        ex = sim.exchanges["binance"]
        before, t0 = ex.sent, time.monotonic()
        sim.set_rate("binance", 12_000, count=24_000)
        await sim.drained("binance", within=60)
        sent_rate = (ex.sent - before) / (time.monotonic() - t0)
        await eventually(lambda: all_match(redis_db, sim, "binance"), 15, what="zero stale symbols")
        got = await stored(redis_db, "binance")
        stale = [s for s, q in sim.last_good("binance").items() if got[s]["last"] != q.last]
        assert stale == []
        print(f"burst: offered 12000/s, simulator sent {sent_rate:.0f}/s")


async def test_bad_values_and_older_ticks_are_never_stored(sim, redis_db, worker_proc):
    """Negative, zero, crossed, older-timestamp and NaN frames are rejected and counted.

    Each bad quote goes out on both streams (24hrTicker and bookTicker), so each is counted twice,
    except `older`: Binance spot's bookTicker carries no timestamp, so only the ticker stream can
    tell it is older. ccxt turns a zero price into None (-> no_price) and raises inside its own
    parser on "NaN", which kills the receive loop: that one surfaces as `malformed` plus a reconnect.
    """
    worker_proc(settings_for(sim, "binance"), "binance", sim.symbols("binance"))
    await eventually(lambda: all_match(redis_db, sim, "binance"), 20, what="initial snapshot")
    for kind in ("negative", "zero", "crossed", "older", "nan"):
        await sim.fault("binance", kind, count=4 if kind != "nan" else 1)
    sim.set_rate("binance", 100, count=60)  # 17 bad frames among 60
    await sim.drained("binance")
    await eventually(lambda: all_match(redis_db, sim, "binance"), 10, what="last good values")

    async def counted():
        h = await health_of(redis_db, "binance")
        r = h["rejected"] if h else {}
        return (r.get("not_positive", 0) == 8 and r.get("no_price", 0) == 8 and r.get("crossed", 0) == 8
                and r.get("older", 0) == 4 and r.get("malformed", 0) >= 1) and r

    await eventually(counted, 5, what="rejections counted per reason")


async def test_socket_close_reconnects_and_resumes(sim, redis_db, worker_proc):
    """When the exchange closes every socket the worker reconnects and keeps storing."""
    worker_proc(settings_for(sim, "binance"), "binance", sim.symbols("binance"))
    await eventually(lambda: all_match(redis_db, sim, "binance"), 20, what="initial snapshot")
    ex = sim.exchanges["binance"]
    before = ex.state()  # 2 connections (24hrTicker and bookTicker), 20 symbols each
    assert before["connections"] == 2 and before["subscriptions"] == 40
    await sim.fault("binance", "close")

    def resubscribed():
        now = ex.state()
        return (now["connections_accepted"] >= before["connections_accepted"] + 2
                and now["subscriptions"] == before["subscriptions"])

    await eventually(resubscribed, 10, what="both streams resubscribed")
    sim.set_rate("binance", 200, count=100)
    await sim.drained("binance")
    await eventually(lambda: all_match(redis_db, sim, "binance"), 10, what="values after reconnect")
    h = await eventually(lambda: health_of(redis_db, "binance"), 5)
    assert sim.exchanges["binance"].state()["connections_accepted"] >= 2
    assert h["status"] == "running"


async def test_symbols_that_left_the_catalog_while_down_are_deleted_at_start(sim, redis_db, worker_proc):
    """Prices of symbols no longer configured (removed while no worker ran) and not written for
    `symbol_stale_after` are deleted once the worker owns the exchange; one someone still writes
    (FRESH/USDT, time now) and a configured symbol the venue does not list keep their entries, and
    the collected symbols are written as usual."""
    symbols = sim.symbols("binance")[:5]
    await redis_db.hset("tickers:binance", mapping={"OLD/USDT": b"{}", "ZZZ/USDT": b"{}", "FRESH/USDT": b"{}"})
    await redis_db.set("ticker_time:binance:FRESH/USDT", repr(time.time()))
    await redis_db.set("ticker_time:binance:OLD/USDT", b"1")
    await redis_db.set("ticker_time:binance:GONE/USDT", b"1")  # a time key left without its hash field
    await redis_db.set("ticker_time:binance:ZZZ/USDT", b"1")
    await redis_db.set("ticker_time:okx:OLD/USDT", b"1")  # another exchange's: not this worker's business
    worker_proc(settings_for(sim, "binance"), "binance", [*symbols, "ZZZ/USDT"])

    async def swept():
        return not await redis_db.exists("ticker_time:binance:OLD/USDT", "ticker_time:binance:GONE/USDT")

    await eventually(swept, 20, what="the leftover symbols deleted")

    async def written():
        return set(await stored(redis_db, "binance")) == {*symbols, "ZZZ/USDT", "FRESH/USDT"}

    await eventually(written, 10, what="the 5 collected symbols written beside ZZZ/USDT and FRESH/USDT")
    assert (await stored(redis_db, "binance"))["ZZZ/USDT"] == {}
    assert await redis_db.get("ticker_time:binance:ZZZ/USDT") == b"1"
    assert await redis_db.get("ticker_time:okx:OLD/USDT") == b"1"


async def test_standby_sweeps_leftover_prices_once_it_takes_the_lease(sim, redis_db, worker_proc):
    """A worker started while someone else holds the exchange's lease is a standby: it subscribes
    and holds ticks but writes nothing and deletes nothing. Once the lease is released it takes it
    over (`_acquire_own_lease` -> `_took_lease`), writes every collected symbol and only then sweeps
    the prices of symbols it does not collect and nobody wrote for `symbol_stale_after` (OLD/USDT,
    and GONE/USDT's time key without its hash field); FRESH/USDT, written just now, stays."""
    symbols = sim.symbols("binance")
    await redis_db.hset("tickers:binance", mapping={"OLD/USDT": b"{}", "FRESH/USDT": b"{}"})
    fresh_time = repr(time.time()).encode()
    await redis_db.set("ticker_time:binance:FRESH/USDT", fresh_time)
    await redis_db.set("ticker_time:binance:OLD/USDT", b"1")
    await redis_db.set("ticker_time:binance:GONE/USDT", b"1")
    leftovers = {"tickers:binance": {b"OLD/USDT": b"{}", b"FRESH/USDT": b"{}"},
                 "ticker_time:binance:FRESH/USDT": fresh_time, "ticker_time:binance:OLD/USDT": b"1",
                 "ticker_time:binance:GONE/USDT": b"1"}

    async def redis_now():
        return {k.decode(): (await redis_db.hgetall(k) if k.startswith(b"tickers:") else await redis_db.get(k))
                for k in await redis_db.keys("ticker*")}

    # the exchange is taken by another holder (TTL long enough not to lapse during the test)
    holder = Lease(redis_db, NAMESPACE, "binance", "another-host", 60_000)
    assert await holder.try_acquire()
    proc = worker_proc(settings_for(sim, "binance"), "binance", symbols)
    armed_key = keys.armed(NAMESPACE, "binance", socket.gethostname())

    async def armed():
        raw = await redis_db.get(armed_key)
        return raw and orjson.loads(raw)

    standby = await eventually(armed, 20, what="the worker armed as a standby")
    assert standby["role"] == "standby" and standby["token"] is None and standby["symbols"] == len(symbols)
    assert standby["status"] == "armed"  # not "running": it writes nothing
    sim.set_rate("binance", 200, count=100)  # ticks keep arriving at the standby...
    await sim.drained("binance")

    async def held_them():
        h = await armed()
        return h and h["ticks"] >= len(symbols) + 100 and h

    standby = await eventually(held_them, 10, what="the standby to receive the burst")
    assert standby["written"] == 0 and standby["flushes"] == 0
    # ...and it wrote nothing: no tick, no health record, and the leftovers are not swept
    assert await redis_now() == leftovers
    assert await health_of(redis_db, "binance") is None
    assert (await redis_db.get(keys.lease(NAMESPACE, "binance"))).decode() == holder.value

    await holder.release()
    await eventually(lambda: all_match(redis_db, sim, "binance"), 10, what="the new owner's values in redis")

    async def swept():
        return not await redis_db.exists("ticker_time:binance:OLD/USDT", "ticker_time:binance:GONE/USDT")

    await eventually(swept, 10, what="the leftover symbols deleted after the takeover")
    assert set(await stored(redis_db, "binance")) == {*symbols, "FRESH/USDT"}
    assert await redis_db.get("ticker_time:binance:FRESH/USDT") == fresh_time

    async def owner_running():
        h = await health_of(redis_db, "binance")
        return h and h["role"] == "owner" and h["status"] == "running" and h

    h = await eventually(owner_running, 5, what="the worker reporting as the running owner")
    assert h["token"] == holder.token + 1
    assert not await redis_db.exists(armed_key)
    # it stays the owner: the task that waited for the lease ending is not the worker's end
    await asyncio.sleep(1.5)
    assert proc.is_alive() and (await owner_running())["status"] == "running"
    sim.set_rate("binance", 200, count=40)
    await sim.drained("binance")
    await eventually(lambda: all_match(redis_db, sim, "binance"), 10, what="values written after the takeover")


async def test_stall_is_detected_by_the_watchdog(sim, redis_db, worker_proc):
    """A socket that stays open but silent is reconnected by the staleness watchdog."""
    worker_proc(settings_for(sim, "binance", stale_after=1.0), "binance", sim.symbols("binance"))
    await eventually(lambda: all_match(redis_db, sim, "binance"), 20, what="initial snapshot")
    sim.set_rate("binance", 50)
    accepted = sim.exchanges["binance"].state()["connections_accepted"]
    await sim.fault("binance", "stall", seconds=2.5)

    async def kicked():
        h = await health_of(redis_db, "binance")
        return h and h["stale_reconnects"] >= 1

    await eventually(kicked, 6, what="watchdog reconnect")
    await eventually(lambda: sim.exchanges["binance"].state()["connections_accepted"] > accepted, 10,
                     what="a new connection")
    sim.set_rate("binance", 200, count=100)
    await sim.drained("binance")
    await eventually(lambda: all_match(redis_db, sim, "binance"), 10, what="values after the stall")


async def test_malformed_frames_reconnect_and_resume(sim, redis_db, worker_proc):
    """Garbage frames stop ccxt's receive loop; the worker notices, reconnects and resumes."""
    worker_proc(settings_for(sim, "binance"), "binance", sim.symbols("binance"))
    await eventually(lambda: all_match(redis_db, sim, "binance"), 20, what="initial snapshot")
    accepted = sim.exchanges["binance"].state()["connections_accepted"]
    await sim.fault("binance", "malformed", count=3)
    await eventually(lambda: sim.exchanges["binance"].state()["connections_accepted"] > accepted, 10,
                     what="reconnect after garbage")
    sim.set_rate("binance", 200, count=100)
    await sim.drained("binance")
    await eventually(lambda: all_match(redis_db, sim, "binance"), 10, what="values after garbage")
    h = await health_of(redis_db, "binance")
    assert h["rejected"].get("malformed", 0) >= 1


async def test_redis_killed_and_restarted_empty(sim, private_redis, worker_proc):
    """With Redis gone the worker keeps collecting; a fresh empty Redis holds every newest value within 1 s."""
    from redis.asyncio import Redis

    r = Redis.from_url(private_redis.url)
    worker_proc(settings_for(sim, "binance", redis_url=private_redis.url), "binance", sim.symbols("binance"))
    await eventually(lambda: all_match(r, sim, "binance"), 20, what="initial snapshot")
    private_redis.kill()
    sim.set_rate("binance", 200, count=100)  # ticks arrive while Redis is down
    await sim.drained("binance")
    private_redis.start()
    t0 = time.monotonic()
    await eventually(lambda: all_match(r, sim, "binance"), 5, interval=0.01, what="refill after restart")
    refill = time.monotonic() - t0
    assert refill < 1.0, f"took {refill:.2f}s"
    # the first report after the restart may be older than the refill (the writer backs off up to
    # 0.5 s, the reporter's client reconnects at once) and rightly say "down": the next says "up"
    async def says_up():
        h = await health_of(r, "binance")
        return h and h["redis"] == "up" and h["redis_write"] == "ok" and h

    await eventually(says_up, 5, what="a health record saying the writes are back")
    await r.aclose()


async def test_older_value_in_redis_is_not_overwritten(sim, redis_db, worker_proc):
    """A newer ticker_time already in Redis (another writer, a restart) wins over our tick."""
    symbol = sim.symbols("binance")[0]
    future = time.time() + 3600
    await redis_db.hset("tickers:binance", symbol, orjson.dumps({"symbol": symbol, "price": 1.0}))
    await redis_db.set(f"ticker_time:binance:{symbol}", repr(future))
    worker_proc(settings_for(sim, "binance"), "binance", sim.symbols("binance"))

    async def others_written():
        got = await stored(redis_db, "binance")
        return len(got) == 20 and got

    got = await eventually(others_written, 20, what="other symbols written")
    assert got[symbol] == {"symbol": symbol, "price": 1.0}
    assert float(await redis_db.get(f"ticker_time:binance:{symbol}")) == future

    async def refused():
        h = await health_of(redis_db, "binance")
        return h and h["older_in_redis"] >= 1

    await eventually(refused, 5, what="the refusal counted")


async def test_sigterm_exits_zero_and_marks_stopped(sim, redis_db, worker_proc):
    """SIGTERM flushes, marks the health record stopped, leaves fullon's active list, exits 0."""
    proc = worker_proc(settings_for(sim, "binance"), "binance", sim.symbols("binance"))
    await eventually(lambda: all_match(redis_db, sim, "binance"), 20, what="initial snapshot")
    pid = (await health_of(redis_db, "binance"))["process_id"]
    os.kill(proc.pid, signal.SIGTERM)
    await eventually(lambda: not proc.is_alive(), 10, what="worker exit")
    assert proc.exitcode == 0
    h = await health_of(redis_db, "binance")
    assert h["status"] == "stopped"
    assert not await redis_db.hexists("process:active:tick", pid)
    assert not await redis_db.hexists("process:components", "binance")
    assert orjson.loads(await redis_db.get(f"process:data:{pid}"))["status"] == "stopped"


async def test_unknown_exchange_and_symbols_are_config_errors(sim, redis_db, worker_proc):
    """An unknown ccxt id or no listed symbol exits with the config-error code, saying why."""
    from fullon_ticker_service.config import ExchangeSettings
    from fullon_ticker_service.launch import EXIT_CONFIG

    s = settings_for(sim, "binance")
    bogus = s.__class__(redis=s.redis, service=s.service,
                        exchanges={"nosuchx": ExchangeSettings(ccxt_id="nosuchexchange")})
    p1 = worker_proc(bogus, "nosuchx", ["BTC/USDT"])
    p2 = worker_proc(s, "binance", ["NOPE/USDT"])
    await eventually(lambda: not p2.is_alive(), 20, what="the binance worker to exit")
    h = await health_of(redis_db, "binance")  # read before its TTL (3 health intervals) ends
    assert h["status"] == "error" and "NOPE/USDT" in h["last_error"]
    await eventually(lambda: not p1.is_alive(), 20, what="the nosuchx worker to exit")
    assert (p1.exitcode, p2.exitcode) == (EXIT_CONFIG, EXIT_CONFIG)

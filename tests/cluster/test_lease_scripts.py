"""The ownership scripts (lease.py, the writer's fenced flush) against a real, private redis-server."""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from fullon_ticker_service import keys, lease
from fullon_ticker_service.worker.writer import WRITE_NEWER
from tests.servers import RedisServer

NS = "t"


@pytest.fixture(scope="module")
def server():
    s = RedisServer().start()
    yield s
    s.stop()


@pytest.fixture
def r(server):
    c = redis.Redis(port=server.port)
    c.flushall()
    yield c
    c.close()


def flush(r: redis.Redis, value: str, sym: str = "A", t: float = 100.0, ttl: int = 5000) -> int:
    ks = [keys.lease(NS, "x"), keys.fence(NS, "x"), keys.fenced(NS), keys.tickers("x"), keys.ticker_time("x", sym)]
    out = r.eval(WRITE_NEWER, len(ks), *ks, value, lease.token(value), ttl, "x", keys.flush_audit(NS),
                 sym, repr(t), orjson.dumps({"t": t}), keys.ticker_updates("x", sym))
    return out if isinstance(out, int) else int(out[0])  # -1 fenced, else {written, refused...}


def test_acquire_release_and_tokens_only_grow(r):
    ok, v1 = lease.run(r, lease.acquire(NS, "x", "h1", 11, 5000))
    assert ok and v1 == "1:h1:11" and lease.holder(v1) == (1, "h1", 11)
    ok, holder = lease.run(r, lease.acquire(NS, "x", "h2", 22, 5000))
    assert not ok and holder == v1  # held: the holder is named, nothing changes
    assert not lease.run(r, lease.release(NS, "x", "1:h2:22"))  # compare-and-delete: not ours, not deleted
    assert lease.run(r, lease.release(NS, "x", v1))
    ok, v2 = lease.run(r, lease.acquire(NS, "x", "h2", 22, 5000))
    assert ok and lease.token(v2) == 2
    ok, v3 = lease.run(r, lease.acquire(NS, "x", "h2", 23, 5000, replace=v2))  # a dead predecessor's lease
    assert ok and lease.token(v3) == 3


def test_fenced_flush_refuses_a_writer_whose_lease_moved_on(r):
    _, old = lease.run(r, lease.acquire(NS, "x", "h1", 1, 5000))
    assert flush(r, old, t=100.0) == 1
    r.delete(keys.lease(NS, "x"))  # its lease expired (paused host)...
    _, new = lease.run(r, lease.acquire(NS, "x", "h2", 2, 5000))  # ...and another host took the exchange
    assert flush(r, new, t=101.0) == 1
    assert flush(r, old, t=102.0) == -1  # the late write is refused, even though it is newer
    assert r.hget(keys.fenced(NS), "x") == b"1"
    assert float(r.get(keys.ticker_time("x", "A"))) == 101.0
    assert flush(r, new, t=99.0) == 0  # and the owner never writes older over newer


def test_expired_lease_is_retaken_when_nobody_acquired(r):
    """A late renewal, or Redis restarted empty: the writer keeps its token without a restart."""
    _, v = lease.run(r, lease.acquire(NS, "x", "h1", 1, 5000))
    r.delete(keys.lease(NS, "x"))
    assert flush(r, v) == 1 and r.get(keys.lease(NS, "x")) == v.encode()
    r.flushall()  # no lease, no fence counter
    assert flush(r, v, t=200.0) == 1
    assert int(r.get(keys.fence(NS, "x"))) == lease.token(v)  # re-seeded: the next acquirer gets a newer token
    r.delete(keys.lease(NS, "x"))
    r.set(keys.fence(NS, "x"), 0)  # a failover lost the INCR that made our token
    assert flush(r, v, t=201.0) == 1 and int(r.get(keys.fence(NS, "x"))) == lease.token(v)


def test_report_renews_and_is_fenced(r):
    _, v = lease.run(r, lease.acquire(NS, "x", "h1", 1, 300))
    report = lease.report(NS, "x", v, 5000, b"{}", 5000, b"{}", "p", "now", final=False)
    assert lease.run(r, report) is True
    assert r.pttl(keys.lease(NS, "x")) > 4000  # compare-and-extend: the full TTL again
    assert r.hget(keys.process_active(), "p") == b"now" and r.hget(keys.PROCESS_COMPONENTS, "x") == b"p"
    r.set(keys.lease(NS, "x"), "2:h2:2")
    r.delete(keys.health(NS, "x"))
    assert lease.run(r, report) is False
    assert r.get(keys.health(NS, "x")) is None and r.hget(keys.fenced(NS), "x") == b"1"


def test_beat_one_live_instance_per_host_id_and_expiry(r):
    rec = {"instance": "a", "hostname": "m", "pid": 1, "capacity": 2}
    ok, live = lease.run(r, lease.beat(NS, "h1", rec, 300))
    assert ok and live["h1"]["capacity"] == 2
    ok, found = lease.run(r, lease.beat(NS, "h1", {**rec, "instance": "b"}, 300))
    assert not ok and found["h1"]["instance"] == "a"  # a second supervisor with the same id is refused
    ok, live = lease.run(r, lease.beat(NS, "h2", {**rec, "instance": "c"}, 5000))
    assert ok and set(live) == {"h1", "h2"}
    lease.run(r, lease.leave(NS, "h1", "not-me"))
    assert set(lease.run(r, lease.beat(NS, "h2", {**rec, "instance": "c"}, 5000))[1]) == {"h1", "h2"}
    time.sleep(0.35)  # h1 stops beating: it leaves the live set after its TTL
    ok, live = lease.run(r, lease.beat(NS, "h2", {**rec, "instance": "c"}, 5000))
    assert set(live) == {"h2"}
    ok, _ = lease.run(r, lease.beat(NS, "h1", {**rec, "instance": "b"}, 300))
    assert ok  # the id is free again
    lease.run(r, lease.leave(NS, "h1", "b"))
    assert set(lease.run(r, lease.beat(NS, "h2", {**rec, "instance": "c"}, 5000))[1]) == {"h2"}

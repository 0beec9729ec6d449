"""Redis Sentinel: the master is killed mid-stream; writes resume on the promoted replica within the
failover time + 1 s, and no stored value ever goes back in time.

Private redis-server master and replica and one redis-sentinel (quorum 1) on loopback; the real
supervisor and worker find the master through Sentinel (`redis.sentinels`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio import Redis

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.cluster.helpers import Host, Watcher
from tests.conftest import eventually
from tests.faults.helpers import fault_config, record
from tests.servers import RedisServer, SentinelServer
from tests.worker.helpers import matches, stored


async def test_master_killed_mid_stream(tmp_path):
    master = RedisServer().start()
    replica = RedisServer(extra=["--replicaof", "127.0.0.1", str(master.port)]).start()
    sentinel = SentinelServer(master.port).start()
    rep = Redis(port=replica.port, socket_timeout=3)
    sen = Redis(port=sentinel.port, socket_timeout=3)
    host = None
    try:
        async def replica_known():
            info = await rep.info("replication")
            return info.get("master_link_status") == "up" and await sen.sentinel_slaves("mymaster")

        await eventually(replica_known, 20, 0.1, "the replica in sync and known to Sentinel")
        async with Simulator([SimExchange("binance", symbols=6, rate=40)]) as sim:
            symbols = sim.symbols("binance")[:4]
            cfg = fault_config(tmp_path / "s.toml", sim, {"binance": {"symbols": symbols}}, master.url)
            cfg.write_text(cfg.read_text().replace(
                "[redis]\n", f'[redis]\nsentinels = "127.0.0.1:{sentinel.port}"\nsentinel_service = "mymaster"\n', 1))
            async with Watcher(rep) as watch:  # on the replica: flushes arrive by replication, then directly
                host = Host("s1", cfg, tmp_path)
                await eventually(lambda: len(watch.events) > 5, 30, 0.1, "writes through Sentinel")

                samples: dict[str, list[float]] = {s: [] for s in symbols}
                sampling = asyncio.create_task(_sample(rep, symbols, samples))
                switch = sen.pubsub()
                await switch.subscribe("+switch-master")
                killed_at = time.monotonic()
                master.kill()
                switched_at = None
                while time.monotonic() - killed_at < 30:
                    msg = await switch.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if msg:
                        switched_at = time.monotonic()
                        break
                await switch.aclose()
                assert switched_at is not None, "Sentinel did not fail over"
                await eventually(lambda: any(t > killed_at for t, *_ in watch.events), 10, 0.02,
                                 "writes on the promoted replica")
                resumed_at = next(t for t, *_ in watch.events if t > killed_at)
                await asyncio.sleep(1.0)
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
                failover, resume = switched_at - killed_at, resumed_at - killed_at
                record("sentinel: master killed", failover_s=failover, writes_resumed_s=resume)
                assert resume <= failover + 1.0, (failover, resume)
                for s, seen in samples.items():  # nothing older ever overwrote newer
                    assert seen == sorted(seen), s
                sim.set_rate("binance", 0)

                async def converged():
                    got, good = await stored(rep, "binance"), sim.last_good("binance")
                    return all(matches(got.get(s), good[s]) for s in symbols)

                await eventually(converged, 15, 0.1, "stored equals last sent")
                assert watch.regressions() == []
                assert host.proc.poll() is None  # the supervisor rode through it
    finally:
        if host is not None:
            host.stop()
        for r in (rep, sen):
            await r.aclose()
        for server in (sentinel, replica, master):
            server.stop()


async def _sample(redis: Redis, symbols: list[str], out: dict[str, list[float]]) -> None:
    while True:
        with contextlib.suppress(Exception):
            values = await redis.mget([f"ticker_time:binance:{s}" for s in symbols])
            for s, v in zip(symbols, values, strict=True):
                if v is not None:
                    out[s].append(float(v))
        await asyncio.sleep(0.05)

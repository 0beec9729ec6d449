"""A host cut off from Redis by a network partition (its processes keep running), then healed.

q2 reaches Redis through a proxy the test blackholes: its supervisor's and workers' commands stop
arriving but their sockets stay open, and what they sent meanwhile is delivered late when the
partition heals. Its exchanges must move to q1 within the lease TTL + 1 s, none of the late writes
may be accepted, and q2 must rejoin with fresh tokens.
"""

from __future__ import annotations

import asyncio
import time

from tests.cluster.helpers import LEASE_TTL, NAMES, NAMESPACE, Watcher, cluster_config, per_host, stable
from tests.cluster.partition import PartitionProxy
from tests.conftest import eventually
from tests.faults.helpers import record
from tests.worker.helpers import matches, stored


async def test_partitioned_host_loses_its_exchanges_and_its_late_writes_are_refused(
        tmp_path, redis_server, rc, sim, hosts):
    async with PartitionProxy(redis_server.port) as proxy, Watcher(rc) as watch:
        hosts("q1", cluster_config(tmp_path / "q1.toml", sim, redis_server.url))
        cut = hosts("q2", cluster_config(tmp_path / "q2.toml", sim, proxy.url))
        own = await stable(rc, NAMES, want=lambda o: set(per_host(o)) == {"q1", "q2"})
        theirs = {n: tok for n, (h, tok) in own.items() if h == "q2"}

        proxy.partition()
        cut_at = time.monotonic()
        taken = await stable(rc, NAMES, quiet=0.5, timeout=LEASE_TTL + 20,
                             want=lambda o: all(o[n][0] == "q1" for n in theirs))
        takeover = max(watch.first_write(n, taken[n][1], after=cut_at) or 1e9 for n in theirs) - cut_at
        await asyncio.sleep(max(0.0, LEASE_TTL + 2.0 - (time.monotonic() - cut_at)))
        held = proxy.held_bytes
        fenced_before = await _fenced(rc, theirs)

        proxy.heal()
        healed_at = time.monotonic()
        back = await stable(rc, NAMES, timeout=40, want=lambda o: per_host(o).get("q2", 0) >= 1)
        rejoined = time.monotonic() - healed_at

        late = [e for e in watch.events if e[1] in theirs and e[2] == theirs[e[1]] and e[0] >= cut_at + 0.2]
        assert late == [], late  # not one write of the cut-off owner accepted after the cut
        refused = await _fenced(rc, theirs) - fenced_before
        assert held > 0 and refused >= 1, (held, refused)  # its writes did arrive late, and were refused
        assert watch.regressions() == []
        assert cut.proc.poll() is None  # q2's supervisor rode it out, and said what happened
        said = [line for line in cut.text().splitlines() if "supervisor" in line and
                ("Redis failing" in line or "Redis working again" in line)]
        assert len(said) == 2 and "ERROR" in said[0] and "Redis unreachable" in said[0], said
        assert "working again" in said[1], said
        for n, (h, tok) in back.items():
            if h == "q2":
                assert tok > theirs.get(n, 0)
        for venue in sim.exchanges:  # quiet feed: every stored value must be the last one sent
            sim.set_rate(venue, 0)
        for n in NAMES:
            await eventually(lambda n=n: _newest(rc, sim, n), 10, what=f"{n} holds the last quotes sent")
    assert takeover <= LEASE_TTL + 1.0, takeover
    record("cluster: network partition", exchanges=len(theirs), takeover_s=takeover, late_bytes=held,
           refused_late_writes=refused, rejoined_s=rejoined, lease_ttl_s=LEASE_TTL)


async def _fenced(rc, names) -> int:
    counts = await rc.hgetall(f"{NAMESPACE}:fenced")
    return sum(int(counts.get(n.encode(), 0)) for n in names)


async def _newest(rc, sim, name) -> bool:
    got, good = await stored(rc, name), sim.last_good(name.split("_")[0])
    return len(got) == 4 and all(matches(tick, good[s]) for s, tick in got.items())

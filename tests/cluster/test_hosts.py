"""Several hosts share the exchanges through one Redis: balanced, failover, fencing, joining.

Real `tickerctl up` processes with distinct host ids, real workers, a private redis-server and the
simulator. A watcher records the token of every accepted flush (the `{ns}:flushes` channel, in
Redis' own order): a newer token followed by an older one would be two accepting writers.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time

import orjson

from tests.cluster.helpers import LEASE_TTL, NAMES, NAMESPACE, Watcher, cluster_config, per_host, stable
from tests.faults.helpers import record
from tests.supervisor.helpers import ps_json


async def test_three_hosts_then_a_fourth_joins_then_one_is_killed(tmp_path, redis_server, rc, sim, hosts):
    """3 hosts x 9 exchanges: one owner each, 3 per host; a 4th host moves at most ceil(E/H)+1 with
    no second accepting writer; `kill -9` of a host: its exchanges resume elsewhere within TTL + 1 s."""
    cfg = cluster_config(tmp_path / "c.toml", sim, redis_server.url)
    async with Watcher(rc) as watch:
        started = {h: hosts(h, cfg) for h in ("h1", "h2", "h3")}
        own = await stable(rc, NAMES, want=lambda o: sorted(per_host(o).values()) == [3, 3, 3])
        assert per_host(own) == {"h1": 3, "h2": 3, "h3": 3}

        rows = {r["exchange"]: r for r in await asyncio.to_thread(ps_json, cfg)}  # any host's view: all of them
        assert {n: (rows[n]["host"], rows[n]["token"], rows[n]["status"]) for n in NAMES} == {
            n: (*own[n], "running") for n in NAMES}

        # --- a 4th host joins -------------------------------------------------------------------
        before = own
        joined_at = time.monotonic()
        started["h4"] = hosts("h4", cfg)
        after = await stable(rc, NAMES, want=lambda o: per_host(o).get("h4", 0) >= len(NAMES) // 4)
        moved = [n for n in NAMES if after[n][0] != before[n][0]]
        assert len(moved) <= math.ceil(len(NAMES) / 4) + 1, (before, after)
        assert max(per_host(after).values()) - min(per_host(after).values()) <= 1
        gaps = []
        for n in moved:
            last_old, first_new = watch.last_write(n, before[n][1]), watch.first_write(n, after[n][1])
            assert last_old is not None and first_new is not None
            gaps.append(first_new - last_old)
        # the normal spacing of flushes, from the exchanges that did not move, in the same run
        spacing = sorted(g for n in NAMES if n not in moved for g in watch.spacing(n, after[n][1]))
        usual = spacing[int(0.99 * (len(spacing) - 1))]
        record("cluster: 4th host joins", moved=len(moved), settled_s=time.monotonic() - joined_at,
               handover_gap_max_s=max(gaps, default=0.0), flush_spacing_p99_s=usual,
               flush_spacing_max_s=spacing[-1])
        # the old owner gives the lease back right after its final flush and the armed standby takes
        # it within a 10 ms poll: the gap is about one normal flush spacing (0.02-0.11 s here; closing
        # the sockets before the release, as before, made it 0.32-0.35 s, which this bound fails)
        assert max(gaps, default=0.0) < max(0.2, 2 * usual), (gaps, usual)

        # --- kill -9 one host: supervisor, fork server and workers at once -----------------------
        victim = next(h for h in ("h2", "h3", "h1") if per_host(after).get(h))
        lost = [n for n in NAMES if after[n][0] == victim]
        killed_at = time.monotonic()
        started[victim].signal_all(signal.SIGKILL)
        final = await stable(rc, NAMES, quiet=1.0, want=lambda o: all(o[n][0] != victim for n in lost))
        failover = []
        for n in lost:
            first = watch.first_write(n, final[n][1], after=killed_at)
            assert first is not None, n
            failover.append(first - killed_at)
        record("cluster: kill -9 of a host", exchanges=len(lost), failover_max_s=max(failover),
               lease_ttl_s=LEASE_TTL)
        assert max(failover) <= LEASE_TTL + 1.0, failover
        for n in lost:  # ticker_time of the moved exchanges advances again
            key = f"ticker_time:{n}:{sim.symbols(n.split('_')[0])[0]}"
            await _advanced(rc, key, float(await rc.get(key) or 0))
        assert watch.regressions() == []


async def test_paused_host_is_fenced_and_rejoins(tmp_path, redis_server, rc, sim, hosts):
    """SIGSTOP a host longer than the lease TTL: its exchanges move; after SIGCONT none of its late
    writes is accepted (the refused ones are counted), its workers exit, and it rejoins cleanly."""
    cfg = cluster_config(tmp_path / "c.toml", sim, redis_server.url)
    async with Watcher(rc) as watch:
        hosts("p1", cfg)
        paused = hosts("p2", cfg)
        own = await stable(rc, NAMES, want=lambda o: set(per_host(o)) == {"p1", "p2"})
        theirs = {n: tok for n, (h, tok) in own.items() if h == "p2"}
        assert theirs
        paused.signal_all(signal.SIGSTOP)
        stopped_at = time.monotonic()
        taken = await stable(rc, NAMES, quiet=0.5, timeout=LEASE_TTL + 15,
                             want=lambda o: all(o[n][0] == "p1" for n in theirs))
        takeover = max(watch.first_write(n, taken[n][1], after=stopped_at) or 1e9 for n in theirs) - stopped_at
        await asyncio.sleep(max(0.0, LEASE_TTL + 1.0 - (time.monotonic() - stopped_at)))  # paused > TTL
        paused.signal_all(signal.SIGCONT)
        resumed_at = time.monotonic()
        back = await stable(rc, NAMES, want=lambda o: per_host(o).get("p2", 0) >= 1)
        late = [e for e in watch.events if e[1] in theirs and e[2] == theirs[e[1]] and e[0] >= stopped_at + 0.5]
        assert late == [], late  # zero accepted writes by the paused host's old tokens
        refused = {k.decode(): int(v) for k, v in (await rc.hgetall(f"{NAMESPACE}:fenced")).items()}
        assert sum(refused.get(n, 0) for n in theirs) >= 1, refused  # it did try, and was refused
        assert "lease lost" in paused.text()
        assert watch.regressions() == []
        assert paused.proc.poll() is None  # the supervisor itself carried on
        for n, (h, tok) in back.items():
            if h == "p2":
                assert tok > theirs.get(n, 0)  # a fresh token, never the old one
        health = orjson.loads(await rc.get(f"{NAMESPACE}:health:{next(n for n in back if back[n][0] == 'p2')}"))
        assert health["host_id"] == "p2" and health["role"] == "owner"
        record("cluster: SIGSTOP past the lease", exchanges=len(theirs), takeover_s=takeover,
               refused_writes=sum(refused.get(n, 0) for n in theirs), rejoined_s=time.monotonic() - resumed_at)


async def _advanced(rc, key, since, timeout=10.0):  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = await rc.get(key)
        if v is not None and float(v) > since:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} did not advance past {since}")

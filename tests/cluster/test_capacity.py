"""Capacity: when the live hosts have fewer worker slots than there are exchanges, the ones left
over are shown (ps, health) as `unplaced` with the reason, and a host that joins collects them."""

from __future__ import annotations

import asyncio

from tests.cluster.helpers import NAMES, Watcher, cluster_config, owners, per_host, stable
from tests.conftest import eventually
from tests.supervisor.helpers import health, ps_json


async def test_unplaced_exchange_is_shown_then_collected_when_a_host_joins(tmp_path, redis_server, rc, sim, hosts):
    cfg = cluster_config(tmp_path / "c.toml", sim, redis_server.url, capacity=4)
    async with Watcher(rc) as watch:
        hosts("c1", cfg)
        hosts("c2", cfg)
        own = await eventually(lambda: _placed(rc, 8), 60, 0.2, "8 of 9 exchanges owned, 4 per host")
        (left,) = set(NAMES) - set(own)
        assert sorted(per_host(own).values()) == [4, 4]

        async def unplaced_row():
            rows = {r["exchange"]: r for r in await asyncio.to_thread(ps_json, cfg)}
            running = [n for n, r in rows.items() if r["status"] == "running"]
            return len(running) == 8 and rows.get(left, {}).get("status") == "unplaced" and rows

        rows = await eventually(unplaced_row, 20, 0.2, f"{left} shown as unplaced next to 8 running")
        why = rows[left]["last_error"]
        assert "no host has a free worker slot" in why and "2 live hosts" in why, why
        code, out = await asyncio.to_thread(health, cfg)
        assert code != 0 and f"{left}: unplaced" in out, out
        assert await rc.hlen(f"tickers:{left}") == 0  # nobody collects it: no writer, no stale data

        hosts("c3", cfg)  # four more slots: the left-over exchange gets an owner
        after = await stable(rc, NAMES, want=lambda o: len(o) == len(NAMES))
        assert max(per_host(after).values()) <= 4
        rows = await eventually(lambda: _all_running(cfg), 30, 0.3, "all nine running after c3 joined")
        assert rows[left]["host"] == after[left][0]
        assert watch.regressions() == []


async def _all_running(cfg):
    rows = {r["exchange"]: r for r in await asyncio.to_thread(ps_json, cfg)}
    return len(rows) == len(NAMES) and all(r["status"] == "running" for r in rows.values()) and rows


async def _placed(rc, count):
    own = await owners(rc, NAMES)
    return len(own) == count and own

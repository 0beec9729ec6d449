"""What `tickerctl ps` and `tickerctl health` show (pure), and the Redis reads behind them.

Rows merge the supervisors' view (restarts, backoff, failed) with each worker's own health
record (ticks, ages) and each exchange's lease (owning host and fencing token). All live in
Redis, so this works from any host and shows every host, also while a supervisor is down
(its workers then show as stale, then absent).
"""

from __future__ import annotations

from typing import Any

import orjson

from fullon_ticker_service import health, keys, lease
from fullon_ticker_service.config import Settings

COLUMNS = ("exchange", "pid", "status", "restarts", "uptime_s", "symbols", "ticks", "ticks_per_s",
           "last_tick_age_s", "last_error", "host", "token", "standby")
_RANK = {"running": 5, "starting": 4, "backoff": 3, "failed": 3, "stopping": 2, "standby": 1}


def merge(states: list[dict[str, Any]], leases: dict[str, str]) -> dict[str, Any] | None:
    """One supervisor view from every host's: per exchange, the entry of the host holding its lease,
    else the most telling one (running > starting > backoff/failed > stopping > standby).
    With no live host, the most recent stopped state (so `ps` says the service stopped)."""
    live = [st for st in states if not st.get("stopped")]
    if not live:
        return max(states, key=lambda st: float(st.get("updated_at") or 0.0)) if states else None
    exchanges: dict[str, Any] = {}
    standby: dict[str, list[str]] = {}
    for st in sorted(live, key=lambda st: str(st.get("host_id") or st.get("host") or "")):
        host = str(st.get("host_id") or st.get("host") or "")
        for name, ex in (st.get("exchanges") or {}).items():
            ex = {**ex, "host_id": ex.get("host_id") or host}
            if ex.get("status") == "standby":
                standby.setdefault(name, []).append(ex["host_id"])
            owner = lease.holder(leases[name])[1] if name in leases else None

            def rank(e: dict[str, Any], owner: str | None = owner) -> tuple[bool, int]:
                return e["host_id"] == owner, _RANK.get(e.get("status", ""), 0)

            if name not in exchanges or rank(ex) > rank(exchanges[name]):
                exchanges[name] = ex
    for name, hosts in standby.items():
        exchanges[name]["standby"] = hosts
    return {"host": ",".join(sorted(str(st.get("host_id") or st.get("host")) for st in live)),
            "hosts": sorted(str(st.get("host_id") or st.get("host")) for st in live),
            "updated_at": max(float(st.get("updated_at") or 0.0) for st in live), "stopped": False,
            "unplaced": sorted({e for st in live for e in st.get("unplaced") or []}), "exchanges": exchanges,
            "leases": leases}


def rows(supervisor: dict[str, Any] | None, records: dict[str, bytes | None], now: float,
         interval: float) -> list[dict[str, Any]]:
    sup_ex: dict[str, Any] = (supervisor or {}).get("exchanges", {}) if supervisor else {}
    sup_live = bool(supervisor) and not supervisor.get("stopped")  # type: ignore[union-attr]
    # in the catalog but no live host has a free worker slot for it: nobody collects it
    unplaced = set((supervisor or {}).get("unplaced") or []) if sup_live else set()
    out = []
    for name in sorted(set(sup_ex) | set(records) | unplaced):
        h = health.decode(name, records.get(name), now, interval)
        sv = sup_ex.get(name, {})
        if name in unplaced and not sv and h.status in ("absent", "stopped"):
            sv = {"status": "unplaced", "last_error": f"no host has a free worker slot "
                  f"(cluster.capacity; {len((supervisor or {}).get('hosts') or [])} live hosts)"}
        status = h.status
        if status == health.ERROR:
            status = "stale"  # the worker runs but cannot get data: what matters to a reader
        if sv.get("status") in ("backoff", "failed", "stopping", "stopped", "standby", "unplaced"):
            status = sv["status"]
        elif status == "absent":
            status = sv.get("status", "stopped") if sup_live else "stopped"
        out.append({
            "exchange": name,
            "pid": h.pid if h.status not in ("absent", "stopped") else sv.get("pid"),
            "status": status,
            "restarts": int(sv.get("restarts", 0)),
            "uptime_s": round(h.uptime_s + max(0.0, now - h.updated_at), 1) if h.updated_at else 0.0,
            "symbols": h.symbols or int(sv.get("symbols", 0)),
            "ticks": h.ticks,
            "ticks_per_s": h.ticks_per_s,
            "last_tick_age_s": None if h.last_tick_age_s is None else round(h.last_tick_age_s, 3),
            "last_error": sv.get("last_error") or h.last_error,
            "host": _owner(name, supervisor, sv, h),
            "token": _token(name, supervisor, sv, h),
            "standby": ",".join(sv.get("standby") or []),
        })
    return out


def _owner(name: str, supervisor: dict[str, Any] | None, sv: dict[str, Any], h: health.WorkerHealth) -> str:
    value = ((supervisor or {}).get("leases") or {}).get(name)
    if value:
        return lease.holder(value)[1]
    raw = h.raw or {}
    return str(raw.get("host_id") or sv.get("host_id") or h.host or (supervisor or {}).get("host", ""))


def _token(name: str, supervisor: dict[str, Any] | None, sv: dict[str, Any], h: health.WorkerHealth) -> int | None:
    value = ((supervisor or {}).get("leases") or {}).get(name)
    if value:
        return lease.token(value)
    got = sv.get("token") or (h.raw or {}).get("token")
    return int(got) if got else None


def problems(table: list[dict[str, Any]], supervisor: dict[str, Any] | None, max_age: float) -> list[str]:
    """One line per reason the service is not healthy; empty = healthy."""
    out = []
    if not supervisor or supervisor.get("stopped"):
        out.append("no supervisor is running for this namespace")
    if not table:
        out.append("no exchange is being collected")
    for r in table:
        if r["status"] != "running":
            why = f": {r['last_error']}" if r["last_error"] else ""
            out.append(f"{r['exchange']}: {r['status']}{why}")
        elif r["last_tick_age_s"] is None:
            out.append(f"{r['exchange']}: no tick received yet")
        elif r["last_tick_age_s"] > max_age:
            out.append(f"{r['exchange']}: last tick {r['last_tick_age_s']}s ago (limit {max_age:g}s)")
    return out


def collect(settings: Settings) -> tuple[dict[str, Any] | None, dict[str, bytes | None]]:
    """Read the supervisor state and every health record of the namespace (sync, for the CLI)."""
    from fullon_ticker_service.redis_client import make_sync_redis

    ns = settings.service.namespace
    r = make_sync_redis(settings.redis, socket_timeout=3.0)
    try:
        state_keys = list(r.scan_iter(keys.supervisor_state_pattern(ns), count=500))
        states = [orjson.loads(raw) for raw in (r.mget(state_keys) if state_keys else []) if raw]
        names = [k.decode().rsplit(":", 1)[1] for k in r.scan_iter(keys.health_pattern(ns), count=500)]
        records = dict(zip(names, r.mget([keys.health(ns, n) for n in names]) if names else [], strict=True))
        every = sorted(set(names) | {e for st in states for e in st.get("exchanges") or {}})
        leases = lease.owners(r, ns, every)
    finally:
        r.close()
    return merge(states, leases), records


def table_text(table: list[dict[str, Any]]) -> str:
    head = ("EXCHANGE", "HOST", "TOKEN", "PID", "STATUS", "RESTARTS", "UPTIME", "SYMBOLS", "TICKS", "TICKS/S", "AGE",
            "LAST ERROR")
    lines = [head]
    for r in table:
        age = "-" if r["last_tick_age_s"] is None else f"{r['last_tick_age_s']:.1f}s"
        lines.append((r["exchange"], r.get("host") or "-", str(r.get("token") or "-"), str(r["pid"] or "-"),
                      r["status"], str(r["restarts"]), _dur(r["uptime_s"]), str(r["symbols"]), str(r["ticks"]),
                      f"{r['ticks_per_s']:.1f}", age, (r["last_error"] or "")[:60]))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in lines)


def _dur(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

"""What `tickerctl ps` and `tickerctl health` show (pure), and the Redis reads behind them.

Rows merge the supervisor's view (restarts, backoff, failed) with each worker's own health
record (ticks, ages). Both live in Redis, so this works from any host, also while the
supervisor is down (workers then show as stale, then absent).
"""

from __future__ import annotations

from typing import Any

import orjson

from fullon_ticker_service import health, keys
from fullon_ticker_service.config import Settings

COLUMNS = ("exchange", "pid", "status", "restarts", "uptime_s", "symbols", "ticks", "ticks_per_s",
           "last_tick_age_s", "last_error", "host")


def rows(supervisor: dict[str, Any] | None, records: dict[str, bytes | None], now: float,
         interval: float) -> list[dict[str, Any]]:
    sup_ex: dict[str, Any] = (supervisor or {}).get("exchanges", {}) if supervisor else {}
    sup_live = bool(supervisor) and not supervisor.get("stopped")  # type: ignore[union-attr]
    out = []
    for name in sorted(set(sup_ex) | set(records)):
        h = health.decode(name, records.get(name), now, interval)
        sv = sup_ex.get(name, {})
        status = h.status
        if status == health.ERROR:
            status = "stale"  # the worker runs but cannot get data: what matters to a reader
        if sv.get("status") in ("backoff", "failed", "stopping", "stopped"):
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
            "host": h.host or (supervisor or {}).get("host", ""),
        })
    return out


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
    import redis

    ns = settings.service.namespace
    r = redis.Redis.from_url(settings.redis.dsn(), socket_connect_timeout=2, socket_timeout=3)
    try:
        raw = r.get(keys.supervisor_state(ns))
        names = [k.decode().rsplit(":", 1)[1] for k in r.scan_iter(keys.health_pattern(ns), count=500)]
        records = dict(zip(names, r.mget([keys.health(ns, n) for n in names]) if names else [], strict=True))
    finally:
        r.close()
    return (orjson.loads(raw) if raw else None), records


def table_text(table: list[dict[str, Any]]) -> str:
    head = ("EXCHANGE", "PID", "STATUS", "RESTARTS", "UPTIME", "SYMBOLS", "TICKS", "TICKS/S", "AGE", "LAST ERROR")
    lines = [head]
    for r in table:
        age = "-" if r["last_tick_age_s"] is None else f"{r['last_tick_age_s']:.1f}s"
        lines.append((r["exchange"], str(r["pid"] or "-"), r["status"], str(r["restarts"]), _dur(r["uptime_s"]),
                      str(r["symbols"]), str(r["ticks"]), f"{r['ticks_per_s']:.1f}", age, (r["last_error"] or "")[:60]))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in lines)


def _dur(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

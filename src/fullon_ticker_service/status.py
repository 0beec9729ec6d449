"""What `tickerctl ps` and `tickerctl health` show (pure), and the Redis reads behind them.

Rows merge the supervisors' view (restarts, backoff, failed) with each worker's own health
record (its judged status, coverage, write age, ticks) and each exchange's lease (owning host and
fencing token). All live in Redis, so this works from any host and shows every host, also while a
supervisor is down (its workers then show as stale, then absent).

A row's `status` is the worker's judgement (health.judge: `running` only while fresh values reach
Redis for every symbol) unless the supervisor knows better (backoff, failed, stopping, standby...).
`problems` turns rows into one line per problem, naming the exchange, the symbols and the cause.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from fullon_ticker_service import health, keys, lease
from fullon_ticker_service.config import Settings

COLUMNS = ("exchange", "pid", "status", "detail", "restarts", "uptime_s", "symbols", "cover", "write_age_s",
           "ticks", "ticks_per_s", "last_tick_age_s", "last_error", "last_error_age_s", "host", "token", "standby")
_RANK = {"running": 5, "starting": 4, "backoff": 3, "failed": 3, "stopping": 2, "standby": 1}
_SUPERVISOR_WORDS = ("backoff", "failed", "stopping", "stopped", "standby", "unplaced")
NAMED = 5  # symbols named in a problem line (the rest are counted)


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
    hosts = sorted(str(st.get("host_id") or st.get("host")) for st in live)
    return {"host": ",".join(hosts), "hosts": hosts,
            "pid": ",".join(str(st.get("pid")) for st in sorted(live, key=lambda st: str(st.get("host_id"))))
            if len(live) > 1 else live[0].get("pid"),
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
        status, detail = h.status, h.detail
        if sv.get("status") in _SUPERVISOR_WORDS:
            status, detail = sv["status"], ""
        elif status == "absent":
            status, detail = (sv.get("status", "stopped") if sup_live else "stopped"), ""
        live = h.status not in ("absent", "stopped", "stale")
        last_error = sv.get("last_error") or h.last_error
        error_at = sv.get("last_error_at") if sv.get("last_error") else h.last_error_at
        out.append({
            "exchange": name,
            "pid": h.pid if h.status not in ("absent", "stopped") else sv.get("pid"),
            "status": status,
            "detail": detail,
            "restarts": int(sv.get("restarts", 0)),
            "uptime_s": round(h.uptime_s + max(0.0, now - h.updated_at), 1) if h.updated_at else 0.0,
            "symbols": h.symbols or int(sv.get("symbols", 0)),
            "cover": list(h.coverage) if h.coverage and live else None,
            "write_age_s": None if h.write_age_s is None else round(h.write_age_s, 3),
            "ticks": h.ticks,
            "ticks_per_s": h.ticks_per_s,
            "last_tick_age_s": None if h.last_tick_age_s is None else round(h.last_tick_age_s, 3),
            "last_error": last_error,
            "last_error_age_s": round(now - error_at, 1) if last_error and error_at else None,
            "host": _owner(name, supervisor, sv, h),
            "token": _token(name, supervisor, sv, h),
            "standby": ",".join(sv.get("standby") or []),
            "_record": h.raw if live else None,  # for `problems`; dropped from ps output
        })
    return out


def public(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as `ps --json` prints them."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in table]


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


# --- problems: one line each, naming the exchange, the symbols and the cause ------------------------
def named(symbols: list[Any], count: int) -> str:
    """`A, B, C (+4 more)` from the record's first few and the total count."""
    shown = [s[0] if isinstance(s, list) else s for s in symbols[:NAMED]]
    more = count - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _why(row: dict[str, Any]) -> str:
    if not row["last_error"]:
        return ""
    age = f" ({row['last_error_age_s']:.0f}s ago)" if row.get("last_error_age_s") is not None else ""
    return f": {row['last_error']}{age}"


def row_problems(row: dict[str, Any], max_age: float, min_coverage: float) -> list[str]:
    """Why one row is not healthy (empty: it is)."""
    ex, st, rec = row["exchange"], row["status"], row.get("_record") or {}
    out = []
    frozen = rec.get("frozen") or []
    if frozen:
        s, t = frozen[0]
        out.append(f"{ex}: {named(frozen, int(rec.get('frozen_count') or len(frozen)))} frozen: Redis holds a "
                   f"ticker_time {t - time.time():+.0f}s in the future ({t}), so no newer value is accepted "
                   f"(delete ticker_time:{ex}:{s} once the writer of that value is found)")
    if st == health.REDIS_ERROR:
        out.append(f"{ex}: Redis refuses our writes ({row['detail']}: {rec.get('redis_write_error') or '?'}); "
                   f"values in Redis are {_age(row['write_age_s'])} old")
    elif st == health.CLOCK_SKEW:
        off = float(rec.get("clock_offset_s") or 0.0)
        if off > 0:
            out.append(f"{ex}: clock-skew {row['detail']}: the exchange's timestamps run {off:.0f}s ahead of this "
                       f"host, so its ticks are rejected as from the future (max_skew); check this host's clock (NTP)")
        else:
            out.append(f"{ex}: clock-skew {row['detail']}: the exchange's timestamps run {-off:.0f}s behind this "
                       f"host; values are stored with their true, old time (max_behind); check this host's clock")
    elif st == health.NO_DATA:
        got = "no tick received yet" if row["last_tick_age_s"] is None else \
            (f"ticks arrive (last {row['last_tick_age_s']:.1f}s ago) but none was stored; "
             f"rejected: {rec.get('rejected')}")
        out.append(f"{ex}: no-data: nothing written since the start {row['uptime_s']:.0f}s ago ({got}){_why(row)}")
    elif st == health.DEGRADED or (st == health.RUNNING and rec.get("coverage") and
                                   rec["coverage"][0] < rec["coverage"][1]):
        fresh, wanted = rec.get("coverage") or [0, 0]
        if wanted and fresh / wanted < min_coverage:
            parts = []
            if rec.get("stale_count"):
                stale = rec.get("stale_symbols") or []
                parts.append(f"not written for more than {rec.get('symbol_stale_after', 0):g}s: "
                             f"{named(stale, int(rec['stale_count']))}")
            if rec.get("never_written_count"):
                parts.append(f"never written: {named(rec.get('never_written') or [], int(rec['never_written_count']))}")
            out.append(f"{ex}: degraded, {fresh}/{wanted} symbols fresh; {'; '.join(parts) or 'see ps --symbols'}")
    elif st != health.RUNNING:
        detail = f" {row['detail']}" if row.get("detail") else ""
        out.append(f"{ex}: {st}{detail}{_why(row)}")
    if st in (health.RUNNING, health.DEGRADED) and row["write_age_s"] is not None and row["write_age_s"] > max_age:
        out.append(f"{ex}: last value written {row['write_age_s']:.1f}s ago (limit {max_age:g}s)")
    if st == health.RUNNING and row["write_age_s"] is None and not out:
        out.append(f"{ex}: no value written yet")
    return out


def _age(seconds: float | None) -> str:
    return "never written" if seconds is None else f"{seconds:.0f}s"


def problems(table: list[dict[str, Any]], supervisor: dict[str, Any] | None, max_age: float,
             min_coverage: float = 1.0, redis_problem: str = "") -> list[str]:
    """One line per reason the service is not healthy; empty = healthy. `redis_problem`: why Redis
    refuses writes while answering reads (diagnose()), so a missing record gets its real cause."""
    out = []
    if redis_problem:
        out.append(f"Redis refuses writes: {redis_problem}")
    if not supervisor or supervisor.get("stopped"):
        out.append("no supervisor state in Redis (it cannot be written: see above)" if redis_problem
                   else "no supervisor is running for this namespace")
    if not table:
        out.append("no exchange has a health record (they cannot be written: see above)" if redis_problem
                   else "no exchange is being collected")
    for r in table:
        out += row_problems(r, max_age, min_coverage)
    return out


# --- the reads ----------------------------------------------------------------------------------
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


PROBE_TIMEOUT = 1.0  # s: a write Redis does not answer within this is held back


def diagnose(settings: Settings) -> str:
    """Why Redis refuses writes while it answers reads ("" when it takes them): full under
    `noeviction`, a read-only replica (after a failover, or the wrong host), or writes held back
    (CLIENT PAUSE WRITE, as during a failover): then no health record can be refreshed and they
    expire, which must not read as "nothing is running". The last is found by writing a probe key."""
    from redis.exceptions import RedisError

    from fullon_ticker_service.redis_client import error_kind, error_text, make_sync_redis

    r = make_sync_redis(settings.redis, socket_timeout=3.0)
    try:
        mem, repl = r.info("memory"), r.info("replication")
    finally:
        r.close()
    used, limit = int(mem.get("used_memory") or 0), int(mem.get("maxmemory") or 0)
    policy = str(mem.get("maxmemory_policy") or "")
    if limit and used >= limit and policy == "noeviction":
        return (f"OOM: used_memory {used / 2**20:.1f} MiB >= maxmemory {limit / 2**20:.1f} MiB with "
                f"maxmemory-policy noeviction (raise maxmemory or free memory)")
    if repl.get("role") == "slave":
        return (f"READONLY: this is a replica of {repl.get('master_host')}:{repl.get('master_port')} "
                f"(point REDIS_* at the master, or use REDIS_SENTINELS)")
    probe = make_sync_redis(settings.redis, socket_timeout=PROBE_TIMEOUT)
    try:
        probe.set(keys.write_probe(settings.service.namespace), "1", px=1000)
    except RedisError as exc:
        if error_kind(exc) == "timeout":
            return (f"writes get no answer within {PROBE_TIMEOUT:g}s while reads do (CLIENT PAUSE WRITE, "
                    f"e.g. a failover in progress?): health records cannot be refreshed and expire")
        return f"{error_kind(exc)}: {error_text(exc)}"
    finally:
        probe.close()
    return ""


def namespaces(settings: Settings) -> list[str]:
    """The namespaces that have health records or supervisor states on this Redis (for an empty `ps`)."""
    from fullon_ticker_service.redis_client import make_sync_redis

    r = make_sync_redis(settings.redis, socket_timeout=3.0)
    try:
        found = {k.decode().split(":health:", 1)[0] for k in r.scan_iter("*:health:*", count=1000)}
        found |= {k.decode().split(":supervisor:state:", 1)[0] for k in r.scan_iter("*:supervisor:state:*",
                                                                                      count=1000)}
    finally:
        r.close()
    return sorted(found)


def symbol_rows(settings: Settings, exchange: str, now: float) -> list[dict[str, Any]] | None:
    """`ps --symbols EXCHANGE`: one row per symbol from the owning worker's table (None: no table)."""
    from fullon_ticker_service.redis_client import make_sync_redis

    r = make_sync_redis(settings.redis, socket_timeout=3.0)
    try:
        raw = r.get(keys.symbols(settings.service.namespace, exchange))
    finally:
        r.close()
    if raw is None:
        return None
    doc = orjson.loads(raw)
    aged = max(0.0, now - float(doc.get("updated_at") or now))
    out = []
    for symbol, (at, t, streams, rejects, refused) in sorted((doc.get("symbols") or {}).items()):
        out.append({"symbol": symbol, "written_age_s": None if at is None else round(now - at, 3),
                    "exchange_time_age_s": None if t is None else round(now - t, 3), "streams": streams or "-",
                    "rejects": rejects, "frozen_by": refused, "table_age_s": round(aged, 3)})
    return out


# --- text -----------------------------------------------------------------------------------------
def table_text(table: list[dict[str, Any]]) -> str:
    head = ("EXCHANGE", "HOST", "TOKEN", "PID", "STATUS", "COVER", "WRITE AGE", "RESTARTS", "UPTIME", "TICKS/S",
            "LAST ERROR")
    lines = [head]
    for r in table:
        status = r["status"] + (f" {r['detail']}" if r["detail"] and r["status"] not in ("running", "degraded",
                                                                                          "starting") else "")
        cover = f"{r['cover'][0]}/{r['cover'][1]}" if r.get("cover") else "-"
        err = (r["last_error"] or "")[:60]
        if err and r.get("last_error_age_s") is not None:
            err = f"({_dur(r['last_error_age_s'])} ago) {err}"
        lines.append((r["exchange"], r.get("host") or "-", str(r.get("token") or "-"), str(r["pid"] or "-"),
                      status, cover, "-" if r["write_age_s"] is None else f"{r['write_age_s']:.1f}s",
                      str(r["restarts"]), _dur(r["uptime_s"]), f"{r['ticks_per_s']:.1f}", err))
    return _columns(lines)


def symbols_text(table: list[dict[str, Any]]) -> str:
    lines = [("SYMBOL", "WRITTEN", "EXCHANGE TIME", "STREAMS", "REJECTS", "NOTE")]
    for r in table:
        note = f"frozen: Redis holds {r['frozen_by']}" if r["frozen_by"] else ""
        lines.append((r["symbol"], "never" if r["written_age_s"] is None else f"{r['written_age_s']:.1f}s ago",
                      "-" if r["exchange_time_age_s"] is None else f"{r['exchange_time_age_s']:.1f}s ago",
                      r["streams"], str(r["rejects"]), note))
    return _columns(lines)


def _columns(lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in lines)


def _dur(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

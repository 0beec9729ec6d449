"""Ownership across hosts: host heartbeats, per-exchange leases and fencing tokens, as Redis scripts.

Every host's supervisor registers itself (`BEAT`, each tick) and reads the live hosts in the same
round trip. An exchange may be written by one worker at a time: the holder of its lease, whose
value is `{token}:{host_id}:{pid}`. The token comes from the exchange's fencing counter, which is
incremented on every acquisition and never expires, so a newer owner always has a larger token.

Every write the worker makes (ticks, its health record, fullon's process records) goes through a
script that first checks the lease (`HELD`): Redis runs scripts one at a time and the lease holds
one value, so at any instant at most one worker's writes are accepted. A worker paused past its
lease (SIGSTOP, GC, a partition) finds another value there when it wakes and writes nothing.

`HELD` also re-takes a lease that expired while nobody else acquired it (the counter still equals,
or is below, our token: no one can hold a newer one). That keeps a worker writing through a Redis
restart that lost every key, or a renewal delayed past the TTL, without a restart or a gap.

Every script has one builder here returning a `Call` (its EVAL arguments and how to read the
answer), so the supervisor's blocking client and a worker's asyncio client send the same thing:
`run(r, call)` / `await arun(r, call)`. Script calls use EVAL (a few per second per host); the hot
flush (worker/writer.py) uses EVALSHA.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from fullon_ticker_service import keys

HELD = """
local function held(lease, fence, value, n, ttl)
  local cur = redis.call('GET', lease)
  if cur == value then return true end
  if cur then return false end
  local f = tonumber(redis.call('GET', fence) or '0')
  if f > n then return false end
  if f < n then redis.call('SET', fence, n) end
  redis.call('SET', lease, value, 'PX', ttl)
  return true
end
"""

# KEYS: hosts hash, alive zset. ARGV: host id, record JSON, instance, ttl ms, force ('1' takes the id over)
# -> {1, id, record, id, record, ...} (the live hosts), or {0, record} when a live instance holds the id
BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, h in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], h)
  redis.call('HDEL', KEYS[1], h)
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and ARGV[5] ~= '1' then
  local ok, doc = pcall(cjson.decode, cur)
  if ok and type(doc) == 'table' and doc.instance ~= ARGV[3] then return {0, cur} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
local out = {1}
for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local rec = redis.call('HGET', KEYS[1], h)
  if rec then table.insert(out, h); table.insert(out, rec) end
end
return out
"""

# KEYS: hosts hash, alive zset. ARGV: host id, instance. Leave only if the id is still ours.
LEAVE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if ok and type(doc) == 'table' and doc.instance == ARGV[2] then
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
    return 1
  end
end
return 0
"""

# KEYS: lease, fence. ARGV: host id, pid, ttl ms, the value we may replace ('' = only a free lease)
# -> {1, new value} or {0, current holder}
ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[4] then return {0, cur} end
local n = redis.call('INCR', KEYS[2])
local v = n .. ':' .. ARGV[1] .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
return {1, v}
"""

# KEYS: lease. ARGV: value. Compare-and-delete.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The worker's renewal, fused with its health report so a fenced worker cannot overwrite the new
# owner's records either. KEYS: lease, fence, health, process data, process active, components,
# refused-writes hash, per-symbol table. ARGV: value, token, ttl ms, health JSON, health px, process
# JSON, process ex, process id, iso now, exchange, '1' when stopped (leave fullon's active lists),
# per-symbol table JSON.
# -> 1, or 0 when the lease is lost (counted like a refused flush).
REPORT = HELD + """
if not held(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3]) then
  redis.call('HINCRBY', KEYS[7], ARGV[10], 1)
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
redis.call('SET', KEYS[8], ARGV[12], 'PX', ARGV[5])
redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
if ARGV[11] == '1' then
  redis.call('HDEL', KEYS[5], ARGV[8])
  redis.call('HDEL', KEYS[6], ARGV[10])
else
  redis.call('HSET', KEYS[5], ARGV[8], ARGV[9])
  redis.call('HSET', KEYS[6], ARGV[10], ARGV[8])
end
return 1
"""


class Call(NamedTuple):
    """One script call: `r.eval(*call.argv)`, then `call.parse(answer)`."""

    argv: tuple[Any, ...]
    parse: Callable[[Any], Any]


def run(r: Any, call: Call) -> Any:
    """Send a call with a blocking client (the supervisor, `tickerctl`)."""
    return call.parse(r.eval(*call.argv))


async def arun(r: Any, call: Call) -> Any:
    """Send a call with an asyncio client (a worker)."""
    return call.parse(await r.eval(*call.argv))


def token(value: str) -> int:
    """The fencing token of a lease value `{token}:{host_id}:{pid}` (0 when unparsable)."""
    head = value.split(":", 1)[0]
    return int(head) if head.isdigit() else 0


def holder(value: str) -> tuple[int, str, int]:
    """(token, host id, pid) of a lease value."""
    n, _, rest = value.partition(":")
    host, _, pid = rest.rpartition(":")
    return (int(n) if n.isdigit() else 0), host, (int(pid) if pid.isdigit() else 0)


# --- the calls ------------------------------------------------------------------------------------
def beat(ns: str, host_id: str, record: dict[str, Any], ttl_ms: int, force: bool = False) -> Call:
    """Register/renew this host. -> (True, live hosts id -> record) or (False, {id: holder's record})."""
    def parse(out: Any) -> tuple[bool, dict[str, dict[str, Any]]]:
        if int(out[0]) == 0:
            return False, {host_id: _record(out[1])}
        return True, {_text(out[i]): _record(out[i + 1]) for i in range(1, len(out) - 1, 2)}

    return Call((BEAT, 2, keys.hosts(ns), keys.hosts_alive(ns), host_id, orjson.dumps(record), record["instance"],
                 ttl_ms, "1" if force else "0"), parse)


def leave(ns: str, host_id: str, instance: str) -> Call:
    """Take this host out of the live set, if the id is still ours. -> True when it was."""
    return Call((LEAVE, 2, keys.hosts(ns), keys.hosts_alive(ns), host_id, instance), lambda out: bool(int(out)))


def acquire(ns: str, exchange: str, host_id: str, pid: int, ttl_ms: int, replace: str = "") -> Call:
    """-> (True, our new lease value) or (False, the current holder's value)."""
    def parse(out: Any) -> tuple[bool, str]:
        ok, value = out
        return bool(int(ok)), _text(value)

    return Call((ACQUIRE, 2, keys.lease(ns, exchange), keys.fence(ns, exchange), host_id, pid, ttl_ms, replace), parse)


def release(ns: str, exchange: str, value: str) -> Call:
    """Compare-and-delete. -> True when the lease was ours and is gone."""
    return Call((RELEASE, 1, keys.lease(ns, exchange), value), lambda out: bool(int(out)))


def report(ns: str, exchange: str, value: str, ttl_ms: int, health_json: bytes, health_px: int,
           process_json: bytes, process_id: str, now_iso: str, final: bool, symbols_json: bytes = b"{}") -> Call:
    """The owner's renewal fused with its health, per-symbol and fullon process records.
    -> False when fenced."""
    ks = (keys.lease(ns, exchange), keys.fence(ns, exchange), keys.health(ns, exchange),
          keys.process_data(process_id), keys.process_active(), keys.PROCESS_COMPONENTS, keys.fenced(ns),
          keys.symbols(ns, exchange))
    return Call((REPORT, len(ks), *ks, value, token(value), ttl_ms, health_json, health_px, process_json,
                 keys.PROCESS_DATA_TTL, process_id, now_iso, exchange, "1" if final else "0", symbols_json),
                lambda out: bool(int(out)))


def owners(r: Any, ns: str, exchanges: list[str]) -> dict[str, str]:
    """exchange -> current lease value, for the exchanges that have one (blocking client)."""
    if not exchanges:
        return {}
    values = r.mget([keys.lease(ns, e) for e in exchanges])
    return {e: _text(v) for e, v in zip(exchanges, values, strict=True) if v}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _record(raw: Any) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return doc if isinstance(doc, dict) else {}

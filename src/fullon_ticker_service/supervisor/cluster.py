"""This host among the others, through Redis: membership, lease holders, capacities, acquiring and
releasing leases, the Redis-outage marker, and the state `tickerctl ps` reads.

Every call here is a short blocking Redis round trip (lease.py's scripts); a failure (unreachable,
or answering but refusing writes: OOM, READONLY) is said once with its kind, summarised while it
lasts, and said once more when Redis has worked for a second again (outage.py: no flapping lines);
the caller carries on with the view it had.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import redis as redis_sync
from loguru import logger

from fullon_ticker_service import health, keys, lease
from fullon_ticker_service.config import Settings
from fullon_ticker_service.outage import Outage
from fullon_ticker_service.redis_client import REFUSES_WRITES, error_kind, error_text, make_sync_redis
from fullon_ticker_service.supervisor.pidlock import AlreadyRunning, host_id, pid_alive

HANDOVER_POLL = 0.01  # how often a lease our standby waits for is looked at (one MGET)
STATE_TTL = 3.0  # seconds a supervisor state record lives without refresh


class Cluster:
    def __init__(self, settings: Settings, redis: Any = None) -> None:
        self.settings = settings
        self.redis = redis if redis is not None else make_sync_redis(settings.redis)
        self.ns = settings.service.namespace
        self.host = socket.gethostname()
        self.host_id = host_id(settings)
        self.instance = f"{self.host}:{os.getpid()}:{time.time():.6f}"
        self.started_at = time.time()
        self.log = logger.bind(component="supervisor")
        self.live_hosts: dict[str, dict[str, Any]] = {}  # host id -> its record, from the last beat
        self.owners: dict[str, str] = {}  # exchange -> lease value, read every tick
        self.ok = False  # this tick's view of hosts and leases is current
        self.outage = Outage("Redis", settle=1.0)

    def _record(self) -> dict[str, Any]:
        return {"instance": self.instance, "hostname": self.host, "pid": os.getpid(),
                "capacity": self.settings.cluster.capacity, "started_at": self.started_at,
                "updated_at": time.time()}

    def _beat(self, force: bool = False) -> tuple[bool, dict[str, dict[str, Any]]]:
        return lease.run(self.redis, lease.beat(self.ns, self.host_id, self._record(),
                                                int(self.settings.cluster.host_ttl * 1000), force))

    def join(self) -> None:
        """Register this host id. Another live supervisor using the id refuses us, unless it is a dead
        process of this machine (killed before it could leave). With Redis unreachable we start and
        register once Redis answers (see `heartbeat`)."""
        try:
            ok, found = self._beat()
            if not ok:
                other = found[self.host_id]
                if other.get("hostname") == self.host and not pid_alive(int(other.get("pid") or 0)):
                    ok, found = self._beat(force=True)
        except (redis_sync.RedisError, OSError) as exc:
            self.log.warning(f"cannot register host {self.host_id!r} (Redis: {one_line(exc)}); registering "
                             f"once Redis answers")
            return
        if not ok:
            other = found[self.host_id]
            raise AlreadyRunning(f"another supervisor (pid {other.get('pid')} on {other.get('hostname')}) already "
                                 f"runs as host {self.host_id!r} for namespace {self.ns!r} on this Redis; not "
                                 f"starting (give each host its own cluster.host_id / TICKER_HOST_ID)")
        self.live_hosts = found

    def heartbeat(self, exchanges: list[str]) -> bool | None:
        """Renew this host, read the live hosts and these exchanges' lease holders (one view per tick).
        -> True: `ok`, current view; None: Redis unreachable; False: another supervisor took our id."""
        self.ok = False
        try:
            ok, found = self._beat()
            owners = lease.owners(self.redis, self.ns, exchanges)
        except (redis_sync.RedisError, OSError) as exc:
            self.unreachable(exc)
            return None
        if self.outage.active and (line := self.outage.succeeded(time.monotonic())):
            self.log.info(line)
        if not ok:
            return False
        self.live_hosts, self.owners, self.ok = found, owners, True
        return True

    def unreachable(self, exc: BaseException) -> None:
        kind = error_kind(exc)
        line = self.outage.failed(kind, error_text(exc), time.monotonic())
        if line:
            what = "refuses writes" if kind in REFUSES_WRITES else "unreachable"
            self.log.error(f"{line}: Redis {what}; workers keep collecting, but our leases lapse after "
                           f"{self.settings.cluster.lease_ttl:g}s without renewal and other hosts may then "
                           f"take our exchanges over")

    def capacities(self) -> dict[str, int]:
        out = {h: int(rec.get("capacity") or 0) for h, rec in self.live_hosts.items()}
        out.setdefault(self.host_id, self.settings.cluster.capacity)
        return out

    def holders(self) -> dict[str, str]:
        """exchange -> host id of its current lease holder."""
        return {ex: lease.holder(v)[1] for ex, v in self.owners.items()}

    def acquire(self, exchange: str, ours: str) -> str:
        """Take the exchange's lease if it is free, or held by an earlier instance of this host id
        (which is dead: we hold the id). -> our new lease value, or '' when someone else holds it."""
        cur = self.owners.get(exchange, "")
        replace = cur if cur and lease.holder(cur)[1] == self.host_id and cur != ours else ""
        try:
            ok, value = lease.run(self.redis, lease.acquire(self.ns, exchange, self.host_id, os.getpid(),
                                                            int(self.settings.cluster.lease_ttl * 1000), replace))
        except (redis_sync.RedisError, OSError) as exc:
            self.log.warning(f"{exchange}: lease not acquired (Redis: {one_line(exc)})")
            return ""
        self.owners[exchange] = value
        if not ok:
            return ""
        self.log.info(f"{exchange}: acquired the lease (token {lease.token(value)})")
        return value

    def release(self, exchange: str, value: str) -> None:
        if not value:
            return
        with contextlib.suppress(redis_sync.RedisError, OSError):
            if lease.run(self.redis, lease.release(self.ns, exchange, value)):
                self.log.info(f"{exchange}: released the lease (token {lease.token(value)})")
        if self.owners.get(exchange) == value:
            del self.owners[exchange]

    def forget(self, exchange: str, symbols: tuple[str, ...]) -> bool:
        """The exchange left the catalog: delete its prices (`tickers:{exchange}`, every
        `ticker_time:{exchange}:*`), so fullon readers do not keep returning a frozen price. Done under
        the exchange's lease, so no late write of a worker recreates them. -> False while another
        holder still has the lease (try again later)."""
        try:
            got, value = lease.run(self.redis, lease.acquire(self.ns, exchange, self.host_id, os.getpid(),
                                                             int(self.settings.cluster.lease_ttl * 1000)))
            if not got:
                return False
            try:
                names = set(symbols) | {k.decode() for k in self.redis.hkeys(keys.tickers(exchange))}
                stale = {keys.ticker_time(exchange, s) for s in names}
                stale |= {k.decode() for k in self.redis.scan_iter(keys.ticker_time(exchange, "*"), count=1000)}
                self.redis.delete(keys.tickers(exchange), *stale)
            finally:
                lease.run(self.redis, lease.release(self.ns, exchange, value))
        except (redis_sync.RedisError, OSError) as exc:
            self.unreachable(exc)
            return False
        self.log.info(f"{exchange}: left the catalog; deleted its tickers ({len(names)} symbols)")
        return True

    def orphans(self, catalog: Iterable[str], older_than: Callable[[str], float]) -> list[str] | None:
        """Exchanges this namespace collected once (their fence key never expires) that are not in
        `catalog`, still have prices in Redis and none written since `older_than(exchange)` (epoch s):
        removed while no supervisor ran, so `forget` was never called for them. An exchange someone
        still writes (another host's subset, another deployment) is not one. -> None when Redis
        cannot tell now."""
        prefix = keys.fence(self.ns, "")
        try:
            once = {k.decode()[len(prefix):] for k in self.redis.scan_iter(keys.fence(self.ns, "*"), count=1000)}
            out = []
            for ex in sorted(once - set(catalog)):
                times = list(self.redis.scan_iter(keys.ticker_time(ex, "*"), count=1000))
                if not times and not self.redis.exists(keys.tickers(ex)):
                    continue  # nothing left: forgotten already
                newest = max((_epoch(t) for t in self.redis.mget(times)), default=0.0)
                if newest < older_than(ex):
                    out.append(ex)
            return out
        except (redis_sync.RedisError, OSError) as exc:
            self.unreachable(exc)
            return None

    def armed(self, exchange: str, host: str) -> bool:
        """Is `host`'s standby for `exchange` connected and holding ticks?"""
        try:
            raw = self.redis.get(keys.armed(self.ns, exchange, host))
        except (redis_sync.RedisError, OSError):
            return False
        # "running": what a standby of the version before said (a fleet mid-upgrade)
        return health.decode(exchange, raw).status in (health.ARMED, health.RUNNING)

    def wait_for_release(self, exchanges: list[str], seconds: float, wait: Callable[[float], bool]) -> None:
        """`wait(seconds)`, but look at these leases every HANDOVER_POLL and return the moment one is
        released (or `wait` says a signal came): a handover's gap is this poll plus one flush, not a
        supervisor tick."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if wait(min(left, HANDOVER_POLL)):
                return
            try:
                if len(lease.owners(self.redis, self.ns, exchanges)) < len(exchanges):
                    return
            except (redis_sync.RedisError, OSError):
                return

    def publish(self, state: dict[str, Any], final: bool = False) -> None:
        """This host's view for `tickerctl ps` (a final one, marked stopped, lives an hour)."""
        doc = {**state, "stopping": True, "stopped": True} if final else state
        with contextlib.suppress(redis_sync.RedisError, OSError):
            self.redis.set(keys.supervisor_state(self.ns, self.host_id), orjson.dumps(doc),
                           **({"ex": 3600} if final else {"px": int(STATE_TTL * 1000)}))

    def leave(self) -> None:
        with contextlib.suppress(redis_sync.RedisError, OSError):
            lease.run(self.redis, lease.leave(self.ns, self.host_id, self.instance))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.close()


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]



def _epoch(raw: bytes | None) -> float:
    """A stored ticker_time; an unreadable one counts as never written."""
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0

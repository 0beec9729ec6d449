"""The one place a Redis client is built (timeouts, no hidden retries: callers own retry policy).

With `redis.sentinels` set, clients find the master through Redis Sentinel: a command that fails
during a failover (connection lost, or READONLY from a demoted master) drops the connection, and
the caller's next attempt asks Sentinel for the current master.
"""

from __future__ import annotations

from typing import Any

import redis as redis_sync
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.connection import parse_url

from fullon_ticker_service.config import RedisSettings


def sentinel_addresses(settings: RedisSettings) -> list[tuple[str, int]]:
    out = []
    for part in filter(None, (p.strip() for p in settings.sentinels.split(","))):
        host, _, port = part.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def _auth(settings: RedisSettings) -> dict[str, Any]:
    """db / username / password for connections to the master Sentinel names."""
    parsed = parse_url(settings.dsn())
    return {k: parsed[k] for k in ("db", "username", "password") if parsed.get(k) not in (None, "")}


def make_redis(settings: RedisSettings, *, socket_timeout: float = 5.0) -> Redis:
    """An asyncio Redis client; `rediss://` URLs get TLS. Fails fast so our backoff decides."""
    opts: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": socket_timeout,
                            "retry": Retry(NoBackoff(), 0), "health_check_interval": 0}
    if settings.sentinels:
        sentinel = Sentinel(sentinel_addresses(settings), socket_connect_timeout=1.0, socket_timeout=1.0)
        return sentinel.master_for(settings.sentinel_service, redis_class=Redis, **opts, **_auth(settings))
    return Redis.from_url(settings.dsn(), **opts)


def make_sync_redis(settings: RedisSettings, *, socket_timeout: float = 2.0) -> redis_sync.Redis:
    """The blocking client the supervisor and the CLI use."""
    opts: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": socket_timeout}
    if settings.sentinels:
        from redis.sentinel import Sentinel as SyncSentinel

        sentinel = SyncSentinel(sentinel_addresses(settings), socket_connect_timeout=1.0, socket_timeout=1.0)
        return sentinel.master_for(settings.sentinel_service, **opts, **_auth(settings))
    return redis_sync.Redis.from_url(settings.dsn(), **opts)

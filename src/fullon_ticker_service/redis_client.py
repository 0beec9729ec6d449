"""The one place a Redis client is built (timeouts, no hidden retries: callers own retry policy).

With `redis.sentinels` set, clients find the master through Redis Sentinel: a command that fails
during a failover (connection lost, or READONLY from a demoted master) drops the connection, and
the caller's next attempt asks Sentinel for the current master.
"""

from __future__ import annotations

import re
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


# What a failed Redis call means, for health records, `ps` and log lines (pure).
REFUSES_WRITES = ("OOM", "READONLY", "NOAUTH", "NOPERM")  # Redis answers, but will not take our writes


def error_kind(exc: BaseException) -> str:
    """OOM, READONLY (a replica, e.g. after a failover), NOAUTH, NOPERM, timeout, connection, or the
    exception's class name."""
    from redis import exceptions as rx

    found = re.search(r"\b(OOM|READONLY|NOAUTH|NOPERM)\b", str(exc))  # also inside a script's error
    if found:
        return found.group(1)
    if isinstance(exc, rx.OutOfMemoryError):
        return "OOM"
    if isinstance(exc, rx.ReadOnlyError):
        return "READONLY"
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError):
        return "NOAUTH"
    if isinstance(exc, rx.NoPermissionError):
        return "NOPERM"
    if isinstance(exc, rx.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, rx.ConnectionError | ConnectionError | OSError):
        return "connection"
    return type(exc).__name__


def error_text(exc: BaseException) -> str:
    """Redis's own words for a failure, on one line: without redis-py's pipeline wrapper ("Command # 1
    (EVALSHA ...) of pipeline caused error: ...") and the script location Redis appends."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^Command # \d+ \(.*?\) of pipeline caused error: ", "", text)
    text = re.sub(r"\s*script: [0-9a-f]{40}, on @user_script:\d+\.?$", "", text)
    return text[:200]

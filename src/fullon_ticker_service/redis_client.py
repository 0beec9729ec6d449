"""The one place a Redis client is built (timeouts, no hidden retries: callers own retry policy)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fullon_ticker_service.config import RedisSettings


def make_redis(settings: RedisSettings, *, socket_timeout: float = 5.0) -> Redis:
    """An asyncio Redis client; `rediss://` URLs get TLS. Fails fast so our backoff decides."""
    return Redis.from_url(
        settings.dsn(),
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )

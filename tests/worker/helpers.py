"""Run real worker processes against the in-process simulator."""

from __future__ import annotations

import multiprocessing
from typing import Any

import orjson
from redis.exceptions import RedisError

from fullon_ticker_service.config import (
    ExchangeSettings,
    RedisSettings,
    ServiceSettings,
    Settings,
)
from fullon_ticker_service.launch import WorkerSpec, spawn_target
from fullon_ticker_service.sim import Simulator
from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB

NAMESPACE = "tst"


def settings_for(sim: Simulator, venue: str, redis_url: str | None = None, **exchange: Any) -> Settings:
    redis = (RedisSettings(url=redis_url) if redis_url else
             RedisSettings(host=SHARED_REDIS_HOST, port=SHARED_REDIS_PORT, db=TEST_REDIS_DB))
    options: dict[str, Any] = {"reconnect_delay": 0.2, "reconnect_max_delay": 1.0, "stale_after": 5.0, **exchange}
    ex = ExchangeSettings(ccxt=sim.ccxt_config(venue), markets=f"{sim.http_url}/{venue}/markets", **options)
    return Settings(redis=redis, service=ServiceSettings(namespace=NAMESPACE, health_interval=0.5, log_level="INFO"),
                    exchanges={venue: ex})


def start_worker(settings: Settings, venue: str, symbols: list[str]) -> multiprocessing.Process:
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=spawn_target, args=(WorkerSpec(venue, tuple(symbols), settings),),
                       name=f"worker-{venue}", daemon=True)
    proc.start()
    return proc


async def stored(redis: Any, exchange: str) -> dict[str, dict[str, Any]]:
    raw = await redis.hgetall(f"tickers:{exchange}")
    return {k.decode(): orjson.loads(v) for k, v in raw.items()}


def matches(tick: dict[str, Any] | None, q: Any) -> bool:
    """The stored tick is the quote the simulator sent (volume too, except for inverse contracts,
    whose venues report it in contracts of the quote currency)."""
    return (tick is not None and tick["last"] == q.last and tick["bid"] == q.bid and tick["ask"] == q.ask
            and (inverse(q.symbol) or tick["volume"] == q.volume))


def inverse(symbol: str) -> bool:
    """BASE/QUOTE:SETTLE with SETTLE == BASE (e.g. BTC/USD:BTC) is settled in the base: inverse."""
    base, _, rest = symbol.partition("/")
    return ":" in rest and rest.split(":", 1)[1].split("-")[0] == base


async def all_match(redis: Any, sim: Simulator, venue: str, exchange: str | None = None) -> bool:
    try:
        got = await stored(redis, exchange or venue)
    except (ConnectionError, OSError, RedisError):  # the test's own client, while Redis is down
        return False
    good = sim.last_good(venue)
    return bool(good) and all(matches(got.get(s), q) for s, q in good.items())


async def health_of(redis: Any, exchange: str) -> dict[str, Any] | None:
    try:
        raw = await redis.get(f"{NAMESPACE}:health:{exchange}")
    except (ConnectionError, OSError, RedisError):
        return None
    return None if raw is None else orjson.loads(raw)

"""Reading tickers back from Redis, for code that consumes them (fullon layout, any writer)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from loguru import logger
from redis.asyncio import Redis

from fullon_ticker_service import keys
from fullon_ticker_service.config import Settings
from fullon_ticker_service.redis_client import make_redis


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    exchange: str
    price: float
    volume: float
    time: float  # epoch seconds (the exchange's time, or arrival when it gave none)
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    change: float | None = None
    percentage: float | None = None

    @property
    def age(self) -> float:
        """Seconds since the tick's time: how fresh this price is."""
        return time.time() - self.time

    @classmethod
    def from_json(cls, raw: bytes | str) -> Ticker:
        d = orjson.loads(raw)
        return cls(symbol=str(d["symbol"]), exchange=str(d["exchange"]), price=float(d["price"]),
                   volume=float(d.get("volume") or 0.0), time=float(d["time"]),
                   bid=_opt(d.get("bid")), ask=_opt(d.get("ask")), last=_opt(d.get("last")),
                   change=_opt(d.get("change")), percentage=_opt(d.get("percentage")))


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


class TickerReader:
    """`await reader.get_ticker("BTC/USDT", "binance")`; corrupt entries are skipped and reported."""

    def __init__(self, redis: Redis | None = None, settings: Settings | None = None) -> None:
        if redis is None:
            from fullon_ticker_service import config

            redis = make_redis((settings or config.load()).redis)
        self.redis = redis
        self.corrupt: list[tuple[str, str]] = []  # (exchange, symbol) of entries that did not parse

    async def get_ticker(self, symbol: str, exchange: str) -> Ticker | None:
        raw = await self.redis.hget(keys.tickers(exchange), symbol)
        return None if raw is None else self._parse(exchange, symbol, raw)

    async def get_tickers(self, exchange: str) -> list[Ticker]:
        raw = await self.redis.hgetall(keys.tickers(exchange))
        out = [self._parse(exchange, k.decode(), v) for k, v in raw.items()]
        return sorted((t for t in out if t is not None), key=lambda t: t.symbol)

    async def exchanges(self) -> list[str]:
        return sorted([k.decode().split(":", 1)[1] async for k in self.redis.scan_iter("tickers:*", count=500)])

    def _parse(self, exchange: str, symbol: str, raw: bytes) -> Ticker | None:
        try:
            return Ticker.from_json(raw)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self.corrupt.append((exchange, symbol))
            logger.warning(f"corrupt ticker {exchange} {symbol} skipped: {type(exc).__name__}")
            return None

    async def close(self) -> None:
        await self.redis.aclose()

"""The ccxt.pro exchange object: its class, configuration, frame limit, subscription plan and markets.

Markets come from a snapshot (`markets` setting: a JSON file or URL, loaded with
`set_markets()`) or from ccxt's REST call. An unreachable source is retried with backoff; a bad
one is a configuration error (the supervisor parks the exchange instead of restarting it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import orjson
from loguru import logger

from fullon_ticker_service.backoff import delay
from fullon_ticker_service.channels import Plan, plan_for
from fullon_ticker_service.config import ConfigError, ExchangeSettings


class MarketsUnavailable(Exception):
    """The markets snapshot could not be fetched now (network); worth retrying."""


def build(name: str, cfg: ExchangeSettings) -> tuple[Any, Plan]:
    """The ccxt.pro exchange object and its subscription plan; ConfigError for an unknown id."""
    ccxt_id = cfg.ccxt_id or name
    cls = getattr(ccxtpro, ccxt_id, None)
    if cls is None or not isinstance(cls, type):
        raise ConfigError(f"unknown ccxt exchange id {ccxt_id!r} (ccxt.pro has no such exchange)")
    exchange = cls({"enableRateLimit": True, **cfg.ccxt})
    # ccxt (4.5.90) adds its own per-URL dial backoff (0.1 s doubling to 30 s, no jitter, reset
    # only by a successful connect) on top of ours: after an outage it held reconnects for up
    # to 30 s. Our subscription loops' jittered, capped backoff is the only one.
    exchange.ws_dial_delay = lambda url: 0.0
    _limit_frames(exchange, cfg.max_frame_bytes)
    plan = plan_for(ccxt_id, exchange.has, cfg.method, cfg.channel, cfg.chunk)
    if not exchange.has.get(_camel(plan.method)):
        raise ConfigError(f"ccxt {ccxt_id} has no {plan.method}")
    return exchange, plan


async def load_markets(exchange: Any, cfg: ExchangeSettings, note_error: Callable[[str], None]) -> None:
    """Markets from the snapshot or ccxt's REST call, retried with backoff while unreachable (the
    caller cancels the wait when the worker is told to stop)."""
    log = logger.bind(exchange=exchange.id)
    attempt = 0
    while True:
        try:
            if cfg.markets:
                exchange.set_markets(await read_markets(cfg.markets))
            else:
                await exchange.load_markets()
            return
        except (ccxt.NetworkError, ccxt.ExchangeNotAvailable, MarketsUnavailable) as exc:
            attempt += 1
            wait = delay(attempt, cfg.reconnect_delay, cfg.reconnect_max_delay)
            log.warning(f"markets not loaded ({type(exc).__name__}: {exc}); retry in {wait:.1f}s")
            note_error(f"markets: {exc}")
            await asyncio.sleep(wait)


async def read_markets(source: str) -> list[dict[str, Any]]:
    """A markets snapshot: a JSON list of ccxt market dicts, from a file or an http(s) URL."""
    try:
        if source.startswith(("http://", "https://")):
            import aiohttp

            timeout = aiohttp.ClientTimeout(10)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session, session.get(source) as r:
                    if 400 <= r.status < 500:  # a wrong URL does not fix itself
                        raise ConfigError(f"markets snapshot {source!r}: HTTP {r.status}")
                    r.raise_for_status()
                    body = await r.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise MarketsUnavailable(f"{source}: {type(exc).__name__}: {exc}") from None
        else:
            # start-up only, before any subscription: a blocking read of a small file is fine
            body = Path(source).read_bytes()  # noqa: ASYNC240
        data = orjson.loads(body)
    except (ConfigError, MarketsUnavailable):
        raise
    except Exception as exc:  # a missing file or broken JSON: the operator must fix it
        raise ConfigError(f"markets snapshot {source!r} unreadable: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(m, dict) and "symbol" in m for m in data):
        raise ConfigError(f"markets snapshot {source!r}: expected a JSON list of market objects")
    return data


class _FrameLimit:
    """An aiohttp session as ccxt sees it, but whose websockets refuse frames over `limit` bytes.

    ccxt hard-codes a 10 MiB limit; a larger frame makes aiohttp fail the connection (close code
    1009), which ccxt reports as a NetworkError, so the usual reconnect path handles it.
    """

    def __init__(self, session: Any, limit: int) -> None:
        self._session, self._limit = session, limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def ws_connect(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.ws_connect(*args, **{**kwargs, "max_msg_size": self._limit})


def _limit_frames(exchange: Any, limit: int) -> None:
    """Every websocket client `exchange` creates connects through `_FrameLimit`."""
    make_client = exchange.client

    def client(url: str) -> Any:
        c = make_client(url)
        if not getattr(c, "_frame_limit", None):
            connect = c.create_connection
            c.create_connection = lambda session: connect(_FrameLimit(session, limit))
            c._frame_limit = limit
        return c

    exchange.client = client


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)

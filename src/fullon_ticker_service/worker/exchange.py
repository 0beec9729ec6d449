"""The ccxt.pro exchange object: its class, configuration, frame limit, streams, markets, routes.

Markets come from a snapshot (`markets` setting: a JSON file or URL, loaded with
`set_markets()`) or from ccxt's REST call. An unreachable source is retried with backoff; a bad
one is a configuration error (the supervisor parks the exchange instead of restarting it).

`routes` asks ccxt itself which socket it would use for each symbol: on a throwaway instance of
the same class (same config, same markets), `watch`/`watch_multiple` are replaced by a function
that raises with the URL it was given, and the stream's watch method is called for one symbol.
Nothing connects; a venue that needs the network first (KuCoin's token) gives no URL, and its
symbols are grouped by market type alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import orjson
from loguru import logger

from fullon_ticker_service.backoff import delay
from fullon_ticker_service.channels import Stream, streams_for
from fullon_ticker_service.config import ConfigError, ExchangeSettings


class MarketsUnavailable(Exception):
    """The markets snapshot could not be fetched now (network); worth retrying."""


def build(name: str, cfg: ExchangeSettings) -> tuple[Any, list[Stream]]:
    """The ccxt.pro exchange object and the streams to subscribe; ConfigError for an unknown id."""
    ccxt_id = cfg.ccxt_id or name
    cls = getattr(ccxtpro, ccxt_id, None)
    if cls is None or not isinstance(cls, type):
        raise ConfigError(f"unknown ccxt exchange id {ccxt_id!r} (ccxt.pro has no such exchange)")
    exchange = cls(config_for(cfg))
    # ccxt (4.5.90) adds its own per-URL dial backoff (0.1 s doubling to 30 s, no jitter, reset
    # only by a successful connect) on top of ours: after an outage it held reconnects for up
    # to 30 s. Our subscription loops' jittered, capped backoff is the only one.
    exchange.ws_dial_delay = lambda url: 0.0
    _limit_frames(exchange, cfg.max_frame_bytes)
    try:
        streams = streams_for(ccxt_id, exchange.has, cfg.streams, cfg.method, cfg.channel, cfg.chunk)
    except ValueError as exc:
        raise ConfigError(f"exchanges.{name}.{exc}") from None
    for stream in streams:
        if not exchange.has.get(_camel(stream.method)):
            raise ConfigError(f"ccxt {ccxt_id} has no {stream.method}")
    return exchange, streams


def config_for(cfg: ExchangeSettings) -> dict[str, Any]:
    return {"enableRateLimit": True, **cfg.ccxt}


async def open_loop(exchange: Any) -> None:
    """Bind the exchange to our event loop now. `load_markets()` does it as a side effect; with
    markets from a snapshot nothing does, and KuCoin's token request then fails inside the first
    watch call (AttributeError on a None loop)."""
    out = exchange.open()  # synchronous in ccxt 4.5.x
    if inspect.isawaitable(out):
        await out


class _Probed(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _raise_url(url: str, *args: Any, **kwargs: Any) -> Any:
    raise _Probed(url)


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise ccxt.NetworkError("routing probe: no network")


async def routes(exchange: Any, stream: Stream, symbols: list[str]) -> dict[str, str | None]:
    """symbol -> the websocket URL ccxt would use for it on `stream` (None when ccxt cannot tell
    without the network)."""
    probe = type(exchange)(config_for_probe(exchange))
    probe.set_markets(list(exchange.markets.values()), exchange.currencies)
    probe.watch = probe.watch_multiple = _raise_url
    probe.fetch = probe.fetch2 = _no_network
    probe.asyncio_loop = probe.throttler.loop = asyncio.get_running_loop()  # not open(): no session, no TLS
    out: dict[str, str | None] = {}
    try:
        for symbol in symbols:
            arg: Any = symbol if stream.per_symbol else [symbol]
            try:
                result = getattr(probe, stream.method)(arg, dict(stream.params))
                if inspect.isawaitable(result):
                    await result
                out[symbol] = None
            except _Probed as p:
                out[symbol] = p.url
            except Exception:
                out[symbol] = None
    finally:
        probe.clients = {}
        with contextlib.suppress(Exception):
            probe.timeout_on_exit = 0  # ccxt sleeps this long in close() (250 ms) for nothing here
            await probe.close()  # a venue may have made a session on the way (none connected)
    return out


def config_for_probe(exchange: Any) -> dict[str, Any]:
    """The probe's constructor config: the live instance's URLs and options (copies)."""
    import copy

    return {"urls": copy.deepcopy(exchange.urls), "options": copy.deepcopy(exchange.options),
            "enableRateLimit": False}


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

#!/usr/bin/env python3
"""A small HTTP dashboard API over the ticker cache (JSON), bound to 127.0.0.1 by default.

    python examples/dashboard.py --port 8080
    curl -s localhost:8080/tickers                  # every exchange, every symbol, with its age
    curl -s localhost:8080/tickers/binance          # one exchange
    curl -s localhost:8080/tickers/binance/BTC/USDT # one ticker

Each ticker is the cached fullon record plus `age` (seconds since its time) and `iso_time`, read
fresh from Redis on every request, so the age tells a client whether the price is still moving.
Redis settings are read like the service reads them: -c config.toml, .env, REDIS_HOST /
REDIS_PORT / REDIS_DB / REDIS_PASSWORD / REDIS_URL. Redis unreachable answers 503.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from fullon_ticker_service import Ticker, TickerReader, config

READER = web.AppKey("reader", TickerReader)


def as_json(t: Ticker, now: float) -> dict[str, Any]:
    """The ticker's fields plus its age, so clients need no clock arithmetic."""
    return {**dataclasses.asdict(t), "age": round(now - t.time, 3),
            "iso_time": datetime.fromtimestamp(t.time, UTC).isoformat(timespec="milliseconds")}


@web.middleware
async def redis_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """A Redis outage is the dashboard's only expected failure: say so instead of a 500 page."""
    try:
        return await handler(request)
    except (RedisError, OSError) as exc:
        return web.json_response({"error": f"Redis unavailable: {exc}"}, status=503)


async def all_tickers(request: web.Request) -> web.Response:
    reader, now = request.app[READER], time.time()
    out = {ex: [as_json(t, now) for t in await reader.get_tickers(ex)] for ex in await reader.exchanges()}
    return web.json_response({"time": now, "count": sum(map(len, out.values())), "exchanges": out})


async def exchange_tickers(request: web.Request) -> web.Response:
    exchange, now = request.match_info["exchange"], time.time()
    tickers = await request.app[READER].get_tickers(exchange)
    if not tickers:
        return web.json_response({"error": f"no tickers for exchange {exchange!r}"}, status=404)
    return web.json_response({"time": now, "exchange": exchange, "count": len(tickers),
                              "tickers": [as_json(t, now) for t in tickers]})


async def one_ticker(request: web.Request) -> web.Response:
    exchange, symbol = request.match_info["exchange"], request.match_info["symbol"]
    t = await request.app[READER].get_ticker(symbol, exchange)
    if t is None:
        return web.json_response({"error": f"no ticker {symbol!r} on {exchange!r}"}, status=404)
    return web.json_response(as_json(t, time.time()))


def make_app(settings: config.Settings) -> web.Application:
    app = web.Application(middlewares=[redis_errors])

    async def reader_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app[READER] = TickerReader(settings=settings)
        yield
        await app[READER].close()

    app.cleanup_ctx.append(reader_ctx)
    app.router.add_get("/tickers", all_tickers)
    app.router.add_get("/tickers/{exchange}", exchange_tickers)
    app.router.add_get("/tickers/{exchange}/{symbol:.+}", one_ticker)  # symbols contain "/"
    return app


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(config.load(args.config)), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    host, port = runner.addresses[0][:2]
    host = f"[{host}]" if ":" in host else host
    print(f"dashboard on http://{host}:{port}/tickers (Ctrl-C to stop)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="JSON API over the ticker cache: /tickers, /tickers/{exchange}.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("-c", "--config", help="TOML config (default: $TICKER_CONFIG or config/tickerctl.toml)")
    return p.parse_args(argv)


if __name__ == "__main__":
    ns = parse_args()
    try:
        asyncio.run(serve(ns))
    except config.ConfigError as exc:
        print(f"dashboard: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # port in use, address not available
        print(f"dashboard: cannot listen on {ns.host}:{ns.port}: {exc}", file=sys.stderr)
        sys.exit(2)

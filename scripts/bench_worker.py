#!/usr/bin/env python3
"""One worker vs. ccxt alone on the same stream, side by side in one run.

    .venv/bin/python scripts/bench_worker.py [--symbols 500] [--rate 40000] [--seconds 10]

The simulator runs in its own process and offers `--rate` Binance `ticker` frames/s
round-robin over `--symbols`. Then, one after the other against the same simulator:
  1. ccxt only: ccxt.pro.binance in this process, counting every ticker it parses (no writes);
  2. the worker: a real worker process writing to Redis (db 13), counting accepted ticks.
Afterwards the offered rate drops to 0 and the stored values are compared with the last frame
sent per symbol (stale = different). Needs a Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import subprocess
import sys
import time

import aiohttp
import ccxt.pro as ccxtpro
import orjson
from redis.asyncio import Redis

from fullon_ticker_service.channels import chunked
from fullon_ticker_service.config import ExchangeSettings, RedisSettings, ServiceSettings, Settings
from fullon_ticker_service.worker import TickerSink, WorkerSpec, spawn_target

PORT = 8799
HTTP = f"http://127.0.0.1:{PORT}"


async def control(session: aiohttp.ClientSession, **body: object) -> None:
    async with session.post(f"{HTTP}/_sim/control", data=orjson.dumps({"exchange": "binance", **body})) as r:
        r.raise_for_status()


async def sim_sent(session: aiohttp.ClientSession) -> int:
    async with session.get(f"{HTTP}/_sim/state") as r:
        return int(orjson.loads(await r.read())["binance"]["sent"])


async def ccxt_only(symbols: list[str], markets: list[dict], ccxt_cfg: dict, seconds: float) -> float:
    ex = ccxtpro.binance(ccxt_cfg)
    ex.set_markets(markets)
    count = 0

    def seen(symbol: str, ticker: object) -> None:
        nonlocal count
        count += 1

    ex.tickers = TickerSink(seen)

    async def loop(chunk: list[str]) -> None:
        while True:
            await ex.watch_tickers(chunk, {"name": "ticker"})

    tasks = [asyncio.create_task(loop(c)) for c in chunked(symbols, 100)]
    await asyncio.sleep(2)  # subscribe and warm up
    start, t0 = count, time.monotonic()
    await asyncio.sleep(seconds)
    rate = (count - start) / (time.monotonic() - t0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await ex.close()
    return rate


async def worker_run(symbols: list[str], ccxt_cfg: dict, seconds: float, session: aiohttp.ClientSession,
                     redis: Redis) -> tuple[float, int, int, float]:
    settings = Settings(redis=RedisSettings(db=13), service=ServiceSettings(namespace="bench", health_interval=1.0),
                        exchanges={"binance": ExchangeSettings(ccxt=ccxt_cfg, markets=f"{HTTP}/binance/markets")})
    proc = multiprocessing.get_context("spawn").Process(target=spawn_target,
                                                        args=(WorkerSpec("binance", tuple(symbols), settings),))
    proc.start()

    async def ticks() -> int:
        raw = await redis.get("bench:health:binance")
        return int(orjson.loads(raw)["ticks"]) if raw else 0

    deadline = time.monotonic() + 30
    while await redis.hlen("tickers:binance") < len(symbols) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    start, t0 = await ticks(), time.monotonic()
    await asyncio.sleep(seconds)
    await asyncio.sleep(1.1)  # let one more health record land
    rate = (await ticks() - start) / (time.monotonic() - t0)
    await control(session, action="rate", rate=0.0)
    stopped = time.monotonic()
    async with session.get(f"{HTTP}/_sim/state") as r:
        good = orjson.loads(await r.read())["binance"]["last_good"]
    while True:  # the worker drains what is still in socket buffers; wait for it (bounded)
        stored = {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall("tickers:binance")).items()}
        stale = sum(1 for s, q in good.items() if stored.get(s, {}).get("last") != q[0])
        if stale == 0 or time.monotonic() - stopped > 30:
            break
        await asyncio.sleep(0.05)
    converged = time.monotonic() - stopped
    proc.terminate()
    proc.join(10)
    return rate, stale, len(good), converged


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--rate", type=float, default=40000)
    p.add_argument("--seconds", type=float, default=10)
    a = p.parse_args()
    sim = subprocess.Popen([sys.executable, "-m", "fullon_ticker_service.cli", "sim", "--exchanges", "binance",
                            "--port", str(PORT), "--symbols", str(a.symbols), "--rate", "0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis = Redis(db=13)
    await redis.flushdb()
    try:
        await asyncio.sleep(2)
        from fullon_ticker_service.sim.venues.binance import Binance

        venue = Binance()
        markets = venue.make_markets(a.symbols)
        symbols = [m["symbol"] for m in markets]
        cfg = venue.ccxt_config(f"{HTTP}/binance", f"ws://127.0.0.1:{PORT}/binance")
        async with aiohttp.ClientSession() as session:
            await control(session, action="rate", rate=a.rate)
            s0, t0 = await sim_sent(session), time.monotonic()
            parse = await ccxt_only(symbols, markets, cfg, a.seconds)
            offered = (await sim_sent(session) - s0) / (time.monotonic() - t0)
            await control(session, action="rate", rate=a.rate)
            worker, stale, n, converged = await worker_run(symbols, cfg, a.seconds, session, redis)
        print(f"symbols={a.symbols} offered={a.rate:.0f}/s (simulator achieved ~{offered:.0f}/s during ccxt-only)")
        print(f"ccxt parse only      : {parse:9.0f} tickers/s")
        print(f"worker (into Redis)  : {worker:9.0f} tickers/s  = {worker / parse:.0%} of ccxt alone")
        print(f"stale symbols at end : {stale} of {n} (backlog drained {converged:.2f}s after the feed stopped)")
    finally:
        await redis.flushdb()
        await redis.aclose()
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())  # the worker runs on uvloop too: same loop on both sides

#!/usr/bin/env python3
"""CSV export: a snapshot of every cached ticker, one row per exchange/symbol.

    python examples/export_csv.py                         # all exchanges, to stdout
    python examples/export_csv.py --exchange binance -o binance.csv

Columns: exchange, symbol, price, bid, ask, last, volume, change, percentage, time (ISO 8601
UTC), epoch (seconds), age_s. Prices are written exactly as cached (no rounding);
empty cells are values the exchange does not send. A file is written to a temporary name and
renamed, so a reader never sees half a snapshot. Redis settings are read like the service reads
them: -c config.toml, .env, REDIS_HOST / REDIS_PORT / REDIS_DB / REDIS_PASSWORD / REDIS_URL.

Exit codes: 0 written, 1 no tickers found (the header is still written), 2 configuration or Redis error.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from redis.exceptions import RedisError

from fullon_ticker_service import Ticker, TickerReader, config

COLUMNS = ("exchange", "symbol", "price", "bid", "ask", "last", "volume", "change", "percentage",
           "time", "epoch", "age_s")


def row(t: Ticker, now: float) -> list[object]:
    iso = datetime.fromtimestamp(t.time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [t.exchange, t.symbol, t.price, t.bid, t.ask, t.last, t.volume, t.change, t.percentage,
            iso, t.time, round(now - t.time, 3)]


async def snapshot(reader: TickerReader, exchanges: list[str]) -> list[Ticker]:
    names = exchanges or await reader.exchanges()
    return [t for ex in sorted(names) for t in await reader.get_tickers(ex)]


def write(out: IO[str], tickers: list[Ticker]) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    now = time.time()
    w.writerows(row(t, now) for t in tickers)  # csv writes None as an empty cell, floats as repr


async def main(args: argparse.Namespace) -> int:
    reader = TickerReader(settings=config.load(args.config))
    try:
        tickers = await snapshot(reader, args.exchange)
    finally:
        await reader.close()
    if args.output in (None, "-"):
        write(sys.stdout, tickers)
    else:
        path = Path(args.output)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", newline="") as f:
            write(f, tickers)
        tmp.replace(path)
    where = "stdout" if args.output in (None, "-") else args.output
    print(f"export_csv: {len(tickers)} tickers written to {where}", file=sys.stderr)
    return 0 if tickers else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Write a CSV snapshot of the cached tickers.")
    p.add_argument("--exchange", "-e", action="append", default=[],
                   help="only this exchange (repeatable; default: every exchange in the cache)")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.add_argument("-c", "--config", help="TOML config (default: $TICKER_CONFIG or config/tickerctl.toml)")
    return p.parse_args(argv)


if __name__ == "__main__":
    ns = parse_args()
    try:
        sys.exit(asyncio.run(main(ns)))
    except config.ConfigError as exc:
        print(f"export_csv: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (RedisError, OSError) as exc:
        print(f"export_csv: {exc}", file=sys.stderr)
        sys.exit(2)

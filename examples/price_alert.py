#!/usr/bin/env python3
"""Price alert: read one ticker from the cache every second and say when it crosses a threshold.

    python examples/price_alert.py BTC/USDT binance --above 70000 --below 60000
    python examples/price_alert.py BTC/USDT binance --above 70000 --once   # exit 0 on the first alert

An alert fires when the condition becomes true (also on the first reading) and re-arms when it
stops being true, so a price sitting above the line does not repeat the alert every second.
A price older than --stale-after seconds is reported once as stale and never alerts: a ticker
that stopped updating has not crossed anything. Redis settings are read like the service reads
them: -c config.toml, .env, REDIS_HOST / REDIS_PORT / REDIS_DB / REDIS_PASSWORD / REDIS_URL.

Exit codes: 0 an alert fired (at once with --once, else when --timeout ends the watch), 1 --timeout
reached without any alert, 2 bad arguments or configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime

from redis.exceptions import RedisError

from fullon_ticker_service import Ticker, TickerReader, config


def say(kind: str, text: str) -> None:
    """One line per event, timestamped, flushed at once (the output is often piped)."""
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}Z {kind:<5} {text}", flush=True)


def crossed(t: Ticker, above: float | None, below: float | None) -> str | None:
    """The alert text when the price is beyond a threshold, else None."""
    if above is not None and t.price > above:
        return f"above {above}"
    if below is not None and t.price < below:
        return f"below {below}"
    return None


async def watch(args: argparse.Namespace, reader: TickerReader) -> int:
    name = f"{args.symbol}@{args.exchange}"
    limits = " ".join(f"{k} {v}" for k, v in (("above", args.above), ("below", args.below)) if v is not None)
    say("START", f"watching {name}: {limits} (every {args.interval:g}s, stale after {args.stale_after:g}s)")
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    alerts, armed, state = 0, True, ""  # state: the last condition reported (missing / stale / error / ok)
    while True:
        try:
            t = await reader.get_ticker(args.symbol, args.exchange)
        except (RedisError, OSError) as exc:
            if state != "error":
                say("ERROR", f"cannot read Redis: {exc}")
            state, t = "error", None
        if t is None and state != "error":
            if state != "missing":
                say("WAIT", f"no ticker for {name} in the cache yet")
            state = "missing"
        elif t is not None:
            if t.age > args.stale_after:
                if state != "stale":
                    say("WARN", f"{name} is stale: price {t.price} is {t.age:.1f}s old; no alerts until it updates")
                state = "stale"
            else:
                if state in ("stale", "missing", "error"):
                    news = "is in the cache" if state == "missing" else "is updating again"
                    say("OK", f"{name} {news}: price {t.price}, {t.age:.1f}s old")
                state = "ok"
                if args.verbose:
                    say("PRICE", f"{name} {t.price} bid {t.bid} ask {t.ask} age {t.age:.2f}s")
                what = crossed(t, args.above, args.below)
                if what and armed:
                    say("ALERT", f"{name} price {t.price} {what} (age {t.age:.1f}s)")
                    alerts += 1
                    if args.once:
                        return 0
                armed = what is None
        if deadline is not None and time.monotonic() >= deadline:
            say("STOP", f"{args.timeout:g}s elapsed, {alerts} alert(s)")
            return 0 if alerts else 1
        await asyncio.sleep(args.interval)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Alert when a cached ticker's price crosses a threshold.")
    p.add_argument("symbol", help="unified symbol, e.g. BTC/USDT")
    p.add_argument("exchange", help="exchange name as collected, e.g. binance")
    p.add_argument("--above", type=float, help="alert when the price goes above this")
    p.add_argument("--below", type=float, help="alert when the price goes below this")
    p.add_argument("--once", action="store_true", help="exit 0 after the first alert")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between reads (default 1)")
    p.add_argument("--stale-after", type=float, default=10.0, help="warn when the tick is older (default 10 s)")
    p.add_argument("--timeout", type=float, help="stop after this many seconds (exit 1 when nothing alerted)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every price read")
    p.add_argument("-c", "--config", help="TOML config (default: $TICKER_CONFIG or config/tickerctl.toml)")
    args = p.parse_args(argv)
    if args.above is None and args.below is None:
        p.error("give --above and/or --below")
    if args.interval <= 0:
        p.error("--interval must be > 0")
    return args


async def main(args: argparse.Namespace) -> int:
    reader = TickerReader(settings=config.load(args.config))
    try:
        return await watch(args, reader)
    finally:
        await reader.close()


if __name__ == "__main__":
    ns = parse_args()
    try:
        sys.exit(asyncio.run(main(ns)))
    except config.ConfigError as exc:
        print(f"price_alert: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)

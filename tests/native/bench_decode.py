"""Micro-benchmark: µs per frame, ccxt's parsing vs the native decoder, per venue and channel.

    .venv/bin/python -m tests.native.bench_decode            # full run (~1 min)
    .venv/bin/python -m tests.native.bench_decode --quick    # a few seconds

Frames: the simulator's own encoder (sim/venues/*.py, no spoiled quotes), each channel's frames in
the order sent (Bybit tickers: one snapshot per symbol, then deltas). Both paths run on a real
ccxt ws Client object (no socket), through the method ccxt calls for every text frame:
- ccxt:   `Client.handle_text_or_binary_message(text)` as shipped (orjson parse + the exchange's
          handle_message: routing, parse_ticker/safe_ticker, store, resolve);
- native: the same call with `install()` hooked in (orjson parse + decoder + store in
          exchange.tickers/bidsasks + a no-op on_tick); also the bare `decoder.decode_raw(text)`, full
          and lean (`lean=True`, what the worker installs: only the fields the fullon tick uses).
Each figure is the best of several repeats (the machine is shared); it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from typing import Any

import ccxt.pro as ccxtpro

from fullon_ticker_service.native import build_decoder, install
from tests.native.frames import SIM_VENUES, sim_frames

CHANNEL_NAMES = {"ticker": "24hrTicker", "bookTicker": "bookTicker", "miniTicker": "24hrMiniTicker",
                 "tickers": "tickers", "bbo-tbt": "bbo-tbt", "orderbook.1": "orderbook.1"}


def _best_us(fn: Any, frames: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for f in frames:
            fn(f)
        best = min(best, (time.perf_counter_ns() - t0) / len(frames) / 1000)
    return best


Row = tuple[str, str, int, float, float, float, float]


async def _venue_rows(venue: str, steps: int, repeat: int) -> list[Row]:
    markets, frames = sim_frames(venue, n_symbols=8, steps=steps, spoil_every=0)
    by_channel: dict[tuple[str, str], list[str]] = defaultdict(list)
    for channel, url, text in frames:
        by_channel[(channel, url)].append(text)
    rows = []
    for channel in dict.fromkeys(c for c, _ in by_channel):
        urls = [u for c, u in by_channel if c == channel]
        texts_by_url = {u: by_channel[(channel, u)] for u in urls}
        ccxt_us = native_us = bare_us = lean_us = 0.0
        n = 0
        for url, texts in texts_by_url.items():
            ex = getattr(ccxtpro, venue)()
            ex.set_markets(markets)
            client = ex.client(url)  # a real ccxt Client, never connected
            for t in texts:  # warm up (and give Bybit deltas their snapshot)
                client.handle_text_or_binary_message(t)
            c_us = _best_us(client.handle_text_or_binary_message, texts, repeat)
            install(ex, build_decoder(ex), lambda *a: None)
            for t in texts:
                client.handle_text_or_binary_message(t)
            n_us = _best_us(client.handle_text_or_binary_message, texts, repeat)
            decoder = build_decoder(ex)
            b_us = _best_us(lambda t, d=decoder, c=client: d.decode_raw(t, c), texts, repeat)
            lean = build_decoder(ex, lean=True)
            l_us = _best_us(lambda t, d=lean, c=client: d.decode_raw(t, c), texts, repeat)
            k = len(texts)
            ccxt_us += c_us * k
            native_us += n_us * k
            bare_us += b_us * k
            lean_us += l_us * k
            n += k
            await ex.close()
        rows.append((venue, CHANNEL_NAMES.get(channel, channel), n, ccxt_us / n, native_us / n, bare_us / n,
                     lean_us / n))
    return rows


async def run(quick: bool = False) -> list[Row]:
    steps, repeat = (160, 3) if quick else (800, 7)
    rows = []
    for venue in SIM_VENUES:
        rows += await _venue_rows(venue, steps, repeat)
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"{'venue':14s} {'channel':16s} {'frames':>6s} {'ccxt µs':>9s} {'native µs':>10s} "
             f"{'decode µs':>10s} {'lean µs':>8s} {'speed-up':>8s}"]
    for venue, channel, n, c, nat, bare, lean in rows:
        lines.append(f"{venue:14s} {channel:16s} {n:6d} {c:9.2f} {nat:10.2f} {bare:10.2f} {lean:8.2f} {c / nat:7.1f}x")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(table(asyncio.run(run(args.quick))))


if __name__ == "__main__":
    main()

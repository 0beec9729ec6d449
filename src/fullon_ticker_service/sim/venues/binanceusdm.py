"""Binance USD-M futures market streams (wss://fstream.binance.com/ws), as ccxt.pro 4.5.90 speaks them.

Same protocol as Binance spot (`SUBSCRIBE`/`UNSUBSCRIBE` with `{"result":null,"id":N}` acks, bare
payloads on `/ws`, websocket ping/pong), different frames:
- `<id>@ticker` (24hrTicker) has **no `b`/`a`** (nor `x`): ccxt's bid/ask are None. Its timestamp
  is `C` (the statistics' close time = the quote time); `E` comes a few ms later.
- `<id>@bookTicker` carries `e`, `T` (transaction time) and `E` (event time): ccxt's timestamp is `E`.
- `<id>@miniTicker` (ccxt's default for watch_tickers): last and volumes, no bid/ask.
Markets: USDT-margined perpetuals `BTC/USDT:USDT` (id `BTCUSDT`) and, for BTC and ETH, a
quarterly future `BTC/USDT:USDT-281229` (id `BTCUSDT_281229`); ccxt allows both in one call.
ccxt rewrites `urls['api']['ws']['linear']` (ending in `/ws`) to `.../market/ws/<n>` for
ticker/miniTicker and `.../public/ws/<n>` for bookTicker, as Binance now splits them; any
sub-path is accepted here.
"""

from __future__ import annotations

from typing import Any

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import bases, fmt, interleave, market
from fullon_ticker_service.sim.venues.binance import Binance

EXPIRY = "281229"  # a quarterly contract (last Friday of December 2028)
FUTURE_BASES = ("BTC", "ETH")
EVENT_LAG_MS = 7  # E after C (ticker) / T before E (bookTicker), as in the captured frames


class BinanceUsdm(Binance):
    id = "binanceusdm"

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        perps = [market(f"{b}USDT", b, "USDT", kind="swap", lowercaseId=f"{b.lower()}usdt") for b in bases(n)]
        futures = [market(f"{b}USDT_{EXPIRY}", b, "USDT", kind="future", expiry=EXPIRY,
                          lowercaseId=f"{b.lower()}usdt_{EXPIRY}") for b in FUTURE_BASES]
        return interleave(perps, futures, every=2)[:n]

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        ws = f"{ws_base}/ws"
        return {"urls": {"api": {"ws": {"spot": ws, "margin": ws, "linear": ws, "inverse": ws}}},
                "options": {"defaultType": "swap", "defaultSubType": "linear"}}

    def book_ticker(self, m: dict[str, Any], q: Quote) -> str:
        return (f'{{"e":"bookTicker","u":{q.seq},"s":"{m["id"]}","b":"{fmt(q.bid)}","B":"1.5",'
                f'"a":"{fmt(q.ask)}","A":"2.25","T":{q.ts_ms - EVENT_LAG_MS},"E":{q.ts_ms}}}')

    def ticker(self, m: dict[str, Any], q: Quote) -> str:
        return (f'{{"e":"24hrTicker","E":{q.ts_ms + EVENT_LAG_MS},"s":"{m["id"]}","p":"{fmt(q.change)}",'
                f'"P":"{q.percentage:.3f}","w":"{fmt(q.last)}","c":"{fmt(q.last)}","Q":"0.003",'
                f'"o":"{fmt(q.open)}","h":"{fmt(q.high)}","l":"{fmt(q.low)}","v":"{fmt(q.volume)}",'
                f'"q":"{fmt(q.quote_volume)}","O":{q.ts_ms - 86_400_000},"C":{q.ts_ms},"F":1,'
                f'"L":{q.seq + 1},"n":{q.seq + 1}}}')


VENUE_CLASS = BinanceUsdm

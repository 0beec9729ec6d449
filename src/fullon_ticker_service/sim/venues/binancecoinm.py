"""Binance COIN-M futures market streams (wss://dstream.binance.com/ws), as ccxt.pro 4.5.90 speaks them.

Same protocol as Binance spot; frames as the coin-margined streams send them, each with `ps`
(the pair, e.g. `BTCUSD`) after `s`:
- `<id>@ticker` (24hrTicker) has **no `b`/`a`**: ccxt's bid/ask are None; timestamp = `C`. Volumes
  are inverse: `v` = contracts, `q` = the base coin's volume, which ccxt reports as baseVolume
  (its quoteVolume = baseVolume x `w`).
- `<id>@bookTicker`: `u`, `e`, `s`, `ps`, bid/ask in contracts, `T` and `E`; ccxt's timestamp is `E`.
- `<id>@miniTicker`: last and volumes (`v` contracts, `q` coin), no bid/ask.
Markets: coin-margined perpetuals `BTC/USD:BTC` (id `BTCUSD_PERP`, contracts of 100 USD for BTC,
10 USD otherwise) and quarterly futures for BTC and ETH (`BTC/USD:BTC-281229`, id `BTCUSD_281229`).
ccxt uses `urls['api']['ws']['inverse']` as it is, plus `/<n>`.
"""

from __future__ import annotations

from typing import Any

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import bases, fmt, fmt_int, interleave, market
from fullon_ticker_service.sim.venues.binance import Binance
from fullon_ticker_service.sim.venues.binanceusdm import EVENT_LAG_MS, EXPIRY, FUTURE_BASES


def _contract_size(base: str) -> int:
    return 100 if base == "BTC" else 10


class BinanceCoinm(Binance):
    id = "binancecoinm"
    quote_ccy = "USD"

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        perps = [market(f"{b}USD_PERP", b, "USD", kind="swap", settle=b, contract_size=_contract_size(b),
                        lowercaseId=f"{b.lower()}usd_perp") for b in bases(n)]
        futures = [market(f"{b}USD_{EXPIRY}", b, "USD", kind="future", settle=b, expiry=EXPIRY,
                          contract_size=_contract_size(b), lowercaseId=f"{b.lower()}usd_{EXPIRY}")
                   for b in FUTURE_BASES]
        return interleave(perps, futures, every=2)[:n]

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        ws = f"{ws_base}/ws"
        return {"urls": {"api": {"ws": {"spot": ws, "margin": ws, "linear": ws, "inverse": ws}}},
                "options": {"defaultType": "swap", "defaultSubType": "inverse"}}

    @staticmethod
    def _contracts(m: dict[str, Any], q: Quote) -> str:
        return fmt_int(q.quote_volume / m["contractSize"])

    def book_ticker(self, m: dict[str, Any], q: Quote) -> str:
        return (f'{{"u":{q.seq},"e":"bookTicker","s":"{m["id"]}","ps":"{m["base"]}USD","b":"{fmt(q.bid)}",'
                f'"B":"24","a":"{fmt(q.ask)}","A":"669","T":{q.ts_ms - EVENT_LAG_MS},"E":{q.ts_ms}}}')

    def mini_ticker(self, m: dict[str, Any], q: Quote) -> str:
        return (f'{{"e":"24hrMiniTicker","E":{q.ts_ms},"s":"{m["id"]}","ps":"{m["base"]}USD",'
                f'"c":"{fmt(q.last)}","o":"{fmt(q.open)}","h":"{fmt(q.high)}","l":"{fmt(q.low)}",'
                f'"v":"{self._contracts(m, q)}","q":"{fmt(q.volume)}"}}')

    def ticker(self, m: dict[str, Any], q: Quote) -> str:
        return (f'{{"e":"24hrTicker","E":{q.ts_ms + EVENT_LAG_MS},"s":"{m["id"]}","ps":"{m["base"]}USD",'
                f'"p":"{fmt(q.change)}","P":"{q.percentage:.3f}","w":"{fmt(q.last)}","c":"{fmt(q.last)}",'
                f'"Q":"83","o":"{fmt(q.open)}","h":"{fmt(q.high)}","l":"{fmt(q.low)}",'
                f'"v":"{self._contracts(m, q)}","q":"{fmt(q.volume)}","O":{q.ts_ms - 86_400_000},'
                f'"C":{q.ts_ms},"F":1,"L":{q.seq + 1},"n":{q.seq + 1}}}')


VENUE_CLASS = BinanceCoinm

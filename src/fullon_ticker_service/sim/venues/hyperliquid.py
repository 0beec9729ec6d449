"""Hyperliquid perpetuals websocket (wss://api.hyperliquid.xyz/ws), as ccxt.pro 4.5.90 speaks it.

Client: {"method":"subscribe"|"unsubscribe","subscription":{"type":"allMids"}} or
{"type":"activeAssetCtx","coin":"BTC"}; {"method":"ping"}.
Server: {"channel":"subscriptionResponse","data":{"method":...,"subscription":{...as sent}}},
then `allMids` {"data":{"mids":{"BTC":"..."}}} / `activeAssetCtx` {"data":{"coin","ctx":{...}}};
{"channel":"pong"}; errors as {"channel":"error","data":"<text>"} (a duplicate subscribe gets
"Already subscribed: {...}", which ccxt ignores; any other error makes ccxt reject every pending
future on the socket). Any sub-path is accepted; ccxt pings every 20 s.

Markets: linear perps `BTC/USDC:USDC`, id = baseId = asset index as a string, `baseName` = coin
(ccxt subscribes with `baseName`; it maps a coin back to a symbol as `<coin>/USDC:USDC`).

What ccxt parses (`hyperliquid.parse_ticker` + `safe_ticker`), from which Quote field:
    frame field            ccxt ticker field               Quote field
    activeAssetCtx
      midPx                close and last                   last
      impactPxs[0], [1]    bid, ask                         bid, ask
      prevDayPx            previousClose                    open
      dayNtlVlm            quoteVolume                      quote_volume
      markPx, oraclePx     info only                        last, mid
      dayBaseVlm           info only (baseVolume is None)   volume
      funding, openInterest, premium: constants, info only
    allMids
      mids[coin]           close and last (bid/ask None)    last
`timestamp`/`datetime` are None on both channels (the frames carry no time). `midPx` and the
mids carry `quote.last`, not `quote.mid`, because ccxt reports them as `last`: ccxt's `last`
then equals `sim.last_good[s].last` as on every other venue, and the `nan` fault (which spoils
only `last`) stays visible. Quote values are encoded as given (NaN, negatives, zero).

allMids: real Hyperliquid sends every coin's mid in each frame. Here a subscribe registers
(allMids, symbol) for every market and answers with one frame holding all current mids; after
that each tick sends a frame with the one coin that changed. ccxt upserts every coin of a frame
into `exchange.tickers` and resolves with the whole dict, so the stored state is the same as with
full frames, and `encode` stays O(1) (no per-connection dict re-serialised on every tick).
"""

from __future__ import annotations

from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, market

ALL_MIDS = "allMids"
ASSET_CTX = "activeAssetCtx"


class Hyperliquid(Venue):
    id = "hyperliquid"
    quote_ccy = "USDC"

    def __init__(self) -> None:
        super().__init__()
        self.by_coin: dict[str, dict[str, Any]] = {}
        self.coin: dict[str, str] = {}  # unified symbol -> coin

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        return [
            market(str(i), b, "USDC", kind="swap", settle="USDC", base_id=str(i), baseName=b,
                   info={"name": b, "szDecimals": "4", "maxLeverage": "50"})
            for i, b in enumerate(bases(n))
        ]

    def index(self, markets: list[dict[str, Any]]) -> None:
        super().index(markets)
        self.by_coin = {m["baseName"]: m for m in markets}
        self.coin = {m["symbol"]: m["baseName"] for m in markets}

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        # REST urls point at the simulator too, so a stray REST call fails fast with a 404
        # instead of trying the internet; tests supply markets with `set_markets()`.
        return {"urls": {"api": {"ws": {"public": f"{ws_base}/ws"},
                                 "public": http_base, "private": http_base}},
                "options": {"defaultType": "swap"}}

    async def on_text(self, conn: Conn, text: str) -> None:
        try:
            req = orjson.loads(text)
            method = req["method"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(conn, f"Error parsing JSON into valid websocket request: {text}")
            return
        if method == "ping":
            await conn.send('{"channel":"pong"}')
            return
        sub = req.get("subscription")
        if method not in ("subscribe", "unsubscribe") or not isinstance(sub, dict):
            await self._error(conn, f"Error parsing JSON into valid websocket request: {text}")
            return
        kind = sub.get("type")
        if kind == ALL_MIDS:
            symbols = list(self.by_symbol)
        elif kind == ASSET_CTX and sub.get("coin") in self.by_coin:
            symbols = [self.by_coin[sub["coin"]]["symbol"]]
        else:
            await self._error(conn, f"Invalid subscription {_dump(sub)}")
            return
        active = bool(symbols) and (kind, symbols[0]) in conn.subs
        if method == "subscribe" and active:
            await self._error(conn, f"Already subscribed: {_dump(sub)}")
            return
        if method == "unsubscribe" and not active:
            await self._error(conn, f"Already unsubscribed: {_dump(sub)}")
            return
        if method == "unsubscribe":  # drop first: nothing is sent for it once ccxt sees the ack
            for s in symbols:
                conn.unsubscribe(kind, s)
        await conn.send(orjson.dumps({"channel": "subscriptionResponse",
                                      "data": {"method": method, "subscription": sub}}).decode())
        if method == "unsubscribe":
            return
        if kind == ASSET_CTX:
            await conn.subscribe(kind, symbols[0])
        else:
            for s in symbols:
                await conn.subscribe(kind, s, snapshot=False)
            live = [s for s in symbols if not conn.exchange.silent(s)]  # muted coins: left out
            if live:  # one snapshot frame with every mid
                mids = {self.coin[s]: fmt(conn.exchange.current(s).last) for s in live}
                await conn.send(orjson.dumps({"channel": ALL_MIDS, "data": {"mids": mids}}).decode())

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        coin = self.coin[q.symbol]
        if channel == ALL_MIDS:
            return f'{{"channel":"allMids","data":{{"mids":{{"{coin}":"{fmt(q.last)}"}}}}}}'
        return (f'{{"channel":"activeAssetCtx","data":{{"coin":"{coin}","ctx":{{'
                f'"funding":"0.0000125","openInterest":"688.11","prevDayPx":"{fmt(q.open)}",'
                f'"dayNtlVlm":"{fmt(q.quote_volume)}","premium":"0.00031774",'
                f'"oraclePx":"{fmt(q.mid)}","markPx":"{fmt(q.last)}","midPx":"{fmt(q.last)}",'
                f'"impactPxs":["{fmt(q.bid)}","{fmt(q.ask)}"],"dayBaseVlm":"{fmt(q.volume)}"}}}}}}')

    @staticmethod
    async def _error(conn: Conn, text: str) -> None:
        await conn.send(orjson.dumps({"channel": "error", "data": text}).decode())


def _dump(obj: Any) -> str:
    return orjson.dumps(obj).decode()


VENUE_CLASS = Hyperliquid

"""Binance spot websocket streams (wss://stream.binance.com:9443/ws), as ccxt.pro speaks them.

Client: {"method":"SUBSCRIBE"|"UNSUBSCRIBE","params":["btcusdt@ticker",...],"id":N}
Server: {"result":null,"id":N}, then bare stream payloads (no combined-stream wrapper on /ws):
`<id>@ticker` (24hrTicker), `<id>@miniTicker` (24hrMiniTicker, no bid/ask), `<id>@bookTicker`.
ccxt appends `/<n>` (stream index) to the URL; any sub-path is accepted. Keepalive is websocket
ping/pong (the server answers pings; ccxt's keepAlive is 180 s).
"""

from __future__ import annotations

from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, market

CHANNELS = ("ticker", "miniTicker", "bookTicker")


class Binance(Venue):
    id = "binance"

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        return [market(f"{b}USDT", b, "USDT", lowercaseId=f"{b.lower()}usdt") for b in bases(n)]

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        ws = f"{ws_base}/ws"
        return {"urls": {"api": {"ws": {"spot": ws, "margin": ws, "future": ws, "delivery": ws}}},
                "options": {"defaultType": "spot"}}

    async def on_text(self, conn: Conn, text: str) -> None:
        try:
            req = orjson.loads(text)
            method, params, req_id = req["method"], req.get("params", []), req.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await conn.send('{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}}')
            return
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            await conn.send(orjson.dumps({"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                                          "id": req_id}).decode())
            return
        await conn.send(orjson.dumps({"result": None, "id": req_id}).decode())
        for stream in params:
            lower_id, _, channel = str(stream).partition("@")
            m = self.by_id.get(lower_id.upper())
            if m is None or channel not in CHANNELS:
                continue  # Binance acks unknown streams and simply sends nothing
            if method == "SUBSCRIBE":
                await conn.subscribe(channel, m["symbol"])
            else:
                conn.unsubscribe(channel, m["symbol"])

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        m = self.by_symbol[q.symbol]
        if channel == "bookTicker":
            return self.book_ticker(m, q)
        if channel == "miniTicker":
            return self.mini_ticker(m, q)
        return self.ticker(m, q)

    # frames (spot; the futures venues override them) ------------------------------------------
    def book_ticker(self, m: dict[str, Any], q: Quote) -> str:
        """Spot bookTicker: no event type and no time at all (ccxt's timestamp is None)."""
        return (f'{{"u":{q.seq},"s":"{m["id"]}","b":"{fmt(q.bid)}","B":"1.5","a":"{fmt(q.ask)}",'
                f'"A":"2.25"}}')

    def mini_ticker(self, m: dict[str, Any], q: Quote) -> str:
        return (f'{{"e":"24hrMiniTicker","E":{q.ts_ms},"s":"{m["id"]}","c":"{fmt(q.last)}",'
                f'"o":"{fmt(q.open)}","h":"{fmt(q.high)}","l":"{fmt(q.low)}","v":"{fmt(q.volume)}",'
                f'"q":"{fmt(q.quote_volume)}"}}')

    def ticker(self, m: dict[str, Any], q: Quote) -> str:
        return (f'{{"e":"24hrTicker","E":{q.ts_ms},"s":"{m["id"]}","p":"{fmt(q.change)}",'
                f'"P":"{q.percentage:.3f}","w":"{fmt(q.last)}","x":"{fmt(q.open)}","c":"{fmt(q.last)}",'
                f'"Q":"0.1","b":"{fmt(q.bid)}","B":"1.5","a":"{fmt(q.ask)}","A":"2.25",'
                f'"o":"{fmt(q.open)}","h":"{fmt(q.high)}","l":"{fmt(q.low)}","v":"{fmt(q.volume)}",'
                f'"q":"{fmt(q.quote_volume)}","O":{q.ts_ms - 86_400_000},"C":{q.ts_ms},"F":1,'
                f'"L":{q.seq + 1},"n":{q.seq + 1}}}')


VENUE_CLASS = Binance

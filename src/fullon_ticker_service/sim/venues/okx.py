"""OKX v5 public websocket (wss://ws.okx.com:8443/ws/v5/public), as ccxt.pro speaks it.

Client: {"op":"subscribe"|"unsubscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},...]}
Server: one ack per arg {"event":"subscribe","arg":{...},"connId":"..."}, or
{"event":"error","code":"60018","msg":"...","connId":"..."} for an unknown channel/instrument.
Data: {"arg":{"channel":"tickers","instId":..},"data":[{24h ticker, "ts":"<ms>"}]} and
{"arg":{"channel":"bbo-tbt","instId":..},"data":[{"asks":[[px,sz,"0",n]],"bids":[..],"ts":..,"seqId":..}]}.
Keepalive is the text frame `ping`, answered with the text `pong` (ccxt sends it every 18 s and
raises RequestTimeout after two unanswered ones). ccxt appends `/public` (or `/business`) to
`urls['api']['ws']`; any sub-path is accepted. A request longer than 64 KB (OKX's documented limit
on the total length of the channels in one request) is refused with error 60012.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, market

CHANNELS = ("tickers", "bbo-tbt")
MAX_REQUEST_BYTES = 64 * 1024


def _conn_id(conn: Conn) -> str:
    cid = conn.state.get("connId")
    if cid is None:
        cid = conn.state["connId"] = os.urandom(4).hex()
    return cid


class Okx(Venue):
    id = "okx"

    def __init__(self) -> None:
        super().__init__()
        self._head: dict[tuple[str, str], str] = {}  # (channel, symbol) -> '{"arg":{...},"data":[{'

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        return [market(f"{b}-USDT", b, "USDT") for b in bases(n)]

    def index(self, markets: list[dict[str, Any]]) -> None:
        super().index(markets)
        self._head = {}
        for m in markets:
            for ch in CHANNELS:
                head = f'{{"arg":{{"channel":"{ch}","instId":"{m["id"]}"}},"data":[{{'
                if ch == "tickers":
                    head += f'"instType":"SPOT","instId":"{m["id"]}",'
                self._head[(ch, m["symbol"])] = head

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        ws = f"{ws_base}/ws/v5"  # ccxt adds "/public" -> .../okx/ws/v5/public, like the real URL
        return {"urls": {"api": {"ws": ws}, "test": {"ws": ws}},
                "options": {"defaultType": "spot"}}

    async def on_text(self, conn: Conn, text: str) -> None:
        if text == "ping":
            await conn.send("pong")
            return
        cid = _conn_id(conn)
        try:
            req = orjson.loads(text)
            op, args = req["op"], req["args"]
            if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
                raise ValueError(op)
            if len(text.encode()) > MAX_REQUEST_BYTES:
                raise ValueError("request too large")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            await conn.send(orjson.dumps({"event": "error", "msg": f"Illegal request: {text}",
                                          "code": "60012", "connId": cid}).decode())
            return
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst_id = arg.get("instId") if isinstance(arg, dict) else None
            m = self.by_id.get(inst_id) if isinstance(inst_id, str) else None
            if m is None or channel not in CHANNELS:
                await conn.send(orjson.dumps({
                    "event": "error", "code": "60018", "connId": cid,
                    "msg": f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. Please use "
                           "the correct URL, channel and parameters referring to API document."}).decode())
                continue
            await conn.send(orjson.dumps({"event": op, "arg": {"channel": channel, "instId": inst_id},
                                          "connId": cid}).decode())
            if op == "subscribe":
                await conn.subscribe(channel, m["symbol"])
            else:
                conn.unsubscribe(channel, m["symbol"])

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        head = self._head[(channel, q.symbol)]
        if channel == "bbo-tbt":
            return (f'{head}"asks":[["{fmt(q.ask)}","2.25","0","3"]],"bids":[["{fmt(q.bid)}","1.5","0","2"]],'
                    f'"ts":"{q.ts_ms}","seqId":{q.seq}}}]}}')
        o = fmt(q.open)
        return (f'{head}"last":"{fmt(q.last)}","lastSz":"0.1","askPx":"{fmt(q.ask)}","askSz":"2.25",'
                f'"bidPx":"{fmt(q.bid)}","bidSz":"1.5","open24h":"{o}","high24h":"{fmt(q.high)}",'
                f'"low24h":"{fmt(q.low)}","volCcy24h":"{fmt(q.quote_volume)}","vol24h":"{fmt(q.volume)}",'
                f'"ts":"{q.ts_ms}","sodUtc0":"{o}","sodUtc8":"{o}"}}]}}')


VENUE_CLASS = Okx

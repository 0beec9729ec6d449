"""Bybit v5 public websocket, linear USDT perpetuals (wss://stream.bybit.com/v5/public/linear).

Markets: `BTC/USDT:USDT` (id `BTCUSDT`), linear swaps only; topics are served on the
`/v5/public/linear` path alone (any other path answers subscribes with "handler not found").

Client: {"op":"subscribe"|"unsubscribe","args":["tickers.BTCUSDT","orderbook.1.BTCUSDT",...],"req_id":N}
        {"op":"ping","req_id":N}                      (ccxt sends this every 18 s)
Server: {"success":true,"ret_msg":"","conn_id":"..","req_id":"N","op":"subscribe"}
        {"success":true,"ret_msg":"pong","conn_id":"..","req_id":"N","op":"ping"}
        {"success":false,"ret_msg":"error:already subscribed,topic:..",...}  (valid topics still subscribed)
`tickers.<id>`: the first frame per topic and connection is `"type":"snapshot"` with the full
ticker; later ones are `"type":"delta"` carrying only the fields that changed since the previous
frame on that topic (clients merge them into the stored ticker). `"ts"` is the quote time (ms).
`orderbook.1.<id>`: best bid/ask; every frame is a full snapshot of the single level (Bybit pushes
level-1 snapshots; sending no deltas keeps a spoiled NaN level from lingering in a client book).
Limits as documented: the `args` of one public request may not exceed 21,000 characters.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, market

TICKERS = "tickers"
BOOK1 = "orderbook.1"
PATH = "/v5/public/linear"
MAX_ARGS_CHARS = 21_000
CS_BASE = 50_193_544_280  # cross sequence offset, so `cs` looks like Bybit's
FUNDING_MS = 8 * 3_600_000


def _pct(q: Quote) -> str:
    """price24hPcnt: a fraction with 6 decimals, e.g. "0.023333"."""
    return fmt(round((q.last - q.open) / q.open, 6))


def _direction(last: float, prev: float) -> str:
    if last > prev:
        return "PlusTick"
    if last < prev:
        return "MinusTick"
    return "ZeroPlusTick"


class Bybit(Venue):
    id = "bybit"

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        return [market(f"{b}USDT", b, "USDT", kind="swap") for b in bases(n)]

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        public = {k: f"{ws_base}/v5/public/{k}" for k in ("spot", "linear", "inverse", "option")}
        private = {
            "spot": {"unified": f"{ws_base}/v5/private", "nonUnified": f"{ws_base}/spot/private/v3"},
            "contract": f"{ws_base}/v5/private",
            "usdc": f"{ws_base}/trade/option/usdc/private/v1",
            "trade": f"{ws_base}/v5/trade",
        }
        return {"urls": {"api": {"ws": {"public": public, "private": private}}},
                "options": {"defaultType": "swap", "defaultSubType": "linear", "defaultSettle": "USDT"}}

    async def on_open(self, conn: Conn) -> None:
        conn.state["conn_id"] = str(uuid.uuid4())

    # requests -------------------------------------------------------------------------------
    def _reply(self, conn: Conn, op: str, req_id: Any, success: bool = True, msg: str = "") -> str:
        body: dict[str, Any] = {"success": success, "ret_msg": msg, "conn_id": conn.state.get("conn_id", "")}
        if req_id is not None:
            body["req_id"] = str(req_id)
        body["op"] = op
        return orjson.dumps(body).decode()

    def _topic(self, conn: Conn, topic: Any) -> tuple[str, str] | None:
        """(channel, unified symbol) for a topic this connection can serve, else None."""
        if not isinstance(topic, str) or not conn.path.rstrip("/").endswith(PATH):
            return None
        if topic.startswith("tickers."):
            channel, mid = TICKERS, topic[8:]
        elif topic.startswith("orderbook.1."):
            channel, mid = BOOK1, topic[12:]
        else:
            return None
        m = self.by_id.get(mid)
        return None if m is None else (channel, m["symbol"])

    async def on_text(self, conn: Conn, text: str) -> None:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            req = None
        op = req.get("op") if isinstance(req, dict) else None
        req_id = req.get("req_id") if isinstance(req, dict) else None
        if op == "ping":
            await conn.send(self._reply(conn, "ping", req_id, True, "pong"))
            return
        args = req.get("args") if isinstance(req, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            await conn.send(orjson.dumps({
                "success": False, "ret_msg": "error:invalid op", "conn_id": conn.state.get("conn_id", ""),
                "request": {"op": op if isinstance(op, str) else "", "args": None},
            }).decode())
            return
        if sum(len(str(a)) + 3 for a in args) > MAX_ARGS_CHARS:
            await conn.send(self._reply(conn, op, req_id, False,
                                        f"error:args length exceeds {MAX_ARGS_CHARS} characters"))
            return
        if op == "unsubscribe":
            for topic in args:
                sub = self._topic(conn, topic)
                if sub is not None:
                    conn.unsubscribe(*sub)
                    conn.state.pop(sub, None)  # a later subscribe starts with a snapshot again
            await conn.send(self._reply(conn, op, req_id))
            return
        new: list[tuple[str, str]] = []
        error = ""
        for topic in args:
            sub = self._topic(conn, topic)
            if sub is None:
                error = error or f"error:handler not found,topic:{topic}"
            elif sub in conn.subs or sub in new:
                error = error or f"error:already subscribed,topic:{topic}"
            else:
                new.append(sub)
        await conn.send(self._reply(conn, op, req_id, not error, error))
        for channel, symbol in new:
            await conn.subscribe(channel, symbol)

    # frames ---------------------------------------------------------------------------------
    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        mid = self.by_symbol[q.symbol]["id"]
        cs = CS_BASE + q.seq
        if channel == BOOK1:
            return (f'{{"topic":"orderbook.1.{mid}","type":"snapshot","ts":{q.ts_ms},"data":{{"s":"{mid}",'
                    f'"b":[["{fmt(q.bid)}","1.5"]],"a":[["{fmt(q.ask)}","2.25"]],"u":{q.seq + 1},'
                    f'"seq":{cs}}},"cts":{q.ts_ms - 2}}}')
        key = (channel, q.symbol)
        state = conn.state
        prev: Quote | None = state.get(key)
        state[key] = q
        if prev is None:
            last = fmt(q.last)
            return (f'{{"topic":"tickers.{mid}","type":"snapshot","data":{{"symbol":"{mid}",'
                    f'"tickDirection":"ZeroPlusTick","price24hPcnt":"{_pct(q)}","lastPrice":"{last}",'
                    f'"prevPrice24h":"{fmt(q.open)}","highPrice24h":"{fmt(q.high)}",'
                    f'"lowPrice24h":"{fmt(q.low)}","prevPrice1h":"{fmt(q.open)}","markPrice":"{last}",'
                    f'"indexPrice":"{last}","openInterest":"52774.528","openInterestValue":"1506861070.82",'
                    f'"turnover24h":"{fmt(q.quote_volume)}","volume24h":"{fmt(q.volume)}",'
                    f'"nextFundingTime":"{(q.ts_ms // FUNDING_MS + 1) * FUNDING_MS}","fundingRate":"0.0001",'
                    f'"bid1Price":"{fmt(q.bid)}","bid1Size":"1.5","ask1Price":"{fmt(q.ask)}",'
                    f'"ask1Size":"2.25"}},"cs":{cs},"ts":{q.ts_ms}}}')
        # delta: only what changed (NaN != anything, so a spoiled value is always carried)
        parts = [f'{{"topic":"tickers.{mid}","type":"delta","data":{{"symbol":"{mid}"']
        if q.last != prev.last:
            last = fmt(q.last)
            parts.append(f',"tickDirection":"{_direction(q.last, prev.last)}","price24hPcnt":"{_pct(q)}",'
                         f'"lastPrice":"{last}","markPrice":"{last}","indexPrice":"{last}"')
        if q.high != prev.high:
            parts.append(f',"highPrice24h":"{fmt(q.high)}"')
        if q.low != prev.low:
            parts.append(f',"lowPrice24h":"{fmt(q.low)}"')
        if q.last != prev.last or q.volume != prev.volume:
            parts.append(f',"turnover24h":"{fmt(q.quote_volume)}"')
        if q.volume != prev.volume:
            parts.append(f',"volume24h":"{fmt(q.volume)}"')
        if q.bid != prev.bid:
            parts.append(f',"bid1Price":"{fmt(q.bid)}","bid1Size":"1.5"')
        if q.ask != prev.ask:
            parts.append(f',"ask1Price":"{fmt(q.ask)}","ask1Size":"2.25"')
        parts.append(f'}},"cs":{cs},"ts":{q.ts_ms}}}')
        return "".join(parts)


VENUE_CLASS = Bybit

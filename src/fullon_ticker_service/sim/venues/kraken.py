"""Kraken spot websocket v2 (wss://ws.kraken.com/v2), as ccxt.pro speaks it.

Client: {"method":"subscribe"|"unsubscribe","params":{"channel":"ticker","symbol":["BTC/USD",..],
"event_trigger"?:"trades"|"bbo","snapshot"?:bool},"req_id":N} and {"method":"ping","req_id"?:N}.
Server: on connect a `status` frame; one ack per symbol {"method":"subscribe","req_id":N,"result":
{"channel":"ticker","event_trigger":"trades","snapshot":true,"symbol":"BTC/USD"},"success":true,
"time_in":..,"time_out":..} (or {"error":..,"success":false,"symbol":..} for that symbol), then
{"channel":"ticker","type":"snapshot"|"update","data":[{symbol,bid,bid_qty,ask,ask_qty,last,volume,
vwap,low,high,change,change_pct}]} with JSON numbers and no timestamp. Symbols are v2 names, which
are ccxt's unified symbols (BTC/USD, not the v1 wsname XBT/USD). Pings get {"method":"pong",..};
once subscribed, {"channel":"heartbeat"} comes about once a second when nothing else was sent.
A non-finite price is sent as `null` (what serde/JS serialisers emit): ccxt parses frames with
orjson, which rejects a bare NaN token (see tests/sim/test_kraken.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, market

TRIGGERS = ("trades", "bbo")
# Kraken's own asset-pair names for the real bases (id, baseId, v1 wsname base); others: plain.
KRAKEN_IDS = {"BTC": ("XXBTZUSD", "XXBT", "XBT"), "ETH": ("XETHZUSD", "XETH", "ETH"),
              "XRP": ("XXRPZUSD", "XXRP", "XRP"), "LTC": ("XLTCZUSD", "XLTC", "LTC"),
              "DOGE": ("XDGUSD", "XXDG", "XDG")}


def _num(x: float) -> str:
    """A JSON number as Kraken v2 prints it (plain decimal); `null` when it is not finite."""
    if not math.isfinite(x):
        return "null"
    s = f"{x:.8f}".rstrip("0")
    return s + "0" if s[-1] == "." else s


def _now(conn: Conn) -> str:
    """The exchange's wall clock (the simulator's `skew` included) as Kraken prints it."""
    skew = conn.exchange.skew_ms / 1000
    return datetime.fromtimestamp(time.time() + skew, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Kraken(Venue):
    id = "kraken"
    quote_ccy = "USD"

    def __init__(self) -> None:
        super().__init__()
        self._last_q: Quote | None = None
        self._last_body = ""
        self._conn_ids = 0

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        out = []
        for b in bases(n):
            mid, base_id, ws_base = KRAKEN_IDS.get(b, (f"{b}USD", b, b))
            out.append(market(mid, b, "USD", base_id=base_id, quote_id="ZUSD", altname=f"{ws_base}USD",
                              info={"altname": f"{ws_base}USD", "wsname": f"{ws_base}/USD",
                                    "base": base_id, "quote": "ZUSD", "status": "online"}))
        return out

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        return {"urls": {"api": {"ws": {"public": ws_base, "publicV2": f"{ws_base}/v2",
                                        "private": f"{ws_base}/auth", "privateV2": f"{ws_base}/auth/v2"}}}}

    async def on_open(self, conn: Conn) -> None:
        self._conn_ids += 1
        conn.state["tx"] = 0.0
        await conn.send(f'{{"channel":"status","type":"update","data":[{{"version":"2.0.10","system":"online",'
                        f'"api_version":"v2","connection_id":{14_000_000_000_000_000_000 + self._conn_ids}}}]}}')

    async def on_text(self, conn: Conn, text: str) -> None:
        time_in = _now(conn)
        try:
            req = orjson.loads(text)
            method = req["method"]
            req_id = req.get("req_id")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            await self._reply(conn, {"error": "Malformed request", "method": "error", "success": False}, time_in)
            return
        if method == "ping":
            await self._reply(conn, {"method": "pong", "req_id": req_id}, time_in)
            return
        if method not in ("subscribe", "unsubscribe"):
            await self._reply(conn, {"error": f"Method not found: {method}", "method": method, "req_id": req_id,
                                     "success": False}, time_in)
            return
        params = req.get("params")
        channel = params.get("channel") if isinstance(params, dict) else None
        symbols = params.get("symbol") if isinstance(params, dict) else None
        trigger = params.get("event_trigger", "trades") if isinstance(params, dict) else None
        snapshot = params.get("snapshot", True) if isinstance(params, dict) else True
        if channel != "ticker" or not isinstance(symbols, list) or trigger not in TRIGGERS:
            error = ("Channel not found" if channel != "ticker" else
                     "Invalid event_trigger" if trigger not in TRIGGERS else "symbol must be an array")
            await self._reply(conn, {"error": error, "method": method, "req_id": req_id, "success": False}, time_in)
            return
        key = "ticker" if trigger == "trades" else "ticker:bbo"
        for symbol in symbols:
            m = self.by_symbol.get(symbol) if isinstance(symbol, str) else None
            if m is None:
                await self._reply(conn, {"error": f"Currency pair not supported {symbol}", "method": method,
                                         "req_id": req_id, "success": False, "symbol": symbol}, time_in)
                continue
            subscribed = (key, symbol) in conn.subs
            if subscribed == (method == "subscribe"):
                error = "Already subscribed" if subscribed else "Subscription Not Found"
                await self._reply(conn, {"error": error, "method": method, "req_id": req_id, "success": False,
                                         "symbol": symbol}, time_in)
                continue
            result: dict[str, Any] = {"channel": "ticker", "event_trigger": trigger}
            if method == "unsubscribe":
                conn.unsubscribe(key, symbol)
                await self._reply(conn, {"method": method, "req_id": req_id, "result": {**result, "symbol": symbol},
                                         "success": True}, time_in)
                continue
            await self._reply(conn, {"method": method, "req_id": req_id,
                                     "result": {**result, "snapshot": bool(snapshot), "symbol": symbol},
                                     "success": True}, time_in)
            await conn.subscribe(key, symbol, snapshot=False)
            if snapshot and not conn.exchange.silent(symbol):
                await conn.send(self._frame(conn, "snapshot", conn.exchange.current(symbol)))
            if "hb" not in conn.state:
                conn.state["hb"] = asyncio.create_task(self._beat(conn), name="sim-kraken-heartbeat")

    async def _reply(self, conn: Conn, body: dict[str, Any], time_in: str) -> None:
        if body.get("req_id", 0) is None:
            del body["req_id"]  # Kraken echoes req_id only when the client sent one
        body["time_in"], body["time_out"] = time_in, _now(conn)
        await conn.send(orjson.dumps(body).decode())

    async def _beat(self, conn: Conn) -> None:
        """{"channel":"heartbeat"} about once a second in the absence of other channel updates."""
        while not conn.closed:
            await asyncio.sleep(1.0)
            if conn.subs and not conn.exchange.stalled and time.monotonic() - conn.state["tx"] >= 1.0:
                try:
                    await conn.send('{"channel":"heartbeat"}')
                except (ConnectionError, RuntimeError):
                    return

    def _frame(self, conn: Conn, kind: str, q: Quote) -> str:
        conn.state["tx"] = time.monotonic()
        if q is not self._last_q:  # every subscriber of a tick gets the same payload: build it once
            self._last_q = q
            pct = q.percentage
            self._last_body = (
                f'{{"symbol":"{q.symbol}","bid":{_num(q.bid)},"bid_qty":1.5,"ask":{_num(q.ask)},'
                f'"ask_qty":2.25,"last":{_num(q.last)},"volume":{_num(q.volume)},"vwap":{_num(q.last)},'
                f'"low":{_num(q.low)},"high":{_num(q.high)},"change":{_num(q.change)},'
                f'"change_pct":{f"{pct:.2f}" if math.isfinite(pct) else "null"}}}')
        return f'{{"channel":"ticker","type":"{kind}","data":[{self._last_body}]}}'

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        return self._frame(conn, "update", q)


VENUE_CLASS = Kraken

"""Coinbase Advanced Trade websocket (wss://advanced-trade-ws.coinbase.com), as ccxt.pro speaks it.

Client: {"type":"subscribe"|"unsubscribe","product_ids":["BTC-USD",...],"channel":"ticker"}.
Channels: `ticker`, `ticker_batch` (ccxt's watch_tickers) and `heartbeats` (one frame a second).
Public channels need no auth; `api_key`/`timestamp`/`signature`/`jwt` fields are accepted unchecked.
Server: after every (un)subscribe a `subscriptions` frame listing *all* of the connection's
remaining subscriptions (`{}` when none is left), then one `snapshot` frame per newly subscribed
product (its current ticker), then one `update` frame per ticker change. Every frame
has the envelope {"channel","client_id":"","timestamp":RFC3339 with nanoseconds,"sequence_num"},
`sequence_num` counting frames per connection. Errors: {"type":"error","message":...}.
The real `ticker_batch` batches updates every 5 s; the simulator sends each update at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, market

CHANNELS = ("ticker", "ticker_batch")
HEARTBEATS = "heartbeats"


class Coinbase(Venue):
    id = "coinbase"
    quote_ccy = "USD"

    def __init__(self) -> None:
        super().__init__()
        self._sec = -1
        self._sec_str = ""

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        return [market(f"{b}-USD", b, "USD") for b in bases(n)]

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        # Public channels are unauthenticated in ccxt 4.5.90: no apiKey/secret needed.
        return {"urls": {"api": {"ws": f"{ws_base}/ws", "rest": http_base}}}

    # framing ------------------------------------------------------------------------------
    def _ts(self, ts_ms: int, nanos: int = 0) -> str:
        """RFC3339 as Coinbase (Go) prints it: nanoseconds, trailing zeros trimmed."""
        sec, ms = divmod(ts_ms, 1000)
        if sec != self._sec:
            self._sec, self._sec_str = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        frac = ms * 1_000_000 + nanos
        if not frac:
            return self._sec_str + "Z"
        return f"{self._sec_str}.{frac:09d}".rstrip("0") + "Z"

    @staticmethod
    def _seq(conn: Conn) -> int:
        n = conn.state.get("seq", 0)
        conn.state["seq"] = n + 1
        return n

    def _ticker(self, q: Quote) -> str:
        mid = self.by_symbol[q.symbol]["id"]
        return (f'{{"type":"ticker","product_id":"{mid}","price":"{fmt(q.last)}",'
                f'"volume_24_h":"{fmt(q.volume)}","low_24_h":"{fmt(q.low)}","high_24_h":"{fmt(q.high)}",'
                f'"low_52_w":"{fmt(q.low)}","high_52_w":"{fmt(q.high)}",'
                f'"price_percent_chg_24_h":"{q.percentage:.4f}",'
                f'"best_bid":"{fmt(q.bid)}","best_bid_quantity":"1.5","best_ask":"{fmt(q.ask)}",'
                f'"best_ask_quantity":"2.25"}}')

    def _frame(self, conn: Conn, channel: str, kind: str, tickers: list[str], ts: str) -> str:
        return (f'{{"channel":"{channel}","client_id":"","timestamp":"{ts}",'
                f'"sequence_num":{self._seq(conn)},"events":[{{"type":"{kind}","tickers":['
                + ",".join(tickers) + "]}]}")

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        # sub-millisecond digits vary like real nanosecond stamps; ccxt truncates to ms
        return self._frame(conn, channel, "update", [self._ticker(q)],
                           self._ts(q.ts_ms, (q.seq * 7919) % 1_000_000))

    def _now(self, conn: Conn) -> str:
        """The exchange's wall clock (the simulator's `skew` included)."""
        ns = time.time_ns() + conn.exchange.skew_ms * 1_000_000
        return self._ts(ns // 1_000_000, ns % 1_000_000)

    async def _subscriptions(self, conn: Conn) -> None:
        subs: dict[str, list[str]] = {}
        for channel, symbol in sorted(conn.subs):
            subs.setdefault(channel, []).append(self.by_symbol[symbol]["id"])
        if conn.state.get("hb"):
            subs[HEARTBEATS] = [HEARTBEATS]
        await conn.send(orjson.dumps({"channel": "subscriptions", "client_id": "", "timestamp": self._now(conn),
                                      "sequence_num": self._seq(conn),
                                      "events": [{"subscriptions": subs}]}).decode())

    # client frames ------------------------------------------------------------------------
    async def on_text(self, conn: Conn, text: str) -> None:
        try:
            req = orjson.loads(text)
            kind, channel = req["type"], req["channel"]
            product_ids = req.get("product_ids") or []
            if not isinstance(product_ids, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await conn.send('{"type":"error","message":"failure to parse request"}')
            return
        if kind not in ("subscribe", "unsubscribe"):
            await conn.send(orjson.dumps({"type": "error", "message": f"unknown message type {kind}"})
                            .decode())
            return
        if channel == HEARTBEATS:
            await self._heartbeats(conn, kind == "subscribe")
            await self._subscriptions(conn)
            return
        if channel not in CHANNELS:
            await conn.send(orjson.dumps({"type": "error", "message": f"unknown channel {channel}"}).decode())
            return
        symbols = [m["symbol"] for m in map(self.by_id.get, map(str, product_ids)) if m is not None]
        if kind == "unsubscribe":
            for s in symbols:
                conn.unsubscribe(channel, s)
            await self._subscriptions(conn)
            return
        new = [s for s in symbols if (channel, s) not in conn.subs]
        for s in new:
            await conn.subscribe(channel, s, snapshot=False)
        await self._subscriptions(conn)
        for s in new:  # one snapshot frame per product, so its envelope timestamp is that quote's
            if conn.exchange.silent(s):
                continue
            q = conn.exchange.current(s)
            await conn.send(self._frame(conn, channel, "snapshot", [self._ticker(q)], self._ts(q.ts_ms)))

    async def _heartbeats(self, conn: Conn, on: bool) -> None:
        task: asyncio.Task[None] | None = conn.state.pop("hb", None)
        if task is not None:
            task.cancel()
        if on:
            conn.state["hb"] = asyncio.create_task(self._beat(conn), name="sim-coinbase-heartbeats")

    async def _beat(self, conn: Conn) -> None:
        counter = 0
        while not conn.closed:
            if not conn.exchange.stalled:
                counter += 1
                ns = time.time_ns() + conn.exchange.skew_ms * 1_000_000
                current = (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns // 1_000_000_000))
                           + f".{ns % 1_000_000_000:09d} +0000 UTC")
                await conn.send(
                    f'{{"channel":"heartbeats","client_id":"","timestamp":"{self._now(conn)}",'
                    f'"sequence_num":{self._seq(conn)},"events":[{{"current_time":"{current}",'
                    f'"heartbeat_counter":"{counter}"}}]}}')
            await asyncio.sleep(1.0)


VENUE_CLASS = Coinbase

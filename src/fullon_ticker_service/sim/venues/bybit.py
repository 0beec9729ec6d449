"""Bybit v5 public websocket (wss://stream.bybit.com/v5/public/{spot,linear,inverse}), as ccxt.pro speaks it.

Markets of three kinds, each served only on its own socket, as on the real exchange:
    spot       `BTC/USDT`       id `BTCUSDT`   /v5/public/spot
    linear     `BTC/USDT:USDT`  id `BTCUSDT`   /v5/public/linear   (USDT-margined perpetuals)
    inverse    `BTC/USD:BTC`    id `BTCUSD`    /v5/public/inverse  (coin-margined perpetuals)
Spot and linear share ids (`BTCUSDT`): a topic means the market of the socket it arrives on. A
topic for a market of another socket gets "handler not found", like an unknown one. ccxt picks
the socket from the *first* symbol of a watch call, so one call must hold one kind.

Client: {"op":"subscribe"|"unsubscribe","args":["tickers.BTCUSDT","orderbook.1.BTCUSDT",...],"req_id":N}
        {"op":"ping","req_id":N}                      (ccxt sends this every 18 s)
Server: {"success":true,"ret_msg":"","conn_id":"..","req_id":"N","op":"subscribe"}
        {"success":true,"ret_msg":"pong","conn_id":"..","req_id":"N","op":"ping"}
        {"success":false,"ret_msg":"error:already subscribed,topic:..",...}  (valid topics still subscribed)
Limits as documented: spot takes at most 10 args per request (more: {"success":false,"ret_msg":
"args size >10","conn_id":..,"op":"subscribe"} with no req_id, so ccxt fails every waiter on the
socket, and nothing is subscribed); on the other sockets the args of one request may not exceed
21,000 characters.

`tickers.<id>`:
- linear/inverse: the first frame per topic and connection is `"type":"snapshot"` with the full
  ticker; later ones are `"type":"delta"` carrying only the fields that changed since the
  previous frame on that topic (ccxt merges them into the stored ticker). `"ts"` is the quote
  time (ms). Inverse volumes are in contracts of 1 USD: `volume24h` = base volume x price and
  `turnover24h` = base volume (ccxt reports them as baseVolume and quoteVolume as they are,
  so its baseVolume of an inverse market is the USD volume).
- spot: every frame is a full `"type":"snapshot"`, with no bid/ask (ccxt's bid/ask are None;
  `orderbook.1` has them) and with `usdIndexPrice`, which is how ccxt tells a spot frame.
`orderbook.1.<id>`: best bid/ask; every frame is a full snapshot of the single level (Bybit pushes
level-1 snapshots; sending no deltas keeps a spoiled NaN level from lingering in a client book).
ccxt's `watch_bids_asks` uses it (timestamp = `ts`).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, fmt_int, market

TICKERS = "tickers"
BOOK1 = "orderbook.1"
CATEGORIES = ("spot", "linear", "inverse")
PATHS = {f"/v5/public/{c}": c for c in CATEGORIES}
MAX_ARGS_CHARS = 21_000
SPOT_MAX_ARGS = 10
INVERSE_BASES = frozenset({"BTC", "ETH", "SOL", "XRP"})  # coin-margined perpetuals listed here
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


def category(m: dict[str, Any]) -> str:
    """spot, linear or inverse: which socket serves the market."""
    return "spot" if m["spot"] else "linear" if m["linear"] else "inverse"


class Bybit(Venue):
    id = "bybit"

    def __init__(self) -> None:
        super().__init__()
        self.by_topic_id: dict[tuple[str, str], dict[str, Any]] = {}  # (category, id) -> market
        self.category: dict[str, str] = {}  # unified symbol -> category

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        """Per base: the linear perpetual, the spot pair, and for BTC/ETH/SOL/XRP the inverse
        perpetual, so the first symbols cover all three sockets (and the id shared by spot and
        linear): BTC/USDT:USDT, BTC/USDT, BTC/USD:BTC, ETH/USDT:USDT, ..."""
        out: list[dict[str, Any]] = []
        for b in bases(n):
            out.append(market(f"{b}USDT", b, "USDT", kind="swap"))
            out.append(market(f"{b}USDT", b, "USDT"))
            if b in INVERSE_BASES:
                out.append(market(f"{b}USD", b, "USD", kind="swap", settle=b))
            if len(out) >= n:
                break
        return out[:n]

    def index(self, markets: list[dict[str, Any]]) -> None:
        super().index(markets)
        self.by_topic_id = {(category(m), m["id"]): m for m in markets}
        self.category = {m["symbol"]: category(m) for m in markets}

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

    @staticmethod
    def _socket(conn: Conn) -> str | None:
        path = conn.path.rstrip("/")
        return next((c for p, c in PATHS.items() if path.endswith(p)), None)

    def _topic(self, conn: Conn, topic: Any) -> tuple[str, str] | None:
        """(channel, unified symbol) for a topic this connection can serve, else None."""
        cat = self._socket(conn)
        if cat is None or not isinstance(topic, str):
            return None
        if topic.startswith("tickers."):
            channel, mid = TICKERS, topic[8:]
        elif topic.startswith("orderbook.1."):
            channel, mid = BOOK1, topic[12:]
        else:
            return None
        m = self.by_topic_id.get((cat, mid))
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
        if self._socket(conn) == "spot" and len(args) > SPOT_MAX_ARGS:
            await conn.send(self._reply(conn, op, None, False, f"args size >{SPOT_MAX_ARGS}"))
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
        cat = self.category[q.symbol]
        cs = CS_BASE + q.seq
        if channel == BOOK1:
            bsz, asz = ("1500", "2250") if cat == "inverse" else ("1.5", "2.25")
            return (f'{{"topic":"orderbook.1.{mid}","type":"snapshot","ts":{q.ts_ms},"data":{{"s":"{mid}",'
                    f'"b":[["{fmt(q.bid)}","{bsz}"]],"a":[["{fmt(q.ask)}","{asz}"]],"u":{q.seq + 1},'
                    f'"seq":{cs}}},"cts":{q.ts_ms - 2}}}')
        if cat == "spot":
            return (f'{{"topic":"tickers.{mid}","ts":{q.ts_ms},"type":"snapshot","cs":{cs},"data":{{'
                    f'"symbol":"{mid}","lastPrice":"{fmt(q.last)}","highPrice24h":"{fmt(q.high)}",'
                    f'"lowPrice24h":"{fmt(q.low)}","prevPrice24h":"{fmt(q.open)}","volume24h":"{fmt(q.volume)}",'
                    f'"turnover24h":"{fmt(q.quote_volume)}","price24hPcnt":"{_pct(q)}",'
                    f'"usdIndexPrice":"{fmt(q.mid)}"}}}}')
        if cat == "inverse":  # contracts of 1 USD: volume in USD, turnover in the coin
            volume, turnover = fmt_int(q.quote_volume), fmt(q.volume)
            oi, oi_value, bsz, asz = "449736676", "15747.08", "1500", "2250"
        else:
            volume, turnover = fmt(q.volume), fmt(q.quote_volume)
            oi, oi_value, bsz, asz = "52774.528", "1506861070.82", "1.5", "2.25"
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
                    f'"indexPrice":"{last}","openInterest":"{oi}","openInterestValue":"{oi_value}",'
                    f'"turnover24h":"{turnover}","volume24h":"{volume}",'
                    f'"nextFundingTime":"{(q.ts_ms // FUNDING_MS + 1) * FUNDING_MS}","fundingRate":"0.0001",'
                    f'"bid1Price":"{fmt(q.bid)}","bid1Size":"{bsz}","ask1Price":"{fmt(q.ask)}",'
                    f'"ask1Size":"{asz}"}},"cs":{cs},"ts":{q.ts_ms}}}')
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
        price_or_volume = q.last != prev.last or q.volume != prev.volume
        if (cat == "inverse" and q.volume != prev.volume) or (cat == "linear" and price_or_volume):
            parts.append(f',"turnover24h":"{turnover}"')
        if (cat == "inverse" and price_or_volume) or (cat == "linear" and q.volume != prev.volume):
            parts.append(f',"volume24h":"{volume}"')
        if q.bid != prev.bid:
            parts.append(f',"bid1Price":"{fmt(q.bid)}","bid1Size":"{bsz}"')
        if q.ask != prev.ask:
            parts.append(f',"ask1Price":"{fmt(q.ask)}","ask1Size":"{asz}"')
        parts.append(f'}},"cs":{cs},"ts":{q.ts_ms}}}')
        return "".join(parts)


VENUE_CLASS = Bybit

"""Binance spot websocket streams (wss://stream.binance.com:9443/ws), as ccxt.pro speaks them,
the combined-stream endpoint other clients use (cryptofeed), and the REST symbol list.

Client: {"method":"SUBSCRIBE"|"UNSUBSCRIBE","params":["btcusdt@ticker",...],"id":N}
Server: {"result":null,"id":N}, then bare stream payloads (no combined-stream wrapper on /ws):
`<id>@ticker` (24hrTicker), `<id>@miniTicker` (24hrMiniTicker, no bid/ask), `<id>@bookTicker`.
ccxt appends `/<n>` (stream index) to the URL; any sub-path is accepted. Keepalive is websocket
ping/pong (the server answers pings; ccxt's keepAlive is 180 s).

Combined streams: `/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker` subscribes those streams
when the socket opens (no SUBSCRIBE message needed; SUBSCRIBE/UNSUBSCRIBE work there too), and every
payload comes wrapped as `{"stream":"btcusdt@bookTicker","data":<payload>}`.

REST: `GET /api/v3/exchangeInfo` (optionally `?symbol=BTCUSDT` or `?symbols=["BTCUSDT",...]`) lists the
spot markets as Binance does: status, base/quote assets, precisions and filters (`PRICE_FILTER` first,
its `tickSize` the market's price tick).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, market

CHANNELS = ("ticker", "miniTicker", "bookTicker")
COMBINED = "combined"  # Conn.state key: the socket was opened on /stream (payloads wrapped)
EXCHANGE_INFO = "api/v3/exchangeInfo"
# what /api/v3/exchangeInfo says of every spot symbol besides its own names and filters
SPOT_RULES: dict[str, Any] = {
    "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
    "quoteCommissionPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                   "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
    "allowTrailingStop": True, "cancelReplaceAllowed": True, "amendAllowed": True, "pegInstructionsAllowed": True,
    "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
    "permissions": [], "permissionSets": [["SPOT"]],
    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
}
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def dec8(x: float) -> str:
    """A number as Binance's REST prints it: always eight decimals."""
    return f"{x:.8f}"


class Binance(Venue):
    id = "binance"

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        return [market(f"{b}USDT", b, "USDT", lowercaseId=f"{b.lower()}usdt") for b in bases(n)]

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        ws = f"{ws_base}/ws"
        return {"urls": {"api": {"ws": {"spot": ws, "margin": ws, "future": ws, "delivery": ws}}},
                "options": {"defaultType": "spot"}}

    async def on_open(self, conn: Conn) -> None:
        """`/stream?streams=a@bookTicker/b@ticker`: a combined-stream socket, subscribed from its URL."""
        if not conn.path.rstrip("/").endswith("/stream"):
            return
        conn.state[COMBINED] = True
        for stream in conn.query.get("streams", "").split("/"):
            await self._stream(conn, "SUBSCRIBE", stream)

    async def _stream(self, conn: Conn, method: str, stream: object) -> None:
        lower_id, _, channel = str(stream).partition("@")
        m = self.by_id.get(lower_id.upper())
        if m is None or channel not in CHANNELS:
            return  # Binance acks unknown streams and simply sends nothing
        if method == "SUBSCRIBE":
            await conn.subscribe(channel, m["symbol"])
        else:
            conn.unsubscribe(channel, m["symbol"])

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
            await self._stream(conn, method, stream)

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        m = self.by_symbol[q.symbol]
        if channel == "bookTicker":
            frame = self.book_ticker(m, q)
        elif channel == "miniTicker":
            frame = self.mini_ticker(m, q)
        else:
            frame = self.ticker(m, q)
        if conn.state.get(COMBINED):
            return f'{{"stream":"{m["id"].lower()}@{channel}","data":{frame}}}'
        return frame

    # REST ---------------------------------------------------------------------------------------
    async def rest(self, request: web.Request, tail: str) -> web.StreamResponse | None:
        if tail.rstrip("/") != EXCHANGE_INFO:
            return None
        spot = [m for m in self.by_id.values() if m["spot"]]
        if not spot:
            return None  # the futures venues list their markets elsewhere (/fapi, /dapi)
        wanted = self._wanted_symbols(request.query.get("symbol"), request.query.get("symbols"))
        if isinstance(wanted, web.Response):
            return wanted
        if wanted is not None:
            spot = [m for m in spot if m["id"] in wanted]
        return web.Response(body=orjson.dumps(self.exchange_info(spot)), content_type="application/json")

    def _wanted_symbols(self, one: str | None, many: str | None) -> set[str] | web.Response | None:
        """The `symbol` / `symbols` filter of exchangeInfo (None: all), or Binance's error for a bad one."""
        if one is None and many is None:
            return None
        try:
            ids = [one] if one is not None else orjson.loads(many or "")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise TypeError
        except (orjson.JSONDecodeError, TypeError):
            return web.json_response({"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."},
                                     status=400)
        unknown = [i for i in ids if i not in self.by_id or not self.by_id[i]["spot"]]
        if unknown:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        return set(ids)

    def exchange_info(self, markets: list[dict[str, Any]]) -> dict[str, Any]:
        """The body of GET /api/v3/exchangeInfo for `markets` (spot)."""
        return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": RATE_LIMITS,
                "exchangeFilters": [], "symbols": [self.symbol_info(m) for m in markets]}

    @staticmethod
    def symbol_info(m: dict[str, Any]) -> dict[str, Any]:
        tick = m["precision"]["price"]
        step = m["precision"]["amount"]
        return {
            "symbol": m["id"], "status": "TRADING" if m.get("active", True) else "BREAK",
            "baseAsset": m["baseId"], "quoteAsset": m["quoteId"], **SPOT_RULES,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": dec8(tick), "maxPrice": dec8(1_000_000.0),
                 "tickSize": dec8(tick)},
                {"filterType": "LOT_SIZE", "minQty": dec8(step), "maxQty": dec8(9_000_000.0), "stepSize": dec8(step)},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": dec8(0.0), "maxQty": dec8(1_000_000.0),
                 "stepSize": dec8(0.0)},
                {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
                 "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
                {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
                 "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
                {"filterType": "NOTIONAL", "minNotional": dec8(5.0), "applyMinToMarket": True,
                 "maxNotional": dec8(9_000_000.0), "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
        }

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

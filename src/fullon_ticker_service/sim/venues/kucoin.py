"""KuCoin spot websocket (classic API), as ccxt.pro 4.5.90 speaks it.

Connecting takes a REST call first: `POST /api/v1/bullet-public` (here `POST /kucoin/api/v1/
bullet-public`) answers {"code":"200000","data":{"token":..,"instanceServers":[{"endpoint":
"ws://<this simulator>/kucoin/endpoint","encrypt":true,"protocol":"websocket","pingInterval":18000,
"pingTimeout":10000}]}}; ccxt then connects to `<endpoint>?token=..&privateChannel=false&connectId=
public` and uses `pingInterval` as its keepalive. (With markets injected by `set_markets()` ccxt
needs `exchange.open()` before the first watch, or the REST call fails inside it.)

Server: on connect {"id":"<connectId>","type":"welcome"} (no token: an error frame and a close).
Client: {"id":"N","type":"subscribe"|"unsubscribe","topic":"/market/ticker:BTC-USDT,ETH-USDT",
"response":true} -> {"id":"N","type":"ack"}; {"id":"N","type":"ping"} -> {"id":"N","type":"pong"}.
At most 100 symbols per topic (more: {"id":..,"type":"error","code":509,"data":"exceed max
subscription count limitation of 100 per time"}); an unknown symbol gets code 404 "topic ... is not
found" and nothing of that request is subscribed. (ccxt turns error frames into exceptions inside
its receive loop, which then stops: the socket stays open and silent.)
Topics (frames {"topic","type":"message","subject","data"}):
- `/market/ticker:<ids>` (ccxt's watch_tickers) `trade.ticker`: price, size, bestBid/bestAsk with
  sizes, `time` (ms, ccxt's timestamp); no volume, high or low (ccxt: None).
- `/market/ticker:all`: every symbol, `subject` = the symbol id.
- `/market/snapshot:<id>` (ccxt's watch_ticker) `trade.snapshot`: the 24h statistics as JSON
  numbers (`lastTradedPrice`, `buy`, `sell`, `vol`, `volValue`, `changeRate`, `datetime` = ccxt's
  timestamp); a non-finite price goes out as null.
- `/spotMarket/level1:<ids>` (ccxt's watch_bids_asks) `level1`: {"asks":[px,sz],"bids":[px,sz],
  "timestamp":ms}.
"""

from __future__ import annotations

import math
import os
from typing import Any

import orjson
from aiohttp import web

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, market

TICKER, ALL, SNAPSHOT, LEVEL1 = "ticker", "ticker:all", "snapshot", "level1"
PREFIXES = {"/market/ticker": TICKER, "/market/snapshot": SNAPSHOT, "/spotMarket/level1": LEVEL1}
MAX_TOPIC_SYMBOLS = 100
PING_INTERVAL_MS, PING_TIMEOUT_MS = 18_000, 10_000
ENDPOINT = "endpoint"


def _num(x: float) -> str:
    """A JSON number (plain decimal); `null` when it is not finite."""
    if not math.isfinite(x):
        return "null"
    s = f"{x:.8f}".rstrip("0")
    return s + "0" if s[-1] == "." else s


class Kucoin(Venue):
    id = "kucoin"

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        return [market(f"{b}-USDT", b, "USDT") for b in bases(n)]

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        # every REST base at the simulator: the bullet-public call must reach it, any other fails fast
        rest = {k: http_base for k in ("public", "private", "futuresPrivate", "futuresPublic", "webExchange",
                                       "broker", "earn", "uta", "utaV2", "utaPrivate")}
        ws = {"spot": ws_base, "futures": ws_base, "private": ws_base}
        return {"urls": {"api": {**rest, "ws": ws}}, "options": {"defaultType": "spot"}}

    async def rest(self, request: web.Request, tail: str) -> web.StreamResponse | None:
        if tail.rstrip("/") != "api/v1/bullet-public":
            return None
        if request.method != "POST":
            return web.json_response({"code": "400100", "msg": "Unsupported request method"}, status=405)
        prefix = request.path[: -len(tail)].rstrip("/")  # "/kucoin"
        endpoint = f"ws://{request.host}{prefix}/{ENDPOINT}"
        token = "2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEsEWU64mdzUOPusi34M_wGoSf7iNyEWJ" + \
            os.urandom(12).hex()
        return web.json_response({"code": "200000", "data": {
            "token": token,
            "instanceServers": [{"endpoint": endpoint, "encrypt": True, "protocol": "websocket",
                                 "pingInterval": PING_INTERVAL_MS, "pingTimeout": PING_TIMEOUT_MS}],
        }})

    async def on_open(self, conn: Conn) -> None:
        conn_id = conn.query.get("connectId") or os.urandom(5).hex()
        if not conn.query.get("token"):
            await conn.send(orjson.dumps({"id": conn_id, "type": "error", "code": 401,
                                          "data": "token is missing"}).decode())
            await conn.close(1000)
            return
        await conn.send(orjson.dumps({"id": conn_id, "type": "welcome"}).decode())

    async def _error(self, conn: Conn, req_id: Any, code: int, data: str) -> None:
        await conn.send(orjson.dumps({"id": req_id, "type": "error", "code": code, "data": data}).decode())

    async def on_text(self, conn: Conn, text: str) -> None:
        try:
            req = orjson.loads(text)
            kind = req["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._error(conn, None, 400, "malformed request")
            return
        req_id = req.get("id")
        if kind == "ping":
            await conn.send(orjson.dumps({"id": req_id, "type": "pong"}).decode())
            return
        if kind not in ("subscribe", "unsubscribe"):
            await self._error(conn, req_id, 415, "type is not supported")
            return
        topic = req.get("topic")
        prefix, _, ids = topic.partition(":") if isinstance(topic, str) else ("", "", "")
        channel = PREFIXES.get(prefix)
        if channel is None or not ids:
            await self._error(conn, req_id, 404, f"topic {topic} is not found")
            return
        if channel == TICKER and ids == "all":
            channel, symbols = ALL, [m["symbol"] for m in self.by_id.values()]
        else:
            parts = ids.split(",")
            if len(parts) > MAX_TOPIC_SYMBOLS:
                await self._error(conn, req_id, 509,
                                  f"exceed max subscription count limitation of {MAX_TOPIC_SYMBOLS} per time")
                return
            found = [self.by_id.get(p) for p in parts]
            if None in found:
                await self._error(conn, req_id, 404, f"topic {topic} is not found")
                return
            symbols = [m["symbol"] for m in found if m is not None]
        if kind == "unsubscribe":
            for s in symbols:
                conn.unsubscribe(channel, s)
        if req.get("response"):
            await conn.send(orjson.dumps({"id": req_id, "type": "ack"}).decode())
        if kind == "subscribe":
            for s in symbols:
                if (channel, s) not in conn.subs:
                    await conn.subscribe(channel, s)

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        mid = self.by_symbol[q.symbol]["id"]
        if channel == LEVEL1:
            return (f'{{"topic":"/spotMarket/level1:{mid}","type":"message","subject":"level1","data":{{'
                    f'"asks":["{fmt(q.ask)}","2.25"],"bids":["{fmt(q.bid)}","1.5"],"timestamp":{q.ts_ms}}}}}')
        seq = 1_612_844_051_653 + q.seq
        if channel == SNAPSHOT:
            base, quote = mid.split("-")
            rate = round((q.last - q.open) / q.open, 4) if math.isfinite(q.last) and q.open else math.nan
            return (f'{{"topic":"/market/snapshot:{mid}","type":"message","subject":"trade.snapshot",'
                    f'"data":{{"sequence":"{seq}","data":{{"averagePrice":{_num(q.open)},'
                    f'"baseCurrency":"{base}","board":1,"buy":{_num(q.bid)},"changePrice":{_num(q.change)},'
                    f'"changeRate":{_num(rate)},"close":{_num(q.last)},"datetime":{q.ts_ms},'
                    f'"high":{_num(q.high)},"lastTradedPrice":{_num(q.last)},"low":{_num(q.low)},'
                    f'"makerCoefficient":1,"makerFeeRate":0.001,"marginTrade":true,"mark":0,"market":"USDS",'
                    f'"markets":["USDS"],"open":{_num(q.open)},"quoteCurrency":"{quote}",'
                    f'"sell":{_num(q.ask)},"sort":100,"symbol":"{mid}","symbolCode":"{mid}",'
                    f'"takerCoefficient":1,"takerFeeRate":0.001,"trading":true,"vol":{_num(q.volume)},'
                    f'"volValue":{_num(q.quote_volume)}}}}}}}')
        topic, subject = (f"/market/ticker:{mid}", "trade.ticker") if channel == TICKER else \
            ("/market/ticker:all", mid)
        return (f'{{"data":{{"sequence":"{seq}","bestAsk":"{fmt(q.ask)}","size":"0.01745248",'
                f'"bestBidSize":"1.5","price":"{fmt(q.last)}","time":{q.ts_ms},"bestAskSize":"2.25",'
                f'"bestBid":"{fmt(q.bid)}"}},"subject":"{subject}","topic":"{topic}","type":"message"}}')


VENUE_CLASS = Kucoin

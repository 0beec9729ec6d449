"""A local replay server: real captured exchange frames, spoken to unmodified ccxt.pro.

``async with ReplayServer(venues=[...]) as srv:`` starts an aiohttp server on 127.0.0.1 (free port).
A ccxt.pro exchange built with ``srv.ccxt_config(venue)`` (URL overrides only) and
``set_markets(srv.markets(venue))`` (also at ``GET {srv.http_url}/<venue>/markets``) connects, gets its
subscriptions acknowledged in the exchange's own format, and receives the captured frames of every
(symbol, channel) it subscribes to, in file order, time-shifted so the venue's newest frame is "now"
(see captures.py). ``srv.expected(venue)`` is what ccxt itself parses from exactly those frames
(expected.py). The 16 venues are those of captures.VENUES; ``kraken_v1`` (websocket v1) and
``bitmex`` (no ccxt websocket class) are refused, captures.py says why.

How subscriptions map to frames: every data frame belongs to a channel, the stream name the real
endpoint serves it on (binance ``ticker`` / ``miniTicker`` / ``bookTicker``, gate ``tickers`` /
``book_ticker``, kucoin ``/market/ticker`` / ``/market/snapshot``, htx ``detail`` / ``bbo``,
krakenfutures ``ticker`` / ``ticker_lite``, ...). When a subscription on a connection newly covers
(symbol, channel), that symbol's frames of that channel are sent at once, in file order (a frame
holding several symbols, binance's arrays, is cut down to the newly covered ones, each element
byte-identical). Each URL path is its own endpoint and serves only what the real one would: a
symbol subscribed on a socket that does not list it (bybit linear id on the inverse socket, a gate
spot pair on the USDT-futures socket) is acknowledged and never served, as the real venues do.

Venue quirks handled (ours, summarised from the protocols):

- binance, binanceus, binanceusdm, binancecoinm: the frames were captured on the combined endpoint
  (``{"stream":..,"data":..}``); ccxt connects to ``/ws/<n>`` (raw endpoint, one connection per
  ``watch_*`` call), so only ``data`` is sent. ``{"method":"SUBSCRIBE","params":["btcusdt@ticker"],
  "id":N}`` is answered ``{"result":null,"id":N}``. Stream names are per event: ``24hrTicker`` on
  ``@ticker`` (``watch_tickers(..., {'name': 'ticker'})``), ``24hrMiniTicker`` on ``@miniTicker``
  (ccxt's default), ``bookTicker`` (``watch_bids_asks``). USD-M: ccxt rewrites ``.../ws`` to
  ``.../public/ws`` for bookTicker and ``.../market/ws`` for tickers; we serve each stream only on
  its own path. The spot URL contains ``/stream`` because ccxt decides "spot socket" from that
  substring (the real host is ``stream.binance.com``).
- bitfinex: ``info`` event on connect; ``{"event":"subscribe","channel":"ticker","symbol":"tX"}`` is
  answered by the captured ``subscribed`` event (with its ``chanId``); ccxt maps data arrays to the
  symbol only through that chanId, so data frames are re-keyed to the chanId given on this
  connection. Heartbeats ``[chanId,"hb",seq]`` are replayed too. No timestamps in the frames.
- coinbaseexchange: ``{"type":"subscribe","product_ids":[..],"channels":["ticker"]}`` answered by a
  ``subscriptions`` message; ``time`` is an ISO string with microseconds (shifted as text).
- deribit: JSON-RPC ``public/subscribe``; ccxt resolves on the channel string and asks for
  ``ticker.<instrument>.100ms`` while the capture has ``.raw`` (raw needs auth), so each data
  frame's ``params.channel`` is rewritten to the channel the client subscribed.
- gate: three sockets (spot ``/ws/v4/``, USDT-settled ``/v4/ws/usdt``, BTC-settled ``/v4/ws/btc``);
  ``BTC_USDT`` is both a spot pair and a USDT swap, so ids resolve per socket. Acks echo ``id`` /
  ``channel`` with ``result.status = success``. ``time`` (s), ``time_ms`` and ``result.t`` shift.
- kucoin: ``POST /api/v1/bullet-public`` (ccxt's REST ``urls['api']['public']``) returns a token and
  an ``instanceServers`` endpoint pointing back at us; the socket first sends the captured
  ``welcome``; ``subscribe`` (``/market/ticker:A,B`` or ``/market/snapshot:A``) gets
  ``{"id":..,"type":"ack"}``; JSON ``ping`` gets ``pong``.
- okx: path ``/ws/v5/public``; one ack per arg ``{"event":"subscribe","arg":{..},"connId":..}``; the
  text ``ping`` gets ``pong``. ccxt copies bid/ask of ``tickers`` frames into ``exchange.bidsasks``.
- htx: three sockets (spot ``/ws``, linear ``/linear-swap-ws``, inverse ``/swap-ws``); every frame we
  send is gzip-compressed binary; ``{"sub":"market.<id>.detail","id":..}`` acked with
  ``status: ok, subbed``; we ping ``{"ping": ts}`` on connect and every 5 s and count
  ``{"pong": ts}`` answers. ``bbo`` frames only go to ``market.<id>.bbo`` subscriptions
  (ccxt sends those with ``options['watchTicker']['name'] = 'market.{marketId}.bbo'``).
- hitbtc: ``{"method":"subscribe","ch":"ticker/1s","params":{"symbols":[..]},"id":N}`` answered
  ``{"result":{"ch":..,"subscriptions":[..]},"id":N}``; frames keep their ``ch`` (ccxt reads only
  the part before ``/``).
- krakenfutures: ``info`` event on connect, one ``subscribed`` event per product; feeds ``ticker``
  (tickers) and ``ticker_lite`` (ccxt's bid/ask stream).
- kraken: websocket v2 (``/v2``); one ack per symbol in the v2 format (req_id echoed); ``ping``
  method answered ``pong``; ``status`` message on connect.
- bybit: three public sockets ``/v5/public/{spot,linear,inverse}``; ``op: subscribe`` acked with
  ``success: true`` and the ``req_id``; ``op: ping`` answered; ticker ``delta`` frames are merged by
  ccxt into the previous snapshot, so per-symbol order matters (and is kept).
- hyperliquid: ``subscribe`` ``activeAssetCtx`` with the perp's coin name or the spot ``@index``
  is answered ``subscriptionResponse``; spot data arrives on ``activeSpotAssetCtx``.
  The captured ``bbo`` frame is not served: ccxt 4.5.90 neither subscribes to nor parses it.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import WSMsgType, web

from tests.replay.captures import EXCLUDED, VENUES, Capture, Frame, Raw, dumps_raw, load

Pair = tuple[str, str]  # (ccxt symbol, channel)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


@dataclass
class Conn:
    """One websocket connection: its path, socket class, what it covers, what it was sent."""

    venue: str
    path: str
    socket: str
    ws: Any  # web.WebSocketResponse, or None for the virtual connection expected() renders with
    protocol: Protocol
    covered: set[Pair] = field(default_factory=set)
    state: dict[str, Any] = field(default_factory=dict)
    sent: list[int] = field(default_factory=list)  # frame numbers, in send order
    requests: list[str] = field(default_factory=list)
    pings_sent: int = 0
    pongs: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False

    async def send(self, text: str) -> None:
        if self.ws is None or self.closed or self.ws.closed:
            return
        payload = self.protocol.encode(text)
        if isinstance(payload, bytes):
            await self.ws.send_bytes(payload)
        else:
            await self.ws.send_str(payload)

    async def send_json(self, obj: Any) -> None:
        await self.send(_dumps(obj))

    def render_new(self, pairs: set[Pair] | list[Pair]) -> list[tuple[Frame, str]]:
        """Mark `pairs` covered; the frames (rendered) they newly bring, in file order."""
        new = {p for p in pairs if p not in self.covered and self.protocol.serves(self.socket, *p)}
        self.covered |= new
        out: list[tuple[Frame, str]] = []
        if not new:
            return out
        for frame in self.protocol.cap.frames:
            if frame.channel is None:
                continue
            syms = [s for s in frame.symbols if (s, frame.channel) in new]
            if not syms:
                continue
            text = self.protocol.render(self, frame, syms)
            if text is not None:
                out.append((frame, text))
        return out

    async def cover(self, pairs: set[Pair] | list[Pair]) -> int:
        """Cover `pairs` and send the frames they bring; returns how many were sent."""
        rendered = self.render_new(pairs)
        for i, (frame, text) in enumerate(rendered):
            await self.send(text)
            self.sent.append(frame.n)
            if i % 64 == 63:
                await asyncio.sleep(0)
        return len(rendered)

    def uncover(self, pairs: set[Pair] | list[Pair]) -> None:
        self.covered -= set(pairs)

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "socket": self.socket, "covered": sorted(self.covered),
                "frames_sent": len(self.sent), "requests": list(self.requests),
                "pings_sent": self.pings_sent, "pongs": self.pongs, "closed": self.closed}


# --- protocols -------------------------------------------------------------------------------------
class Protocol:
    """What one venue's endpoints speak. Subclasses override the hooks they need."""

    single_socket = "main"

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.venue = cap.venue
        self.ids: dict[str, dict[str, str]] = {}  # socket -> exchange id -> ccxt symbol
        for m in cap.markets:
            sock = self.socket_of_market(m)
            for key in self.market_keys(m):
                self.ids.setdefault(sock, {}).setdefault(key, m["symbol"])
        self._counter = itertools.count(1)

    # addressing -----------------------------------------------------------------------------
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        """The `urls` part of the ccxt config (ws/http: our base URL for this venue)."""
        raise NotImplementedError

    def socket_paths(self) -> dict[str, str]:
        """socket class -> path (after /<venue>/) of a representative URL, for expected()'s clients."""
        return {self.single_socket: ""}

    def socket_for_path(self, tail: str) -> str | None:
        return self.single_socket

    def socket_of_market(self, market: dict[str, Any]) -> str:
        return self.single_socket

    def market_keys(self, market: dict[str, Any]) -> list[str]:
        return [market["id"]]

    def socket_of(self, symbol: str, channel: str) -> str:
        return self.socket_of_market(self.cap.market(symbol))

    def serves(self, socket: str, symbol: str, channel: str) -> bool:
        return symbol in self.cap.by_symbol and self.socket_of(symbol, channel) == socket

    def symbol_for(self, socket: str, exchange_id: str) -> str | None:
        return self.ids.get(socket, {}).get(exchange_id)

    def all_symbols(self, socket: str) -> list[str]:
        return list(dict.fromkeys(self.ids.get(socket, {}).values()))

    # wire -------------------------------------------------------------------------------------
    def encode(self, text: str) -> str | bytes:
        return text

    async def on_open(self, conn: Conn) -> None:
        return None

    async def on_message(self, conn: Conn, text: str) -> None:
        raise NotImplementedError

    def render(self, conn: Conn, frame: Frame, symbols: list[str]) -> str | None:
        return frame.text

    def virtual_subscribe(self, conn: Conn, pairs: list[Pair]) -> list[str]:
        """Set up `conn` as if ccxt had subscribed `pairs` with its defaults; the texts a real
        subscription answer would carry that ccxt needs before data (bitfinex `subscribed`)."""
        return []

    def next_id(self) -> int:
        return next(self._counter)

    async def http_post(self, tail: str, body: bytes, base_ws: str) -> Any:
        return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class Binance(Protocol):
    """binance / binanceus (spot), binanceusdm (linear), binancecoinm (inverse)."""

    STREAMS: ClassVar[dict[str, str]] = {"ticker": "ticker", "miniTicker": "miniTicker", "bookTicker": "bookTicker"}

    def __init__(self, cap: Capture) -> None:
        self.key = {"binance": "spot", "binanceus": "spot", "binanceusdm": "linear",
                    "binancecoinm": "inverse"}[cap.venue]
        super().__init__(cap)

    def urls(self, ws: str, http: str) -> dict[str, Any]:
        base = f"{ws}/stream/ws" if self.key == "spot" else f"{ws}/ws"
        return {"api": {"ws": {self.key: base}}}

    def socket_paths(self) -> dict[str, str]:
        if self.key == "spot":
            return {"spot": "stream/ws/0"}
        if self.key == "linear":
            return {"public": "public/ws/0", "market": "market/ws/0"}
        return {"all": "ws/0"}

    def socket_for_path(self, tail: str) -> str | None:
        if self.key == "spot":
            return "spot" if re.fullmatch(r"stream/ws(/\d+)?", tail) else None
        m = re.fullmatch(r"(?:(public|market)/)?ws(/\d+)?", tail)
        if not m:
            return None
        return (m.group(1) or "all") if self.key == "linear" else "all"

    def market_keys(self, market: dict[str, Any]) -> list[str]:
        return [market["id"], market.get("lowercaseId") or market["id"].lower()]

    def socket_of_market(self, market: dict[str, Any]) -> str:
        return "spot" if self.key == "spot" else "all"

    def serves(self, socket: str, symbol: str, channel: str) -> bool:
        if symbol not in self.cap.by_symbol:
            return False
        if socket == "public":  # USD-M split: high-frequency streams on /public, the rest on /market
            return channel == "bookTicker"
        if socket == "market":
            return channel != "bookTicker"
        return socket in ("spot", "all")

    def socket_of(self, symbol: str, channel: str) -> str:
        if self.key == "linear":
            return "public" if channel == "bookTicker" else "market"
        return "spot" if self.key == "spot" else "all"

    def _pairs(self, params: list[str]) -> list[Pair]:
        pairs: list[Pair] = []
        lookup = self.ids.get("spot" if self.key == "spot" else "all", {})
        for p in params:
            name, _, stream = str(p).partition("@")
            if name.startswith("!"):  # all-market streams: !ticker@arr, !miniTicker@arr, !bookTicker
                channel = self.STREAMS.get(name[1:])
                if channel:
                    pairs += [(s, channel) for s in dict.fromkeys(lookup.values())]
                continue
            channel = self.STREAMS.get(stream.split("@")[0])
            if channel and name in lookup:
                pairs.append((lookup[name], channel))
        return pairs

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        method, req_id = msg.get("method"), msg.get("id")
        params = msg.get("params") or []
        if method == "SUBSCRIBE":
            pairs = self._pairs(params)
            conn.state.setdefault("streams", set()).update(params)
            await conn.send_json({"result": None, "id": req_id})
            await conn.cover(pairs)
        elif method == "UNSUBSCRIBE":
            conn.uncover(self._pairs(params))
            conn.state.setdefault("streams", set()).difference_update(params)
            await conn.send_json({"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await conn.send_json({"result": sorted(conn.state.get("streams", ())), "id": req_id})
        elif req_id is not None:
            await conn.send_json({"result": None, "id": req_id})

    def render(self, conn: Conn, frame: Frame, symbols: list[str]) -> str | None:
        data = frame.obj["data"] if isinstance(frame.obj, dict) and "data" in frame.obj else frame.obj
        if isinstance(data, list):
            lookup = self.ids.get("spot" if self.key == "spot" else "all", {})
            keep = [el for el in data if lookup.get(str(el.get("s"))) in symbols]
            return dumps_raw(keep) if keep else None
        return dumps_raw(data)


class Bitfinex(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": {"public": f"{ws}/ws/2"}}}

    def socket_paths(self) -> dict[str, str]:
        return {"main": "ws/2"}

    def socket_for_path(self, tail: str) -> str | None:
        return "main" if tail.rstrip("/") == "ws/2" else None

    def _ack_frame(self, symbol: str) -> Frame | None:
        for f in self.cap.frames:
            if f.kind == "ack" and f.symbols == (symbol,):
                return f
        return None

    def _chan_id(self, conn: Conn, symbol: str) -> int:
        ids: dict[str, int] = conn.state.setdefault("chan_ids", {})
        if symbol not in ids:
            ack = self._ack_frame(symbol)
            captured = int(str(ack.obj["chanId"])) if ack is not None else None
            used = set(ids.values())
            ids[symbol] = captured if captured is not None and captured not in used else 900000 + self.next_id()
        return ids[symbol]

    def _subscribed(self, conn: Conn, symbol: str) -> str:
        chan = self._chan_id(conn, symbol)
        ack = self._ack_frame(symbol)
        market = self.cap.market(symbol)
        if ack is not None:
            obj = dict(ack.obj)
            obj["chanId"] = Raw(str(chan))
            return dumps_raw(obj)
        return _dumps({"event": "subscribed", "channel": "ticker", "chanId": chan, "symbol": market["id"],
                       "pair": market["id"][1:]})

    async def on_open(self, conn: Conn) -> None:
        for f in self.cap.frames:
            if f.kind == "info" and isinstance(f.obj, dict) and f.obj.get("event") == "info":
                await conn.send(f.text)
                return
        await conn.send_json({"event": "info", "version": 2, "platform": {"status": 1}})

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        event = msg.get("event")
        if event == "subscribe" and msg.get("channel") == "ticker":
            symbol = self.symbol_for("main", str(msg.get("symbol")))
            if symbol is None:
                await conn.send_json({"event": "error", "msg": "symbol: invalid", "code": 10300,
                                      "channel": "ticker", "symbol": msg.get("symbol")})
                return
            await conn.send(self._subscribed(conn, symbol))
            await conn.cover([(symbol, "ticker")])
        elif event == "unsubscribe":
            chan = int(msg.get("chanId", 0) or 0)
            ids = conn.state.get("chan_ids", {})
            for symbol, c in list(ids.items()):
                if c == chan:
                    conn.uncover([(symbol, "ticker")])
            await conn.send_json({"event": "unsubscribed", "status": "OK", "chanId": chan})
        elif event == "conf":
            await conn.send_json({"event": "conf", "status": "OK", "flags": msg.get("flags", 0)})
        elif event == "ping":
            await conn.send_json({"event": "pong", "ts": _now_ms(), "cid": msg.get("cid")})

    def render(self, conn: Conn, frame: Frame, symbols: list[str]) -> str | None:
        obj = list(frame.obj)
        obj[0] = Raw(str(self._chan_id(conn, symbols[0])))
        return dumps_raw(obj)

    def virtual_subscribe(self, conn: Conn, pairs: list[Pair]) -> list[str]:
        return [self._subscribed(conn, s) for s in dict.fromkeys(s for s, _ in pairs)]


class CoinbaseExchange(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": ws}}

    def socket_for_path(self, tail: str) -> str | None:
        return "main" if tail.strip("/") == "" else None

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict) or msg.get("type") not in ("subscribe", "unsubscribe"):
            return
        default_ids = msg.get("product_ids") or []
        pairs: list[Pair] = []
        for ch in msg.get("channels") or []:
            name, ids = (ch, default_ids) if isinstance(ch, str) else (ch.get("name"), ch.get("product_ids") or [])
            if name == "ticker":
                pairs += [(s, "ticker") for s in (self.symbol_for("main", i) for i in ids) if s]
        if msg["type"] == "unsubscribe":
            conn.uncover(pairs)
            live = {p for p in conn.covered if p[1] == "ticker"}
        else:
            live = {p for p in conn.covered | set(pairs) if p[1] == "ticker"}
        ids = sorted(self.cap.market(s)["id"] for s, _ in live)
        await conn.send_json({"type": "subscriptions", "channels": [{"name": "ticker", "product_ids": ids}]})
        if msg["type"] == "subscribe":
            await conn.cover(pairs)


class Deribit(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": f"{ws}/ws/api/v2"}}

    def socket_paths(self) -> dict[str, str]:
        return {"main": "ws/api/v2"}

    def socket_for_path(self, tail: str) -> str | None:
        return "main" if tail.rstrip("/") == "ws/api/v2" else None

    def _channel_pairs(self, conn: Conn, channels: list[str], record: bool) -> list[Pair]:
        pairs: list[Pair] = []
        chans: dict[Pair, str] = conn.state.setdefault("channels", {})
        for ch in channels:
            parts = str(ch).split(".")
            if len(parts) < 2 or parts[0] not in ("ticker", "quote"):
                continue
            symbol = self.symbol_for("main", parts[1])
            if symbol is None:
                continue
            pairs.append((symbol, parts[0]))
            if record:
                chans.setdefault((symbol, parts[0]), str(ch))
        return pairs

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        method, req_id = msg.get("method"), msg.get("id")
        us_in = _now_ms() * 1000
        reply = {"jsonrpc": "2.0", "id": req_id}
        channels = (msg.get("params") or {}).get("channels") or []
        if method == "public/subscribe":
            pairs = self._channel_pairs(conn, channels, True)
            reply["result"] = channels
            reply.update({"usIn": us_in, "usOut": us_in + 60, "usDiff": 60, "testnet": False})
            await conn.send_json(reply)
            await conn.cover(pairs)
            return
        if method == "public/unsubscribe":
            conn.uncover(self._channel_pairs(conn, channels, False))
            reply["result"] = channels
        elif method == "public/test":
            reply["result"] = {"version": "1.2.26"}
        else:
            reply["result"] = "ok"
        reply.update({"usIn": us_in, "usOut": us_in + 20, "usDiff": 20, "testnet": False})
        await conn.send_json(reply)

    def render(self, conn: Conn, frame: Frame, symbols: list[str]) -> str | None:
        channel = conn.state.get("channels", {}).get((symbols[0], frame.channel))
        if channel is None:
            return frame.text
        obj = dict(frame.obj)
        obj["params"] = dict(obj["params"])
        obj["params"]["channel"] = channel
        return dumps_raw(obj)

    def virtual_subscribe(self, conn: Conn, pairs: list[Pair]) -> list[str]:
        chans = conn.state.setdefault("channels", {})
        for symbol, channel in pairs:  # ccxt's defaults: ticker.<id>.100ms, quote.<id>
            mid = self.cap.market(symbol)["id"]
            chans[(symbol, channel)] = f"ticker.{mid}.100ms" if channel == "ticker" else f"quote.{mid}"
        return []


class Gate(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"spot": f"{ws}/ws/v4/", "swap": {"usdt": f"{ws}/v4/ws/usdt", "btc": f"{ws}/v4/ws/btc"}}}

    def socket_paths(self) -> dict[str, str]:
        return {"spot": "ws/v4/", "usdt": "v4/ws/usdt", "btc": "v4/ws/btc"}

    def socket_for_path(self, tail: str) -> str | None:
        return {"ws/v4": "spot", "v4/ws/usdt": "usdt", "v4/ws/btc": "btc"}.get(tail.rstrip("/"))

    def socket_of_market(self, market: dict[str, Any]) -> str:
        if not market.get("contract"):
            return "spot"
        return "usdt" if market.get("linear") else "btc"

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        channel = str(msg.get("channel", ""))
        event = msg.get("event")
        now = _now_ms()
        if channel.endswith(".ping"):
            await conn.send_json({"time": now // 1000, "time_ms": now, "id": msg.get("id"),
                                  "channel": channel.replace(".ping", ".pong"), "event": "", "result": None})
            return
        suffix = channel.split(".")[-1]
        ids = msg.get("payload") or []
        pairs = [(s, suffix) for s in (self.symbol_for(conn.socket, str(i)) for i in ids) if s]
        ack = {"time": now // 1000, "time_ms": now, "id": msg.get("id"), "conn_id": f"replay-{id(conn):x}",
               "channel": channel, "event": event, "payload": ids, "result": {"status": "success"}}
        await conn.send_json(ack)
        if event == "subscribe":
            await conn.cover(pairs)
        elif event == "unsubscribe":
            conn.uncover(pairs)


class Kucoin(Protocol):
    TOPICS: ClassVar[dict[str, str]] = {"/market/ticker": "ticker", "/market/snapshot": "snapshot",
                                         "/spotMarket/level1": "level1"}

    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"public": http}}  # REST base: POST {http}/api/v1/bullet-public

    def socket_paths(self) -> dict[str, str]:
        return {"main": "endpoint?token=replay-token&privateChannel=false&connectId=public"}

    def socket_for_path(self, tail: str) -> str | None:
        return "main" if tail.split("?")[0].rstrip("/") == "endpoint" else None

    async def http_post(self, tail: str, body: bytes, base_ws: str) -> Any:
        if tail.rstrip("/") != "api/v1/bullet-public":
            return None
        return {"code": "200000", "data": {
            "token": "replay-token",
            "instanceServers": [{"endpoint": f"{base_ws}/endpoint", "encrypt": False, "protocol": "websocket",
                                 "pingInterval": 18000, "pingTimeout": 10000}]}}

    async def on_open(self, conn: Conn) -> None:
        for f in self.cap.frames:
            if f.kind == "welcome":
                await conn.send(f.text)
                return
        await conn.send_json({"id": "replay", "type": "welcome"})

    def _pairs(self, topic: str) -> list[Pair]:
        prefix, _, ids = topic.partition(":")
        channel = self.TOPICS.get(prefix)
        if channel is None:
            return []
        if ids == "all":
            return [(s, channel) for s in self.all_symbols("main")]
        return [(s, channel) for s in (self.symbol_for("main", i) for i in ids.split(",")) if s]

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        kind, req_id = msg.get("type"), msg.get("id")
        if kind == "ping":
            await conn.send_json({"id": req_id, "type": "pong", "timestamp": _now_ms() * 1000})
        elif kind == "subscribe":
            pairs = self._pairs(str(msg.get("topic", "")))
            if msg.get("response", True):
                await conn.send_json({"id": req_id, "type": "ack"})
            await conn.cover(pairs)
        elif kind == "unsubscribe":
            conn.uncover(self._pairs(str(msg.get("topic", ""))))
            if msg.get("response", True):
                await conn.send_json({"id": req_id, "type": "ack"})


class Okx(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": f"{ws}/ws/v5"}}  # ccxt appends /public, /business, /private

    def socket_paths(self) -> dict[str, str]:
        return {"public": "ws/v5/public"}

    def socket_for_path(self, tail: str) -> str | None:
        return {"ws/v5/public": "public", "ws/v5/business": "business", "ws/v5/private": "private"}.get(
            tail.split("?")[0].rstrip("/"))

    def socket_of_market(self, market: dict[str, Any]) -> str:
        return "public"

    async def on_message(self, conn: Conn, text: str) -> None:
        if text == "ping":
            await conn.send("pong")
            return
        msg = _loads(text)
        if not isinstance(msg, dict) or msg.get("op") not in ("subscribe", "unsubscribe"):
            return
        pairs: list[Pair] = []
        for arg in msg.get("args") or []:
            symbol = self.symbol_for("public", str(arg.get("instId")))
            if symbol is not None:
                pairs.append((symbol, str(arg.get("channel"))))
            ack = {"event": msg["op"], "arg": arg, "connId": f"{id(conn) & 0xffffffff:08x}"}
            if "id" in msg:
                ack = {"id": msg["id"], **ack}
            await conn.send_json(ack)
        if msg["op"] == "subscribe":
            await conn.cover(pairs)
        else:
            conn.uncover(pairs)


class Htx(Protocol):
    PING_INTERVAL = 5.0

    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": {"api": {
            "spot": {"public": f"{ws}/ws"},
            "swap": {"linear": {"public": f"{ws}/linear-swap-ws"}, "inverse": {"public": f"{ws}/swap-ws"}}}}}}

    def socket_paths(self) -> dict[str, str]:
        return {"spot": "ws", "linear": "linear-swap-ws", "inverse": "swap-ws"}

    def socket_for_path(self, tail: str) -> str | None:
        return {"ws": "spot", "linear-swap-ws": "linear", "swap-ws": "inverse"}.get(tail.rstrip("/"))

    def socket_of_market(self, market: dict[str, Any]) -> str:
        if not market.get("contract"):
            return "spot"
        return "linear" if market.get("linear") else "inverse"

    def encode(self, text: str) -> str | bytes:
        return gzip.compress(text.encode())

    async def on_open(self, conn: Conn) -> None:
        async def pinger() -> None:
            while not conn.closed:
                conn.pings_sent += 1
                await conn.send_json({"ping": _now_ms()})
                await asyncio.sleep(self.PING_INTERVAL)

        conn.tasks.append(asyncio.create_task(pinger(), name=f"replay-htx-ping-{conn.path}"))

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        if "pong" in msg:
            conn.pongs += 1
            return
        topic = msg.get("sub") or msg.get("unsub")
        if not topic:
            return
        parts = str(topic).split(".")
        symbol = self.symbol_for(conn.socket, parts[1]) if len(parts) >= 3 and parts[0] == "market" else None
        pairs = [(symbol, parts[2])] if symbol else []
        if "sub" in msg:
            await conn.send_json({"id": msg.get("id"), "status": "ok", "subbed": topic, "ts": _now_ms()})
            await conn.cover(pairs)
        else:
            conn.uncover(pairs)
            await conn.send_json({"id": msg.get("id"), "status": "ok", "unsubbed": topic, "ts": _now_ms()})


class Hitbtc(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": {"public": f"{ws}/api/3/ws/public"}}}

    def socket_paths(self) -> dict[str, str]:
        return {"main": "api/3/ws/public"}

    def socket_for_path(self, tail: str) -> str | None:
        return "main" if tail.rstrip("/") == "api/3/ws/public" else None

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict) or msg.get("method") not in ("subscribe", "unsubscribe"):
            return
        ch = str(msg.get("ch", ""))
        channel = "bidask" if ch.startswith("orderbook/top") else ("ticker" if ch.startswith("ticker/") else None)
        ids = (msg.get("params") or {}).get("symbols") or []
        if ids == ["*"]:
            ids = [self.cap.market(s)["id"] for s in self.all_symbols("main")]
        pairs = [(s, channel) for s in (self.symbol_for("main", i) for i in ids) if s] if channel else []
        subs: dict[str, list[str]] = conn.state.setdefault("subs", {})
        if msg["method"] == "subscribe":
            subs.setdefault(ch, [])
            subs[ch] += [i for i in ids if i not in subs[ch]]
            await conn.send_json({"result": {"ch": ch, "subscriptions": subs[ch]}, "id": msg.get("id")})
            await conn.cover(pairs)
        else:
            subs[ch] = [i for i in subs.get(ch, []) if i not in ids]
            conn.uncover(pairs)
            await conn.send_json({"result": {"ch": ch, "subscriptions": subs[ch]}, "id": msg.get("id")})


class KrakenFutures(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": f"{ws}/ws/v1"}}

    def socket_paths(self) -> dict[str, str]:
        return {"main": "ws/v1"}

    def socket_for_path(self, tail: str) -> str | None:
        return "main" if tail.rstrip("/") == "ws/v1" else None

    async def on_open(self, conn: Conn) -> None:
        await conn.send_json({"event": "info", "version": 1})

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        event, feed = msg.get("event"), msg.get("feed")
        if event == "ping":
            await conn.send_json({"event": "pong"})
            return
        if event not in ("subscribe", "unsubscribe"):
            return
        pairs: list[Pair] = []
        for pid in msg.get("product_ids") or []:
            symbol = self.symbol_for("main", str(pid))
            if symbol is None:
                await conn.send_json({"event": "alert", "message": f"Invalid product id: {pid}"})
                continue
            pairs.append((symbol, str(feed)))
            await conn.send_json({"event": event + "d", "feed": feed, "product_ids": [pid]})
        if event == "subscribe":
            await conn.cover(pairs)
        else:
            conn.uncover(pairs)


class Kraken(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": {"publicV2": f"{ws}/v2"}}}

    def socket_paths(self) -> dict[str, str]:
        return {"main": "v2"}

    def socket_for_path(self, tail: str) -> str | None:
        return "main" if tail.rstrip("/") == "v2" else None

    def market_keys(self, market: dict[str, Any]) -> list[str]:
        return [market["symbol"], (market.get("info") or {}).get("wsname") or market["symbol"]]

    async def on_open(self, conn: Conn) -> None:
        await conn.send_json({"channel": "status", "type": "update", "data": [
            {"api_version": "v2", "connection_id": id(conn), "system": "online", "version": "2.0.10"}]})

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        method, req_id = msg.get("method"), msg.get("req_id")
        if method == "ping":
            reply = {"method": "pong", "time_in": _iso_now(), "time_out": _iso_now()}
            await conn.send_json({"method": "pong", "req_id": req_id, **reply} if req_id is not None else reply)
            return
        if method not in ("subscribe", "unsubscribe"):
            return
        params = msg.get("params") or {}
        channel = params.get("channel")
        pairs: list[Pair] = []
        for sym in params.get("symbol") or []:
            symbol = self.symbol_for("main", str(sym))
            result: dict[str, Any] = {"channel": channel}
            if channel == "ticker":
                result["event_trigger"] = params.get("event_trigger", "trades")
            result.update({"snapshot": params.get("snapshot", True), "symbol": sym})
            ack: dict[str, Any] = {"method": method, "req_id": req_id, "result": result, "success": symbol is not None,
                                   "time_in": _iso_now(), "time_out": _iso_now()}
            if symbol is None:
                ack["error"] = f"Currency pair not supported {sym}"
                del ack["result"]
            else:
                pairs.append((symbol, str(channel)))
            await conn.send_json(ack)
        if method == "subscribe":
            await conn.cover(pairs)
        else:
            conn.uncover(pairs)


class Bybit(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": {"public": {k: f"{ws}/v5/public/{k}" for k in ("spot", "linear", "inverse")}}}}

    def socket_paths(self) -> dict[str, str]:
        return {k: f"v5/public/{k}" for k in ("spot", "linear", "inverse", "option")}

    def socket_for_path(self, tail: str) -> str | None:
        m = re.fullmatch(r"v5/public/(spot|linear|inverse|option)", tail.rstrip("/"))
        return m.group(1) if m else None

    def socket_of_market(self, market: dict[str, Any]) -> str:
        if market.get("spot"):
            return "spot"
        if market.get("option"):
            return "option"
        return "linear" if market.get("linear") else "inverse"

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        op, req_id = msg.get("op"), msg.get("req_id")
        conn_id = f"replay-{id(conn):x}"
        if op == "ping":
            if conn.socket == "spot":
                await conn.send_json({"req_id": str(req_id), "op": "pong", "args": [str(_now_ms())],
                                      "conn_id": conn_id})
            else:
                await conn.send_json({"success": True, "ret_msg": "pong", "conn_id": conn_id, "req_id": str(req_id),
                                      "op": "ping"})
            return
        if op not in ("subscribe", "unsubscribe"):
            return
        pairs: list[Pair] = []
        for arg in msg.get("args") or []:
            topic, _, mid = str(arg).rpartition(".")
            symbol = self.symbol_for(conn.socket, mid)
            if symbol is not None:
                pairs.append((symbol, topic))
        await conn.send_json({"success": True, "ret_msg": "", "conn_id": conn_id, "req_id": str(req_id), "op": op})
        if op == "subscribe":
            await conn.cover(pairs)
        else:
            conn.uncover(pairs)

class Hyperliquid(Protocol):
    def urls(self, ws: str, http: str) -> dict[str, Any]:
        return {"api": {"ws": {"public": f"{ws}/ws"}}}

    def socket_paths(self) -> dict[str, str]:
        return {"main": "ws"}

    def socket_for_path(self, tail: str) -> str | None:
        return "main" if tail.rstrip("/") == "ws" else None

    def market_keys(self, market: dict[str, Any]) -> list[str]:
        return [market.get("baseName") or market["id"]] if market.get("swap") else [market["id"]]

    async def on_message(self, conn: Conn, text: str) -> None:
        msg = _loads(text)
        if not isinstance(msg, dict):
            return
        method = msg.get("method")
        if method == "ping":
            await conn.send_json({"channel": "pong"})
            return
        if method not in ("subscribe", "unsubscribe"):
            return
        sub = msg.get("subscription") or {}
        kind = sub.get("type")
        channel = {"activeAssetCtx": "activeAssetCtx", "bbo": "bbo"}.get(str(kind))
        symbol = self.symbol_for("main", str(sub.get("coin"))) if channel else None
        await conn.send_json({"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}})
        pairs = [(symbol, channel)] if symbol and channel else []
        if method == "subscribe":
            await conn.cover(pairs)
        else:
            conn.uncover(pairs)


PROTOCOLS: dict[str, type[Protocol]] = {
    "binance": Binance, "binanceus": Binance, "binanceusdm": Binance, "binancecoinm": Binance,
    "bitfinex": Bitfinex, "coinbaseexchange": CoinbaseExchange, "deribit": Deribit, "gate": Gate,
    "kucoin": Kucoin, "okx": Okx, "htx": Htx, "hitbtc": Hitbtc, "krakenfutures": KrakenFutures,
    "kraken": Kraken, "bybit": Bybit, "hyperliquid": Hyperliquid,
}
assert set(PROTOCOLS) == set(VENUES)


# --- the server ------------------------------------------------------------------------------------
@dataclass
class VenueState:
    capture: Capture
    protocol: Protocol
    conns: list[Conn] = field(default_factory=list)
    rejected_paths: list[str] = field(default_factory=list)


class ReplayServer:
    """``async with ReplayServer(venues=["binance", "okx"]) as srv:`` (default: all 16 venues)."""

    def __init__(self, venues: list[str] | tuple[str, ...] | None = None, host: str = "127.0.0.1",
                 port: int = 0, now_ms: int | None = None) -> None:
        names = list(venues) if venues is not None else list(VENUES)
        for v in names:
            if v in EXCLUDED:
                raise ValueError(f"{v} is not replayable: {EXCLUDED[v]}")
            if v not in PROTOCOLS:
                raise ValueError(f"unknown venue {v!r}; replayable: {', '.join(VENUES)}")
        self.host, self.port = host, port
        self.now_ms = now_ms if now_ms is not None else _now_ms()
        self.venues: dict[str, VenueState] = {}
        for v in names:
            cap = load(v, self.now_ms)
            self.venues[v] = VenueState(cap, PROTOCOLS[v](cap))
        self._runner: web.AppRunner | None = None

    # lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> ReplayServer:
        app = web.Application()
        app.router.add_get("/_replay/state", self._http_state)
        app.router.add_get("/{venue}/markets", self._http_markets)
        app.router.add_post("/{venue}/{tail:.*}", self._http_post)
        app.router.add_get("/{venue}{tail:.*}", self._http_ws)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for vs in self.venues.values():
            for conn in vs.conns:
                conn.closed = True
                for t in conn.tasks:
                    t.cancel()
                await asyncio.gather(*conn.tasks, return_exceptions=True)
                if conn.ws is not None and not conn.ws.closed:
                    await conn.ws.close()
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # what clients need -----------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def ccxt_config(self, venue: str) -> dict[str, Any]:
        """Constructor config for `ccxt.pro.<class>`: only the manifest's URL keys, pointed at us."""
        proto = self.venues[venue].protocol
        return {"urls": proto.urls(f"{self.ws_url}/{venue}", f"{self.http_url}/{venue}")}

    def ccxt_class(self, venue: str) -> str:
        return self.venues[venue].capture.ccxt_class

    def markets(self, venue: str) -> list[dict[str, Any]]:
        import copy

        return copy.deepcopy(self.venues[venue].capture.markets)

    def markets_url(self, venue: str) -> str:
        return f"{self.http_url}/{venue}/markets"

    def capture(self, venue: str) -> Capture:
        return self.venues[venue].capture

    def shift_ms(self, venue: str) -> int:
        return self.venues[venue].capture.shift_ms

    def socket_urls(self, venue: str) -> dict[str, str]:
        """socket class -> a URL of that socket (what expected()'s stub clients report as client.url)."""
        proto = self.venues[venue].protocol
        return {k: f"{self.ws_url}/{venue}/{p}" for k, p in proto.socket_paths().items()}

    def expected(self, venue: str, channels: set[str] | list[str] | None = None) -> dict[str, dict[str, list[dict]]]:
        """What ccxt parses from this server's (time-shifted) frames; see expected.expected()."""
        from tests.replay.expected import expected

        return expected(venue, now_ms=self.now_ms, channels=channels, socket_urls=self.socket_urls(venue))

    def state(self, venue: str) -> dict[str, Any]:
        vs = self.venues[venue]
        return {"venue": venue, "connections": [c.summary() for c in vs.conns],
                "rejected_paths": list(vs.rejected_paths), "shift_ms": vs.capture.shift_ms}

    def connections(self, venue: str) -> list[Conn]:
        return list(self.venues[venue].conns)

    # http -------------------------------------------------------------------------------------------
    async def _http_state(self, request: web.Request) -> web.Response:
        return web.json_response({v: self.state(v) for v in self.venues})

    async def _http_markets(self, request: web.Request) -> web.Response:
        venue = request.match_info["venue"]
        if venue not in self.venues:
            raise web.HTTPNotFound(text=f"no venue {venue}")
        return web.json_response(self.venues[venue].capture.markets)

    async def _http_post(self, request: web.Request) -> web.Response:
        venue = request.match_info["venue"]
        vs = self.venues.get(venue)
        if vs is None:
            raise web.HTTPNotFound(text=f"no venue {venue}")
        answer = await vs.protocol.http_post(request.match_info["tail"], await request.read(),
                                             f"{self.ws_url}/{venue}")
        if answer is None:
            raise web.HTTPNotFound(text=f"{venue}: no REST endpoint {request.match_info['tail']}")
        return web.json_response(answer)

    async def _http_ws(self, request: web.Request) -> web.StreamResponse:
        venue = request.match_info["venue"]
        tail = request.match_info["tail"].lstrip("/")
        vs = self.venues.get(venue)
        if vs is None:
            raise web.HTTPNotFound(text=f"no venue {venue}")
        socket = vs.protocol.socket_for_path(tail)
        if socket is None:
            vs.rejected_paths.append(request.path_qs)
            raise web.HTTPNotFound(text=f"{venue}: no websocket endpoint at /{tail}")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=16 * 1024 * 1024)
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="websocket upgrade expected")
        await ws.prepare(request)
        conn = Conn(venue=venue, path=request.path_qs, socket=socket, ws=ws, protocol=vs.protocol)
        vs.conns.append(conn)
        try:
            await vs.protocol.on_open(conn)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    conn.requests.append(msg.data)
                    await vs.protocol.on_message(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    data = msg.data
                    try:
                        text = gzip.decompress(data).decode() if data[:2] == b"\x1f\x8b" else data.decode()
                    except (OSError, UnicodeDecodeError):
                        continue
                    conn.requests.append(text)
                    await vs.protocol.on_message(conn, text)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        except ConnectionResetError:
            pass
        finally:
            conn.closed = True
            for t in conn.tasks:
                t.cancel()
        return ws

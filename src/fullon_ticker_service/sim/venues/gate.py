"""Gate v4 websockets (spot, USDT- and BTC-settled perpetuals), as ccxt.pro 4.5.90 speaks them.

Three sockets, each serving only its own markets, as on the real exchange:
    spot   wss://api.gateio.ws/ws/v4/          `BTC/USDT`       id `BTC_USDT`  spot.tickers, spot.book_ticker
    usdt   wss://fx-ws.gateio.ws/v4/ws/usdt    `BTC/USDT:USDT`  id `BTC_USDT`  futures.tickers, futures.book_ticker
    btc    wss://fx-ws.gateio.ws/v4/ws/btc     `BTC/USD:BTC`    id `BTC_USD`   futures.tickers, futures.book_ticker
Spot and USDT perpetuals share ids; a payload id means the market of the socket it arrives on.
ccxt picks the socket from the first symbol of a watch call (one call = one kind of market).

Client: {"time":S,"id":N,"channel":"spot.tickers","event":"subscribe"|"unsubscribe","payload":["BTC_USDT",..]}
        {"time":S,"channel":"spot.ping"} (or futures.ping)
Server: {"time":S,"time_ms":MS,"id":N,"conn_id":..,"trace_id":..,"channel":..,"event":"subscribe",
        "payload":[..],"result":{"status":"success"},"requestId":..}; an unknown pair/contract (or a
        channel the socket does not have) gets the same with "error":{"code":2,"message":"unknown
        currency pair: X"} and "result":{"status":"fail"}, and nothing of that request is subscribed
        (ccxt then rejects every pending watch on the socket). Pings get `spot.pong`/`futures.pong`.
Data ({"time","time_ms","channel","event":"update","result"}):
- spot.tickers: one object, `last`, `lowest_ask`, `highest_bid`, volumes; no time (ccxt: None).
- futures.tickers: a list of one object; **no bid/ask** and no time (ccxt: bid/ask/timestamp None).
  USDT perpetuals: `volume_24h` in contracts, `volume_24h_base` = base volume. BTC-settled
  (`BTC_USD`): as Gate sends them, `volume_24h_base` is "0" (ccxt's baseVolume is 0), the coin
  volume is in `volume_24_btc`, the USD volume in `volume_24h_quote`/`volume_24_usd`.
- *.book_ticker: `t` (ms, ccxt's timestamp), `u`, `s`, `b`, `B`, `a`, `A`. Futures sizes are
  integers, or strings when the handshake sent `X-Gate-Size-Decimal: 1` (ccxt does).
"""

from __future__ import annotations

import math
import os
from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote, start_price
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, fmt, fmt_int, market

SOCKETS = {"/ws/v4": "spot", "/v4/ws/usdt": "usdt", "/v4/ws/btc": "btc"}
CHANNELS = {"spot": ("spot.tickers", "spot.book_ticker"),
            "usdt": ("futures.tickers", "futures.book_ticker"),
            "btc": ("futures.tickers", "futures.book_ticker")}
INVERSE_BASES = frozenset({"BTC"})  # Gate's BTC-settled perpetuals: BTC_USD
PUSH_LAG_MS = 8  # the envelope's time_ms comes a few ms after the quote time


def socket_of(m: dict[str, Any]) -> str:
    return "spot" if m["spot"] else "usdt" if m["linear"] else "btc"


def quanto_multiplier(base: str) -> float:
    """Base units per USDT-perpetual contract: a power of ten worth about 10 USDT (>= 0.0001)."""
    return max(1e-4, 10.0 ** round(math.log10(10 / start_price(base, "USDT"))))


class Gate(Venue):
    id = "gate"

    def __init__(self) -> None:
        super().__init__()
        self.by_socket_id: dict[tuple[str, str], dict[str, Any]] = {}
        self.socket: dict[str, str] = {}  # unified symbol -> socket

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        """Per base: the spot pair, the USDT perpetual, and for BTC the BTC-settled perpetual:
        BTC/USDT, BTC/USDT:USDT, BTC/USD:BTC, ETH/USDT, ETH/USDT:USDT, SOL/USDT, ..."""
        out: list[dict[str, Any]] = []
        for b in bases(n):
            out.append(market(f"{b}_USDT", b, "USDT"))
            out.append(market(f"{b}_USDT", b, "USDT", kind="swap", contract_size=quanto_multiplier(b)))
            if b in INVERSE_BASES:
                out.append(market(f"{b}_USD", b, "USD", kind="swap", settle=b, contract_size=1))
            if len(out) >= n:
                break
        return out[:n]

    def index(self, markets: list[dict[str, Any]]) -> None:
        super().index(markets)
        self.by_socket_id = {(socket_of(m), m["id"]): m for m in markets}
        self.socket = {m["symbol"]: socket_of(m) for m in markets}

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        swap = {"usdt": f"{ws_base}/v4/ws/usdt", "btc": f"{ws_base}/v4/ws/btc"}
        delivery = {"usdt": f"{ws_base}/v4/ws/delivery/usdt", "btc": f"{ws_base}/v4/ws/delivery/btc"}
        options = {"usdt": f"{ws_base}/v4/ws/options/usdt", "btc": f"{ws_base}/v4/ws/options/btc"}
        return {"urls": {"api": {"ws": f"{ws_base}/v4", "spot": f"{ws_base}/ws/v4/", "swap": swap,
                                 "future": delivery, "option": options}},
                "options": {"defaultType": "spot"}}

    async def on_open(self, conn: Conn) -> None:
        path = conn.path.rstrip("/")
        conn.state["socket"] = next((s for p, s in SOCKETS.items() if path.endswith(p)), None)
        conn.state["conn_id"] = os.urandom(8).hex()
        conn.state["decimal_sizes"] = conn.headers.get("X-Gate-Size-Decimal") == "1"

    def _envelope(self, conn: Conn, channel: str, event: str, req_id: Any = None) -> dict[str, Any]:
        now = conn.exchange.now_ms()
        body: dict[str, Any] = {"time": now // 1000, "time_ms": now}
        if req_id is not None:
            body["id"] = req_id
        trace = os.urandom(16).hex()
        body.update({"conn_id": conn.state.get("conn_id", ""), "trace_id": trace, "channel": channel,
                     "event": event})
        return body

    async def on_text(self, conn: Conn, text: str) -> None:
        try:
            req = orjson.loads(text)
            channel = req["channel"]
            event = req.get("event", "")
            if not isinstance(channel, str):
                raise TypeError(channel)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            body = self._envelope(conn, "", "")
            body.update({"error": {"code": 1, "message": "invalid argument"}, "result": None})
            await conn.send(orjson.dumps(body).decode())
            return
        req_id = req.get("id")
        if channel.endswith(".ping"):
            body = self._envelope(conn, channel[:-5] + ".pong", "", req_id)
            body["result"] = None
            await conn.send(orjson.dumps(body).decode())
            return
        payload = req.get("payload")
        sock = conn.state.get("socket")
        ok_channels = CHANNELS.get(sock, ()) if sock else ()
        body = self._envelope(conn, channel, event, req_id)
        body["payload"] = payload
        error = None
        symbols: list[str] = []
        if event not in ("subscribe", "unsubscribe") or channel not in ok_channels:
            error = {"code": 2, "message": f"unknown channel {channel}" if event in ("subscribe", "unsubscribe")
                     else f"unknown event {event}"}
        elif not isinstance(payload, list) or not payload:
            error = {"code": 2, "message": "payload is required"}
        else:
            for mid in payload:
                m = self.by_socket_id.get((sock, mid)) if isinstance(mid, str) else None
                if m is None:
                    what = "currency pair" if sock == "spot" else "contract"
                    error = {"code": 2, "message": f"unknown {what}: {mid}"}
                    break
                symbols.append(m["symbol"])
        if error is not None:
            body["error"] = error
            body["result"] = {"status": "fail"}
        else:
            body["result"] = {"status": "success"}
        body["requestId"] = body["trace_id"]
        await conn.send(orjson.dumps(body).decode())
        if error is not None:
            return
        for s in symbols:
            if event == "unsubscribe":
                conn.unsubscribe(channel, s)
            elif (channel, s) not in conn.subs:
                await conn.subscribe(channel, s)

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        m = self.by_symbol[q.symbol]
        mid = m["id"]
        push = q.ts_ms + PUSH_LAG_MS
        head = f'{{"time":{push // 1000},"time_ms":{push},"channel":"{channel}","event":"update","result":'
        if channel.endswith("book_ticker"):
            if channel.startswith("spot"):
                bsz, asz = '"1.5"', '"2.25"'
            else:
                bsz, asz = ('"814"', '"677"') if conn.state.get("decimal_sizes") else ("814", "677")
            return (f'{head}{{"t":{q.ts_ms},"u":{q.seq + 6_159_967},"s":"{mid}","b":"{fmt(q.bid)}",'
                    f'"B":{bsz},"a":"{fmt(q.ask)}","A":{asz}}}}}')
        pct = f"{q.percentage:.4f}" if math.isfinite(q.percentage) else "NaN"
        if channel == "spot.tickers":
            return (f'{head}{{"currency_pair":"{mid}","last":"{fmt(q.last)}","lowest_ask":"{fmt(q.ask)}",'
                    f'"highest_bid":"{fmt(q.bid)}","change_percentage":"{pct}","base_volume":"{fmt(q.volume)}",'
                    f'"quote_volume":"{fmt(q.quote_volume)}","high_24h":"{fmt(q.high)}",'
                    f'"low_24h":"{fmt(q.low)}"}}}}')
        last = fmt(q.last)
        if m["inverse"]:  # BTC-settled, contracts of 1 USD
            usd = fmt_int(q.quote_volume)
            return (f'{head}[{{"contract":"{mid}","last":"{last}","change_percentage":"{pct}",'
                    f'"total_size":"31659115","volume_24h":"{usd}","volume_24h_base":"0",'
                    f'"volume_24h_quote":"{usd}","volume_24h_settle":"0.0000000000000006",'
                    f'"mark_price":"{last}","funding_rate":"0.0001","funding_rate_indicative":"0.0001",'
                    f'"index_price":"{last}","quanto_base_rate":"","low_24h":"{fmt(q.low)}",'
                    f'"high_24h":"{fmt(q.high)}","volume_24_usd":"{usd}","volume_24_btc":"{fmt(q.volume)}"}}]}}')
        qv = fmt(q.quote_volume)
        return (f'{head}[{{"contract":"{mid}","last":"{last}","change_percentage":"{pct}",'
                f'"total_size":"153482780","volume_24h":"{fmt_int(q.volume / m["contractSize"])}",'
                f'"volume_24h_base":"{fmt(q.volume)}","volume_24h_quote":"{qv}","volume_24h_settle":"{qv}",'
                f'"mark_price":"{last}","funding_rate":"0.0001","funding_rate_indicative":"0.0001",'
                f'"index_price":"{last}","quanto_base_rate":"","low_24h":"{fmt(q.low)}",'
                f'"high_24h":"{fmt(q.high)}"}}]}}')


VENUE_CLASS = Gate

"""What a simulated venue implements, and the per-connection state the server keeps for it.

A venue speaks one exchange's websocket protocol: it answers subscribe/unsubscribe/ping frames
the way the exchange documents them (`on_text`), and encodes a `Quote` into the exchange's
ticker frame (`encode`). The server (`sim/server.py`) owns sockets, rates and faults.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fullon_ticker_service.sim.model import Quote, start_price, tick_size

if TYPE_CHECKING:
    from fullon_ticker_service.sim.server import ExchangeState

# A client that does not read for this long is cut off, as exchanges drop slow consumers: one
# stopped (SIGSTOP) or wedged reader must not block the feed of every other connection.
SEND_TIMEOUT = 2.0
CLOSE_TIMEOUT = 2.0

# Real, recognisable bases first; the rest are synthetic (S0007 ...), all <= 6 chars as the
# fullon `symbols.base varchar(6)` column requires.
REAL_BASES = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "LTC", "DOT", "LINK", "AVAX", "TRX", "ATOM")


def bases(n: int) -> list[str]:
    out = list(REAL_BASES[:n])
    out += [f"S{i:04d}" for i in range(len(out), n)]
    return out


def market(
    id: str, base: str, quote: str, *, kind: str = "spot", settle: str | None = None,
    base_id: str | None = None, quote_id: str | None = None, contract_size: float | None = None,
    expiry: str | None = None, **extra: Any,
) -> dict[str, Any]:
    """A minimal ccxt market dict (what `exchange.set_markets()` needs).

    kind: "spot", "swap" (perpetual) or "future" (dated: `expiry` as YYMMDD). Contracts settle in
    `settle` (default: the quote): linear when that is the quote, inverse (coin-margined) when it
    is the base, e.g. `BTC/USD:BTC`. Symbols are ccxt's: `BTC/USDT`, `BTC/USDT:USDT`,
    `BTC/USD:BTC-281229`. `precision.price` is the simulator's tick for the market's price level.
    """
    spot = kind == "spot"
    if kind == "future" and not expiry:
        raise ValueError(f"{id}: a future needs an expiry (YYMMDD)")
    settle = None if spot else (settle or quote)
    symbol = f"{base}/{quote}" if spot else f"{base}/{quote}:{settle}"
    expiry_ms = expiry_iso = None
    if kind == "future":
        symbol += f"-{expiry}"
        when = datetime.strptime(expiry, "%y%m%d").replace(hour=8, tzinfo=UTC)  # 08:00 UTC settlement
        expiry_ms = int(when.timestamp() * 1000)
        expiry_iso = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "id": id, "symbol": symbol, "base": base, "quote": quote, "settle": settle,
        "baseId": base_id or base, "quoteId": quote_id or quote, "settleId": settle,
        "type": kind, "spot": spot, "margin": False, "swap": kind == "swap", "future": kind == "future",
        "option": False, "contract": not spot, "linear": None if spot else (settle == quote),
        "inverse": None if spot else (settle != quote), "contractSize": None if spot else (contract_size or 1),
        "expiry": expiry_ms, "expiryDatetime": expiry_iso, "strike": None, "optionType": None, "active": True,
        "precision": {"amount": 1e-8, "price": tick_size(start_price(base, quote))}, "limits": {}, "info": {},
        **extra,
    }


def interleave(primary: list[Any], extra: list[Any], every: int = 1) -> list[Any]:
    """`primary` with the items of `extra` spread in, one after every `every` primary items."""
    out: list[Any] = []
    rest = list(extra)
    for i, item in enumerate(primary, 1):
        out.append(item)
        if i % every == 0 and rest:
            out.append(rest.pop(0))
    return out + rest


class Conn:
    """One accepted websocket: its subscriptions and venue-private state."""

    def __init__(self, ws: web.WebSocketResponse, path: str, exchange: ExchangeState,
                 transport: asyncio.BaseTransport | None = None, query: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.ws = ws
        self.transport = transport  # to cut a client off without a handshake
        self.path = path  # request path after the venue prefix, e.g. "/ws/3" or "/v5/public/spot"
        self.query: Mapping[str, str] = query or {}  # the handshake's query string (kucoin: token)
        self.headers: Mapping[str, str] = headers or {}  # the handshake's headers (gate: size format)
        self.exchange = exchange
        self.subs: set[tuple[str, str]] = set()  # (channel, unified symbol)
        self.state: dict[str, Any] = {}  # venue-private (e.g. bybit: snapshot sent per topic)

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send(self, frame: str | bytes) -> None:
        if self.ws.closed:
            return
        transport = self.transport
        # duck-typed: uvloop's transports are not asyncio.WriteTransport instances
        if transport is not None and hasattr(transport, "get_write_buffer_size"):
            # Far below the transport's high-water mark neither the write nor aiohttp's drain can wait
            # on the client, so no timer: it was a quarter of the CPU per frame (88 -> 64 us at saturation).
            room = transport.get_write_buffer_limits()[1] // 4
            if transport.get_write_buffer_size() < room and len(frame) < room:
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(frame)
                return
        try:
            async with asyncio.timeout(SEND_TIMEOUT):  # in this task: no reordering of sends
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(frame)
        except TimeoutError:
            self.abort()
            raise ConnectionError(f"client did not read for {SEND_TIMEOUT}s: dropped") from None

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        """Close handshake, bounded: a client that never answers is cut off after CLOSE_TIMEOUT."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.ws.close(code=code, message=message)
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()

    def abort(self) -> None:
        """Cut the client off (no close handshake). Duck-typed: uvloop's transports are not
        asyncio.WriteTransport instances, and an isinstance check left them connected."""
        abort = getattr(self.transport, "abort", None)
        if abort is not None:
            abort()

    async def subscribe(self, channel: str, symbol: str, snapshot: bool = True) -> None:
        """Register (channel, symbol); send the current quote at once, as exchanges do."""
        self.exchange.add_sub(self, channel, symbol)
        if snapshot and not self.exchange.silent(symbol):
            await self.send(self.exchange.venue.encode(self, channel, self.exchange.current(symbol)))

    def unsubscribe(self, channel: str, symbol: str) -> None:
        self.exchange.remove_sub(self, channel, symbol)


class Venue:
    """Base class: one subclass per simulated exchange (module `sim/venues/<ccxt id>.py`)."""

    id: str = ""  # the ccxt id; also the URL prefix `/<id>/...` on the simulator
    quote_ccy: str = "USDT"

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        """The first `n` markets this venue lists (ccxt market dicts, deterministic)."""
        raise NotImplementedError

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        """ccxt constructor overrides pointing at the simulator.

        `http_base`/`ws_base` already include the venue prefix, e.g. `ws://127.0.0.1:8765/binance`.
        """
        raise NotImplementedError

    async def on_open(self, conn: Conn) -> None:
        """Called when a socket is accepted (e.g. send a welcome frame)."""

    async def on_text(self, conn: Conn, text: str) -> None:
        """Handle one client text frame: subscribe/unsubscribe/ping."""
        raise NotImplementedError

    def encode(self, conn: Conn, channel: str, q: Quote) -> str | bytes:
        """One ticker frame for `q` on `channel`, exactly as the exchange would send it."""
        raise NotImplementedError

    async def rest(self, request: web.Request, tail: str) -> web.StreamResponse | None:
        """Serve a REST path under `/<id>/` other than `markets` (None -> 404)."""
        return None

    # helpers for subclasses -------------------------------------------------------------
    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_symbol: dict[str, dict[str, Any]] = {}

    def index(self, markets: list[dict[str, Any]]) -> None:
        self.by_id = {m["id"]: m for m in markets}
        self.by_symbol = {m["symbol"]: m for m in markets}


def fmt(x: float) -> str:
    """A price as exchanges print it: plain decimal, no exponent, NaN/negatives passed through."""
    if not math.isfinite(x):
        return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")
    s = f"{x:.8f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def fmt_int(x: float) -> str:
    """A whole count (contracts) as exchanges print it; NaN/infinities as `fmt` prints them."""
    return str(round(x)) if math.isfinite(x) else fmt(x)

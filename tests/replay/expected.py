"""What ccxt itself parses from the replayed frames: the reference the replay tests compare against.

How: a fresh ccxt.pro instance of the venue's class gets the manifest markets (``set_markets``), and
every frame the server would send is fed, in file order, to ``exchange.handle_message(client,
message)`` — the same entry point ccxt's websocket client calls — with a stub client per socket.
The text fed is produced by the server's own protocol code (``Protocol.render``: binance ``data``
unwrapped, bitfinex chanIds, deribit channel strings...) and decoded by ccxt's own decoder
(``ccxt.async_support.base.ws.client.json_parser`` = orjson), so ccxt sees the bytes it would get
from the socket. After each frame, every entry of ``exchange.tickers`` / ``exchange.bidsasks`` that
was replaced is recorded (a deep copy), which yields, per symbol and per ccxt dict, the sequence of
parsed dicts in arrival order.

Why a stub rather than real ccxt against the server: it is deterministic (no sockets, timing, task
interleaving or keepalive), needs no event loop (``exchange.client()`` would open an aiohttp
session), and it is exactly ccxt's parsing code, so the live test (real ccxt over a socket) is an
independent check of the transport and subscription side. The stub client implements what the
handlers touch: ``url`` (binance picks spot/contract by it), ``subscriptions`` (bitfinex maps
chanIds through it), ``resolve``/``reject``/``future`` (recorded, no futures), ``send``.

The server sends each (symbol, channel) in file order on its connection, so for any set of channels
a client subscribes to on separate connections/calls, per symbol and channel the arrival order is
file order. Where two channels feed the same ccxt dict for one symbol (binance ``ticker`` and
``miniTicker``, htx ``detail`` and ``bbo``), their relative order depends on when each was
subscribed: compute ``expected(venue, channels={...})`` for the channels actually subscribed.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.replay.captures import Capture, load
from tests.replay.server import PROTOCOLS, Conn, Protocol

BOOKS = {"ticker": "tickers", "bidask": "bidsasks"}


class _NoFuture:
    def resolve(self, *a: Any) -> None: ...
    def reject(self, *a: Any) -> None: ...
    def done(self) -> bool:
        return False


class StubClient:
    """Just enough of ccxt's ws Client for message handlers; records what they resolve/reject."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.subscriptions: dict[str, Any] = {}
        self.futures: dict[str, Any] = {}
        self.rejections: dict[str, Any] = {}
        self.keepAlive = 30000
        self.lastPong: int | None = None
        self.resolved: list[str] = []
        self.rejected: list[tuple[str | None, Any]] = []
        self.sent: list[Any] = []

    def resolve(self, result: Any, message_hash: Any) -> Any:
        self.resolved.append(message_hash)
        return result

    def reject(self, result: Any, message_hash: Any = None) -> None:
        self.rejected.append((message_hash, result))

    def future(self, message_hash: str) -> _NoFuture:
        return _NoFuture()

    reusableFuture = future

    def reset(self, error: Any) -> None:
        self.rejected.append((None, error))

    async def send(self, message: Any) -> None:
        self.sent.append(message)


@dataclass
class Parsed:
    n: int  # frame number (line in <venue>.jsonl)
    channel: str
    value: dict[str, Any]


@dataclass
class Detail:
    venue: str
    capture: Capture
    channels: set[str] | None
    values: dict[str, dict[str, list[Parsed]]] = field(default_factory=dict)  # symbol -> book -> parsed
    errors: list[tuple[int, str]] = field(default_factory=list)  # handle_message raised
    unparsed: list[tuple[int, tuple[str, ...], str]] = field(default_factory=list)  # changed nothing
    rejected: list[tuple[int, str]] = field(default_factory=list)  # handler called client.reject

    def plain(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        return {s: {b: [p.value for p in seq] for b, seq in books.items()} for s, books in self.values.items()}


def _decode(text: str) -> Any:
    from ccxt.async_support.base.ws.client import json_parser
    from ccxt.async_support.base.ws.functions import is_json_encoded_object

    return json_parser.loads(text) if is_json_encoded_object(text) else text


def new_exchange(capture: Capture) -> Any:
    import ccxt.pro

    exchange = getattr(ccxt.pro, capture.ccxt_class)()
    exchange.set_markets(copy.deepcopy(capture.markets))
    return exchange


def compute(venue: str, now_ms: int, channels: set[str] | list[str] | None = None,
            socket_urls: dict[str, str] | None = None) -> Detail:
    """Feed the frames of `channels` (default: all) through a fresh ccxt instance; see module doc."""
    capture = load(venue, now_ms)
    proto: Protocol = PROTOCOLS[venue](capture)
    chans = set(channels) if channels is not None else None
    detail = Detail(venue=venue, capture=capture, channels=chans)
    urls = socket_urls or {k: f"ws://127.0.0.1:0/{venue}/{p}" for k, p in proto.socket_paths().items()}
    exchange = new_exchange(capture)

    frames = capture.data_frames(chans)
    pairs_by_socket: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for f in frames:
        for s in f.symbols:
            if f.channel is not None:
                pairs_by_socket[proto.socket_of(s, f.channel)].append((s, f.channel))

    clients: dict[str, StubClient] = {}
    feed: list[tuple[int, int, str, str]] = []  # (order, frame n, socket, text)
    for sock, pairs in pairs_by_socket.items():
        pairs = list(dict.fromkeys(pairs))
        url = urls.get(sock) or f"ws://127.0.0.1:0/{venue}/{sock}"
        clients[sock] = StubClient(url)
        conn = Conn(venue=venue, path=url, socket=sock, ws=None, protocol=proto)
        for text in proto.virtual_subscribe(conn, pairs):
            feed.append((-1, 0, sock, text))
        order = {f.n: i for i, f in enumerate(capture.frames)}
        for frame, text in conn.render_new(pairs):
            feed.append((order[frame.n], frame.n, sock, text))
    feed.sort(key=lambda x: x[0])

    frame_by_n = {f.n: f for f in capture.frames}
    last: dict[tuple[str, str], Any] = {}
    for _, n, sock, text in feed:
        client = clients[sock]
        rejected_before = len(client.rejected)
        try:
            exchange.handle_message(client, _decode(text))
        except Exception as exc:  # ccxt could not handle the frame
            detail.errors.append((n, f"{type(exc).__name__}: {exc}"))
            continue
        for h, err in client.rejected[rejected_before:]:
            detail.rejected.append((n, f"{h}: {type(err).__name__}: {err}"))
        if n == 0:
            continue
        frame = frame_by_n[n]
        changed = False
        for book, attr in BOOKS.items():
            store = getattr(exchange, attr) or {}
            for symbol, value in list(store.items()):
                if last.get((book, symbol)) is not value:
                    last[(book, symbol)] = value
                    detail.values.setdefault(symbol, {}).setdefault(book, []).append(
                        Parsed(n=n, channel=frame.channel or "", value=copy.deepcopy(value)))
                    changed = True
        if not changed and frame.book is not None:
            detail.unparsed.append((n, frame.symbols, "no entry of exchange.tickers/bidsasks changed"))
    return detail


def expected(venue: str, *, now_ms: int, channels: set[str] | list[str] | None = None,
             socket_urls: dict[str, str] | None = None) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{symbol: {"ticker"|"bidask": [parsed dict, ...]}} in arrival order (ticker -> exchange.tickers,
    bidask -> exchange.bidsasks). `now_ms` must be the server's (`srv.now_ms`): it fixes the shift."""
    return compute(venue, now_ms, channels, socket_urls).plain()


# --- which parsed value ends up "current" ---------------------------------------------------------
def last_value(seq: list[dict[str, Any]]) -> dict[str, Any]:
    """What ccxt keeps: exchange.tickers[symbol] is simply the last value parsed."""
    return seq[-1]


def newest_value(seq: list[dict[str, Any]]) -> dict[str, Any]:
    """Newest by ccxt timestamp; ties: last in order; any timestamp None: last in order."""
    if any(v.get("timestamp") is None for v in seq):
        return seq[-1]
    best = seq[0]
    for v in seq[1:]:
        if v["timestamp"] >= best["timestamp"]:
            best = v
    return best

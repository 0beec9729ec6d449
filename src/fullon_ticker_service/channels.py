"""What to subscribe per exchange, and how symbols group into ccxt calls (pure).

Two stream kinds feed a symbol: `ticker` (ccxt's `exchange.tickers`: last, volume, change; often
bid/ask too) and `bidask` (`exchange.bidsasks`: the venue's best bid/ask stream, usually far more
frequent). `streams_for` picks each stream's ccxt method, params and chunk size from the venue table
and the exchange's config.

Grouping (`plan`): one ccxt watch call serves one socket, chosen by its *first* symbol (bybit
spot/linear/inverse, gate spot/USDT/BTC-settled, binance spot/USD-M/COIN-M), and some venues refuse
mixed market types in one call (krakenfutures futures vs perpetuals, binance linear vs inverse).
So symbols are grouped by the socket ccxt routes them to (its URL, learnt from ccxt itself: see
worker/exchange.py `routes`) and by market type and linear/inverse, then chunked. Where ccxt routes
by settle currency (gate) the URL differs, so settle splits groups exactly where it matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TICKER, BIDASK = "ticker", "bidask"
KINDS = (TICKER, BIDASK)


@dataclass(frozen=True)
class Stream:
    kind: str  # TICKER or BIDASK
    method: str  # watch_tickers (many symbols per call), watch_ticker (one), watch_bids_asks (many)
    params: dict[str, Any] = field(default_factory=dict)
    chunk: int = 50  # symbols per call (each exchange has its own limits)
    unwatch: bool = True  # ccxt can unsubscribe one chunk (else removed symbols are only ignored)

    @property
    def per_symbol(self) -> bool:
        return self.method == "watch_ticker"

    @property
    def unwatch_method(self) -> str:
        return {"watch_ticker": "un_watch_ticker", "watch_tickers": "un_watch_tickers",
                "watch_bids_asks": "un_watch_bids_asks"}[self.method]


@dataclass(frozen=True)
class VenueStreams:
    ticker: Stream
    bidask: Stream | None = None  # None: ccxt has no best bid/ask stream for the venue
    bidask_default: bool = True  # subscribe it unless the config says otherwise
    note: str = ""


def _binance(bidask_note: str = "") -> VenueStreams:
    return VenueStreams(Stream(TICKER, "watch_tickers", {"name": "ticker"}, 100),
                        Stream(BIDASK, "watch_bids_asks", {}, 100), note=bidask_note)


# Facts from ccxt 4.5.90 and the exchanges' documentation (checked against the simulator and the
# replayed captures; README's venue table says the same for users):
VENUES: dict[str, VenueStreams] = {
    # `ticker` (24hrTicker; ccxt's default miniTicker has no bid/ask) + bookTicker. 200 streams a
    # socket; ccxt keys a connection on the exact symbol list, so we unwatch whole chunks.
    "binance": _binance(),
    "binanceus": _binance(),
    "binanceusdm": _binance("the futures 24hrTicker carries no bid/ask: only bookTicker does"),
    "binancecoinm": _binance("the futures 24hrTicker carries no bid/ask: only bookTicker does"),
    # tickers every 100 ms; bbo-tbt (tick by tick) is what moves first. ccxt sends every symbol in one
    # request (frames too large): we chunk.
    "okx": VenueStreams(Stream(TICKER, "watch_tickers", {}, 50), Stream(BIDASK, "watch_bids_asks", {}, 50)),
    # at most 10 args per subscribe request on spot (more fails every waiter on the socket); spot
    # tickers carry no bid/ask: orderbook.1 does
    "bybit": VenueStreams(Stream(TICKER, "watch_tickers", {}, 10), Stream(BIDASK, "watch_bids_asks", {}, 10),
                          note="spot tickers carry no bid/ask: orderbook.1 does"),
    # spot.tickers / futures.tickers (no bid/ask on futures) + book_ticker; no unwatch in ccxt
    "gate": VenueStreams(Stream(TICKER, "watch_tickers", {}, 50, unwatch=False),
                         Stream(BIDASK, "watch_bids_asks", {}, 50, unwatch=False),
                         note="futures tickers carry no bid/ask: book_ticker does"),
    # ticker + ticker_lite; ccxt spaces subscriptions ~600 ms and refuses future+swap in one call
    "krakenfutures": VenueStreams(Stream(TICKER, "watch_tickers", {}, 50, unwatch=False),
                                  Stream(BIDASK, "watch_bids_asks", {}, 50, unwatch=False)),
    # /market/ticker (best bid/ask, no 24h volume) + /spotMarket/level1; 100 topics a request
    "kucoin": VenueStreams(Stream(TICKER, "watch_tickers", {}, 100, unwatch=False),
                           Stream(BIDASK, "watch_bids_asks", {}, 100, unwatch=False)),
    # websocket v2 with unified symbols; its ticker carries bid/ask. ccxt's watch_bids_asks is the same
    # `ticker` channel with event_trigger=bbo: not subscribed by default (one channel per symbol).
    "kraken": VenueStreams(Stream(TICKER, "watch_tickers", {}, 50, unwatch=False),
                           Stream(BIDASK, "watch_bids_asks", {}, 50, unwatch=False), bidask_default=False,
                           note="bid/ask ride on the ticker channel; `bidask` re-subscribes it with bbo"),
    # watch_tickers is allMids (mid only); watch_ticker (activeAssetCtx) gives last and impact
    # bid/ask, one subscription per coin on one socket. No timestamps.
    "hyperliquid": VenueStreams(Stream(TICKER, "watch_ticker", {}, 1)),
    # Advanced Trade: watch_tickers is ticker_batch (every 5 s): watch_ticker (`ticker`) is real time.
    # A partial unwatch never resolves in ccxt, so removed symbols are only ignored.
    "coinbase": VenueStreams(Stream(TICKER, "watch_ticker", {}, 1, unwatch=False)),
    "coinbaseexchange": VenueStreams(Stream(TICKER, "watch_tickers", {}, 50, unwatch=False)),
    "deribit": VenueStreams(Stream(TICKER, "watch_tickers", {}, 50, unwatch=False),
                            Stream(BIDASK, "watch_bids_asks", {}, 50, unwatch=False)),
    "hitbtc": VenueStreams(Stream(TICKER, "watch_tickers", {}, 50, unwatch=False),
                           Stream(BIDASK, "watch_bids_asks", {}, 50, unwatch=False)),
    # no watch_tickers in ccxt: one watch_ticker per symbol (ccxt spaces them ~250 ms on bitfinex)
    "bitfinex": VenueStreams(Stream(TICKER, "watch_ticker", {}, 1)),
    "htx": VenueStreams(Stream(TICKER, "watch_ticker", {}, 1)),
}


def streams_for(ccxt_id: str, has: dict[str, Any], streams: tuple[str, ...] = (), method: str = "",
                channel: str = "", chunk: int = 0) -> list[Stream]:
    """The streams to subscribe: the venue table, or for an exchange not in it what ccxt has;
    `streams` (config) picks kinds, `method`/`channel`/`chunk` override the ticker stream.
    ValueError (one line) when a requested stream does not exist for the exchange."""
    venue = VENUES.get(ccxt_id)
    if venue is None:
        many = bool(has.get("watchTickers"))
        venue = VenueStreams(
            Stream(TICKER, "watch_tickers" if many else "watch_ticker", {}, 50 if many else 1,
                   bool(has.get("unWatchTickers" if many else "unWatchTicker"))),
            Stream(BIDASK, "watch_bids_asks", {}, 50, bool(has.get("unWatchBidsAsks")))
            if has.get("watchBidsAsks") else None)
    kinds = streams or ((TICKER, BIDASK) if venue.bidask is not None and venue.bidask_default else (TICKER,))
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"streams: unknown stream {kind!r} (known: {', '.join(KINDS)})")
    if BIDASK in kinds and (venue.bidask is None or not has.get("watchBidsAsks")):
        raise ValueError(f"streams: ccxt {ccxt_id} has no best bid/ask stream (watch_bids_asks); use ['ticker']")
    out = []
    if TICKER in kinds:
        t = venue.ticker
        params = {**t.params, **({"name": channel} if channel else {})}
        chosen = method or t.method
        size = 1 if chosen == "watch_ticker" else (chunk or (t.chunk if t.method == chosen else 50))
        out.append(Stream(TICKER, chosen, params, size, t.unwatch))
    if BIDASK in kinds:
        out.append(venue.bidask)  # type: ignore[arg-type]
    return out


def socket_of(url: str | None) -> str:
    """The socket kind of a websocket URL: binance appends a per-call stream index (/ws/0, /ws/1)."""
    return re.sub(r"/\d+$", "", url.split("?")[0]) if url else ""


def route_key(market: dict[str, Any], url: str | None) -> str:
    """What must be equal for two symbols to share one ccxt call: the socket ccxt routes them to,
    the market type, and linear/inverse."""
    sub = "linear" if market.get("linear") else "inverse" if market.get("inverse") else ""
    return f"{socket_of(url)}|{market.get('type') or ''}|{sub}"


def plan(stream: Stream, symbols: list[str], markets: dict[str, dict[str, Any]],
         urls: dict[str, str | None]) -> list[tuple[str, list[str]]]:
    """[(route, symbols of one call)] for `stream`: grouped by route, sorted, chunked."""
    groups: dict[str, list[str]] = {}
    for s in sorted(symbols):
        groups.setdefault(route_key(markets.get(s) or {}, urls.get(s)), []).append(s)
    size = 1 if stream.per_symbol else max(1, stream.chunk)
    return [(route, part) for route, syms in sorted(groups.items()) for part in chunked(syms, size)]


def chunked(symbols: list[str], size: int) -> list[list[str]]:
    size = max(1, size)
    return [symbols[i:i + size] for i in range(0, len(symbols), size)]

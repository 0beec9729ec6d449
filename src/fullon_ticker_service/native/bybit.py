"""Bybit v5 public: `tickers.<id>` snapshots and deltas (ccxt's `watch_tickers`) and
`orderbook.1.<id>` (`watch_bids_asks`).

Mirrors ccxt/pro/bybit.py 4.5.90:
- `handle_ticker`: a snapshot is parsed alone (`parse_ticker`, market type "spot" when the data
  has no `openInterestValue`) and stored under its own symbol; a delta resolves the symbol from
  the topic (type "spot" when the delta carries `usdIndexPrice`), merges its fields over the
  `info` of the ticker ccxt holds in `exchange.tickers[symbol]` and parses the merge. The ticker's
  timestamp is the frame's `ts`.
- `handle_order_book` + `parse_ws_bid_ask` for depth 1: the snapshot resets ccxt's order book
  and bid/ask are read back from it (levels with size > 0; ccxt sorts both sides ascending and
  takes the first, i.e. the lowest price - the same thing for Bybit's one level per side).

State. The merge base of a delta is the previous ticker's `info`; the decoder reads and writes it
in `self.store.tickers` (default: a dict of its own). `install()` points `store` at the ccxt
exchange, so the decoder and ccxt share `exchange.tickers` and any frame left to ccxt merges
into the same state - they can never drift apart. Level-1 order books: Bybit sends only
snapshots for depth 1, which the decoder turns into bid/ask without touching ccxt's
`exchange.orderbooks`. Should a level-1 delta (or a snapshot the decoder declines) arrive, ccxt's
book has missed the snapshots consumed here: `prelude()` returns the last snapshot decoded for
that symbol, to be handed to ccxt first, so ccxt applies the delta to the right book.
"""

from __future__ import annotations

from math import isfinite as _finite
from types import SimpleNamespace
from typing import Any

from fullon_ticker_service.native._compat import (
    ONE_HUNDRED,
    dec,
    derive_from_open,
    f_,
    fz,
    mul,
    safe_ticker,
    sf,
    si,
    ss,
    ss2,
    to_float,
    vwap_fast,
)
from fullon_ticker_service.native.base import (
    BIDASK,
    TICKER,
    Decoder,
    MarketInfo,
    Tick,
    client_subscriptions,
    client_url,
)

# top-level keys of acks, pongs, errors, auth and trade responses (ccxt's handle_error_message,
# pong and subscription paths): such frames are left to ccxt
_ROUTING_KEYS = ("code", "ret_code", "retCode", "success", "ret_msg", "pong", "event", "op",
                 "reqId", "req_id")
# ccxt matches topics by substring, in this order, before reaching 'ticker'
_EARLIER = ("kline", "order", "stopOrder")
_EXACT_TOPICS = frozenset(("orderbook", "kline", "order", "stopOrder", "ticker", "trade",
                           "publicTrade", "depth", "wallet", "outboundAccountInfo", "execution",
                           "execution.fast", "ticketInfo", "user.openapi.perp.trade", "position",
                           "liquidation", "allLiquidation", "pong", "order.create", "order.amend",
                           "order.cancel", "auth", "unsubscribe"))
BOOK1 = "orderbook.1."


class BybitDecoder(Decoder):
    exchange_ids = ("bybit",)

    def __init__(self, *args: Any, store: Any = None, **kwargs: Any) -> None:
        # `store.tickers`: where ccxt keeps tickers (the merge base of deltas); looked up per frame
        # because ccxt replaces `exchange.tickers` on close()
        self.store = store if store is not None else SimpleNamespace(tickers={})
        self._snapshots: dict[str, Any] = {}  # symbol -> last level-1 snapshot decoded
        super().__init__(*args, **kwargs)

    def _decode(self, msg: Any, client: Any) -> list[Tick] | None:
        if type(msg) is not dict:
            return None
        topic = msg.get("topic")
        if type(topic) is not str or not topic or topic in _EXACT_TOPICS:
            return None
        for k in _ROUTING_KEYS:
            if k in msg:
                return None
        if topic.startswith(BOOK1):
            return self._book(msg, client)
        if not topic.startswith("tickers.") or "orderbook" in topic:
            return None
        for k in _EARLIER:
            if k in topic:
                return None
        return self._tickers(msg, topic)

    # tickers ---------------------------------------------------------------------------------
    def _tickers(self, msg: dict[str, Any], topic: str) -> list[Tick] | None:
        kind = msg.get("type")
        data = msg.get("data")
        if type(data) is not dict:
            return None
        tickers = self.store.tickers
        if kind == "snapshot":
            parsed = self._parse(data)
            symbol = parsed["symbol"]
        elif kind == "delta":
            market_type = "spot" if ss(data, "usdIndexPrice") is not None else "contract"
            info = self.resolve(ss(topic.split("."), -1), market_type)
            if info is None:
                return None
            symbol = info.symbol
            prev = tickers.get(symbol)
            raw = prev.get("info") if type(prev) is dict else None
            merged = {**raw, **data} if type(raw) is dict else dict(data)
            parsed = self._parse(merged)
        else:
            return None
        ts = si(msg, "ts")
        parsed["timestamp"] = ts
        if self.datetime:
            from ccxt.base.exchange import Exchange

            parsed["datetime"] = Exchange.iso8601(ts)
        tickers[symbol] = parsed
        return [(TICKER, symbol, parsed)]

    def _parse(self, t: dict[str, Any]) -> dict[str, Any]:
        """bybit.parse_ticker (REST and websocket share it)."""
        market_type = "spot" if ss(t, "openInterestValue") is None else "contract"
        info = self.resolve(ss(t, "symbol"), market_type)
        if info is None:
            raise ValueError("market left to ccxt")
        out = None
        if self.lean:
            try:
                out = _lean_parse(t, info)
            except Exception:
                out = None
        if out is None:
            try:
                out = _fast_parse(t, info)
            except Exception:
                out = None
        if out is not None:
            return out
        last = ss(t, "lastPrice")
        out: dict[str, Any] = {"symbol": info.symbol, "timestamp": si(t, "time")}
        if self.datetime:
            out["datetime"] = None  # replaced with the frame's ts by the caller
        out["info"] = t
        return safe_ticker(out, ss(t, "highPrice24h"), ss(t, "lowPrice24h"), ss(t, "bid1Price"),
                           ss2(t, "bidSize", "bid1Size"), ss(t, "ask1Price"),
                           ss2(t, "askSize", "ask1Size"), None, ss(t, "prevPrice24h"), last, None,
                           None, mul(ss(t, "price24hPcnt"), "100"), None, ss(t, "volume24h"),
                           ss(t, "turnover24h"), ss(t, "markPrice"), ss(t, "indexPrice"),
                           info.precision)

    # level-1 order book ------------------------------------------------------------------------
    def _book_market(self, msg: dict[str, Any], client: Any) -> MarketInfo | None:
        data = msg.get("data")
        if type(data) is not dict:
            return None
        spot = client_url(client).find("spot") >= 0
        return self.resolve(ss(data, "s"), "spot" if spot else "contract")

    def _book(self, msg: dict[str, Any], client: Any) -> list[Tick] | None:
        info = self._book_market(msg, client)
        if info is None:
            return None
        symbol = info.symbol
        if msg.get("type") != "snapshot" or ("orderbook:" + symbol) in client_subscriptions(client):
            return None  # deltas and shared books stay with ccxt (see prelude)
        data = msg["data"]
        bid, bid_vol = _best(data, "b", bids=True)
        ask, ask_vol = _best(data, "a", bids=False)
        ts = si(msg, "ts")
        out: dict[str, Any] = {"symbol": symbol, "timestamp": ts}
        if self.datetime:
            from ccxt.base.exchange import Exchange

            out["datetime"] = Exchange.iso8601(ts)
        # no "info": ccxt's is its OrderBook object, which the decoder does not build
        out.update(bid=None if bid == 0 else bid, bidVolume=bid_vol,
                   ask=None if ask == 0 else ask, askVolume=ask_vol,
                   high=None, low=None, open=None, close=None, last=None, change=None,
                   percentage=None, average=None, vwap=None, baseVolume=None, quoteVolume=None,
                   previousClose=None, indexPrice=None, markPrice=None)
        self._snapshots[symbol] = msg
        return [(BIDASK, symbol, out)]

    def prelude(self, msg: Any, client: Any = None) -> list[Any]:
        if not self._snapshots or type(msg) is not dict:
            return []
        topic = msg.get("topic")
        if type(topic) is not str or not topic.startswith(BOOK1):
            return []
        try:
            info = self._book_market(msg, client)
        except Exception:
            return []
        if info is None:
            return []
        snap = self._snapshots.pop(info.symbol, None)
        if snap is None or msg.get("type") == "snapshot":
            return []  # ccxt's reset makes its book current again
        return [snap]


def _usual(t: dict[str, Any]) -> tuple[str, str, float, float, tuple[int, int]] | None:
    """(lastPrice, prevPrice24h, both as floats, price24hPcnt * 100) of the usual ticker: no
    bidSize/askSize, the three prices strings, last and open non-zero, the change non-zero; else None."""
    if "bidSize" in t or "askSize" in t:
        return None
    g = t.get
    last, open_, pct_raw = g("lastPrice"), g("prevPrice24h"), g("price24hPcnt")
    if type(last) is not str or type(open_) is not str or type(pct_raw) is not str:
        return None
    fl, fo = float(last), float(open_)
    if fl == 0 or fo == 0:
        return None
    pct = mul(dec(pct_raw), ONE_HUNDRED)
    if pct is None or pct[0] == 0:
        return None
    return last, open_, fl, fo, pct


def _fast_parse(t: dict[str, Any], info: MarketInfo) -> dict[str, Any] | None:
    """parse_ticker + safe_ticker for the usual ticker: lastPrice, prevPrice24h and a non-zero
    price24hPcnt present (safe_ticker then derives change, average and vwap)."""
    usual = _usual(t)
    if usual is None:
        return None
    last, open_, fl, fo, pct = usual
    g = t.get
    change, _, average = derive_from_open(last, open_, info.precision)
    base_vol, quote_vol = g("volume24h"), g("turnover24h")
    return {"symbol": info.symbol, "timestamp": si(t, "time"), "info": t,
            "bid": fz(g("bid1Price")), "bidVolume": f_(g("bid1Size")), "ask": fz(g("ask1Price")),
            "askVolume": f_(g("ask1Size")), "high": fz(g("highPrice24h")),
            "low": fz(g("lowPrice24h")), "open": fo, "close": fl, "last": fl,
            "change": change, "percentage": to_float(pct),  # type: ignore[arg-type]
            "average": average,
            "vwap": vwap_fast(quote_vol, base_vol), "baseVolume": f_(base_vol),
            "quoteVolume": f_(quote_vol), "previousClose": None, "indexPrice": f_(g("indexPrice")),
            "markPrice": f_(g("markPrice"))}


def _lean_parse(t: dict[str, Any], info: MarketInfo) -> dict[str, Any] | None:
    """`_fast_parse`'s USED_FIELDS plus `info` (the merge base of the next delta), on the frames it
    takes, or None (the full path decides). Skipped: vwap, high/low, sizes, quote volume, index and
    mark price. ccxt reads those with safe_number (a bad one is None, never an error) except its
    Precise vwap (turnover24h / volume24h): so a frame is taken here only where both volumes are
    absent or finite."""
    usual = _usual(t)
    if usual is None:
        return None
    last, open_, fl, _, pct = usual
    g = t.get
    base_vol, quote_vol = f_(g("volume24h")), f_(g("turnover24h"))
    if (base_vol is not None and not _finite(base_vol)) or (quote_vol is not None and not _finite(quote_vol)):
        return None
    change, _, _ = derive_from_open(last, open_, info.precision)
    return {"symbol": info.symbol, "timestamp": si(t, "time"), "info": t, "bid": fz(g("bid1Price")),
            "ask": fz(g("ask1Price")), "last": fl, "close": fl, "baseVolume": base_vol, "change": change,
            "percentage": to_float(pct)}  # type: ignore[arg-type]


def _best(data: dict[str, Any], key: str, bids: bool) -> tuple[float | None, float | None]:
    """Best level of one side as ccxt's OrderBook would give it: levels are stored by price (a
    later level at the same price replaces the size, a zero/None size deletes it), only sizes > 0
    survive `aggregate`, and ccxt then takes the lowest price of either side."""
    levels = data.get(key)
    if levels is None or levels == "":
        levels = []
    if type(levels) is not list:
        raise ValueError("levels")
    parsed = []
    for lvl in levels:
        if type(lvl) is not list or len(lvl) != 2:
            raise ValueError("level")
        price, size = sf(lvl, 0), sf(lvl, 1)
        if price is None or price != price:
            raise ValueError("price")  # ccxt raises or sorts unpredictably: leave it to ccxt
        parsed.append((price, size))
    # parse_order_book sorts bids descending, asks ascending (stable) before storing
    parsed.sort(key=lambda x: x[0], reverse=bids)
    book: dict[float, float] = {}
    for price, size in parsed:
        if size:
            book[price] = size
        else:
            book.pop(price, None)
    best = None
    for price, size in book.items():
        if size > 0 and (best is None or price < best[0]):
            best = (price, size)
    if best is None:
        return None, None
    return best

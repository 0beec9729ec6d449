"""OKX v5 public: `tickers` (ccxt's `watch_tickers`) and `bbo-tbt` (`watch_bids_asks`).

Mirrors ccxt/pro/okx.py 4.5.90: a `tickers` frame goes to `handle_ticker`, which first stores a
bid/ask ticker from `data[0]` in `exchange.bidsasks` (`handle_bid_ask`/`parse_ws_bid_ask`) and
then one `parse_ticker` result per data item in `exchange.tickers`; a `bbo-tbt` frame goes to
`handle_order_book`, which (when no watch_order_book shares the channel) only calls
`handle_bid_ask`. OKX sends no change/percentage: safe_ticker derives them from `open24h`.
"""

from __future__ import annotations

from math import isfinite as _finite
from typing import Any

from fullon_ticker_service.native._compat import (
    derive_from_open,
    f_,
    fz,
    pnz,
    quote_only_ticker,
    safe_ticker,
    si,
    ss,
    vwap_fast,
)
from fullon_ticker_service.native.base import (
    BIDASK,
    TICKER,
    Decoder,
    MarketInfo,
    Tick,
    client_subscriptions,
)

# frames with any of these at the top level take another path in ccxt (errors, acks, login...)
_ROUTING_KEYS = ("event", "op", "code", "id", "action")


class OkxDecoder(Decoder):
    exchange_ids = ("okx",)

    def _decode(self, msg: Any, client: Any) -> list[Tick] | None:
        if type(msg) is not dict:
            return None
        for k in _ROUTING_KEYS:
            if k in msg:
                return None
        arg = msg.get("arg")
        data = msg.get("data")
        if type(arg) is not dict or type(data) is not list or not data:
            return None
        channel = arg.get("channel")
        if channel != "tickers" and channel != "bbo-tbt":
            return None
        inst_id = ss(arg, "instId")
        info = self.resolve(inst_id, None)  # ccxt's safe_market(instId) without a type
        if info is None:
            return None
        symbol = info.symbol
        if channel == "bbo-tbt":
            if ("bbo-tbt:" + symbol) in client_subscriptions(client):
                return None  # a watch_order_book on bbo-tbt: ccxt keeps its order book
            return [(BIDASK, symbol, self._bid_ask(data[0], info, inst_id))]
        out: list[Tick] = [(BIDASK, symbol, self._bid_ask(data[0], info, inst_id))]
        for item in data:
            out.append((TICKER, symbol, self._ticker(item, info, inst_id)))
        return out

    def _stamp(self, out: dict[str, Any], ts: int | None) -> None:
        if self.datetime:
            from ccxt.base.exchange import Exchange

            out["datetime"] = Exchange.iso8601(ts)

    def _bid_ask(self, t: Any, info: MarketInfo, inst_id: str | None) -> dict[str, Any]:
        if type(t) is not dict:
            raise ValueError("not a dict")
        own_id = t.get("instId")
        if own_id is not None and own_id != inst_id:
            raise ValueError("data for another instrument")
        ts = si(t, "ts")
        if self.lean and not self.datetime:
            out = _lean_bid_ask(t, info.symbol, ts)
            if out is not None:
                return out
        ask = ss(t, "askPx")
        ask_vol = ss(t, "askSz")
        bid = ss(t, "bidPx")
        bid_vol = ss(t, "bidSz")
        if ask is None:
            first = _first(t, "asks")
            ask, ask_vol = ss(first, 0), ss(first, 1)
        if bid is None:
            first = _first(t, "bids")
            bid, bid_vol = ss(first, 0), ss(first, 1)
        out: dict[str, Any] = {"symbol": info.symbol, "timestamp": ts}
        self._stamp(out, ts)
        out["info"] = t
        return quote_only_ticker(out, bid, bid_vol, ask, ask_vol)

    def _ticker(self, t: Any, info: MarketInfo, inst_id: str | None) -> dict[str, Any]:
        if type(t) is not dict or t.get("instId") != inst_id:
            raise ValueError("data for another instrument")
        ts = si(t, "ts")
        out = None
        if self.lean:
            try:
                out = _lean_ticker(t, info, ts)
            except Exception:
                out = None
        if out is None:
            try:
                out = _fast_ticker(t, info, ts)
            except Exception:
                out = None
        if out is not None:
            self._stamp(out, ts)
            return out
        last = ss(t, "last")
        out = {"symbol": info.symbol, "timestamp": ts}
        self._stamp(out, ts)
        out["info"] = t
        return safe_ticker(out, ss(t, "high24h"), ss(t, "low24h"), ss(t, "bidPx"), ss(t, "bidSz"),
                           ss(t, "askPx"), ss(t, "askSz"), None, ss(t, "open24h"), last, None, None,
                           None, None, ss(t, "vol24h"), ss(t, "volCcy24h") if info.spot else None,
                           ss(t, "markPx"), ss(t, "idxPx"), info.precision)


def _first(t: dict[str, Any], key: str) -> Any:
    """safe_list(safe_list(t, key, []), 0, [])."""
    side = t.get(key)
    if type(side) is not list or not side:
        return []
    level = side[0]
    return level if type(level) is list else []


def _usual(t: dict[str, Any]) -> tuple[str, str, float, float] | None:
    """(last, open24h, both as floats) when both are numeric strings and non-zero, else None."""
    last, open_ = t.get("last"), t.get("open24h")
    if type(last) is not str or type(open_) is not str:
        return None
    fl, fo = float(last), float(open_)
    if fl == 0 or fo == 0:
        return None
    return last, open_, fl, fo


def _fast_ticker(t: dict[str, Any], info: MarketInfo, ts: int | None) -> dict[str, Any] | None:
    """parse_ticker + safe_ticker for the usual frame: last and open24h non-zero numeric strings
    (safe_ticker then derives change, percentage, average and vwap from them)."""
    usual = _usual(t)
    if usual is None:
        return None
    last, open_, fl, fo = usual
    g = t.get
    change, pct, average = derive_from_open(last, open_, info.precision)
    if pct is None:
        return None
    base_vol = g("vol24h")
    quote_vol = g("volCcy24h") if info.spot else None
    return {"symbol": info.symbol, "timestamp": ts, "info": t,
            "bid": fz(g("bidPx")), "bidVolume": f_(g("bidSz")), "ask": fz(g("askPx")),
            "askVolume": f_(g("askSz")), "high": fz(g("high24h")), "low": fz(g("low24h")),
            "open": fo, "close": fl, "last": fl, "change": change, "percentage": pct,
            "average": average,
            "vwap": vwap_fast(quote_vol, base_vol), "baseVolume": f_(base_vol),
            "quoteVolume": f_(quote_vol), "previousClose": None, "indexPrice": f_(g("idxPx")),
            "markPrice": f_(g("markPx"))}


def _lean_bid_ask(t: dict[str, Any], symbol: str, ts: int | None) -> dict[str, Any] | None:
    """`_bid_ask`'s USED_FIELDS when askPx and bidPx are non-empty strings (else None: the full path
    reads the book levels). Skipped: the sizes, which ccxt reads with safe_number (never an error)."""
    ask, bid = t.get("askPx"), t.get("bidPx")
    if type(ask) is not str or type(bid) is not str or not ask or not bid:
        return None
    return {"symbol": symbol, "timestamp": ts, "bid": pnz(bid), "ask": pnz(ask),
            "last": None, "close": None, "baseVolume": None, "change": None, "percentage": None}


def _lean_ticker(t: dict[str, Any], info: MarketInfo, ts: int | None) -> dict[str, Any] | None:
    """`_fast_ticker`'s USED_FIELDS only, on the frames it takes, or None (the full path decides).
    Skipped: vwap, high/low, sizes, quote volume, index and mark price. ccxt reads those with
    safe_number (a bad one is None, never an error) except its Precise vwap (volCcy24h / vol24h,
    spot only): so on spot a frame is taken here only where both volumes are absent or finite."""
    usual = _usual(t)
    if usual is None:
        return None
    last, open_, fl, _ = usual
    g = t.get
    base_vol = f_(g("vol24h"))
    if info.spot:
        quote_vol = f_(g("volCcy24h"))
        if (base_vol is not None and not _finite(base_vol)) or (quote_vol is not None and not _finite(quote_vol)):
            return None
    change, pct, _ = derive_from_open(last, open_, info.precision)
    if pct is None:
        return None
    return {"symbol": info.symbol, "timestamp": ts, "bid": fz(g("bidPx")), "ask": fz(g("askPx")), "last": fl,
            "close": fl, "baseVolume": base_vol, "change": change, "percentage": pct}

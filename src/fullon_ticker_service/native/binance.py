"""Binance family (binance, binanceus, binanceusdm, binancecoinm): `24hrTicker` (ccxt's
`watch_tickers(..., {'name': 'ticker'})`), `24hrMiniTicker` (the default `watch_tickers`) and
`bookTicker` (`watch_bids_asks`), bare (`/ws`) or in the combined-stream wrapper
`{"stream": .., "data": {..}}`, single or as the `!ticker@arr` array.

Mirrors ccxt/pro/binance.py 4.5.90: `handle_message` (routing), `handle_tickers_and_bids_asks`
(market-type choice: the unique market with that id, else spot on a `/stream` URL and contract
otherwise) and `parse_ws_ticker` (timestamp from `C` then `E` for tickers, `E` for bookTicker;
inverse markets swap `v`/`q` and derive the quote volume).
"""

from __future__ import annotations

from math import isfinite as _finite
from typing import Any

from fullon_ticker_service.native._compat import (
    derive_from_open,
    div,
    f_,
    fz,
    mid_average,
    mul,
    safe_ticker,
    si2,
    sin,
    ss,
    ss2,
    to_float,
    vwap_fast,
)
from fullon_ticker_service.native.base import BIDASK, TICKER, Decoder, MarketInfo, Tick, client_url

_TICKER_EVENTS = frozenset(("24hrTicker", "24hrMiniTicker"))
_ARRAY_EVENTS = frozenset(("24hrTicker@arr", "24hrMiniTicker@arr"))
_TS_KEYS = ("C", "E", "time")
_2_53 = 2**53


class BinanceDecoder(Decoder):
    exchange_ids = ("binance", "binanceus", "binanceusdm", "binancecoinm")

    def set_markets(self, markets_by_id: Any) -> None:
        super().set_markets(markets_by_id)
        self._spot_url: dict[str, bool] = {}
        self._by_id_url: dict[tuple[str, str], MarketInfo] = {}

    def _is_spot_url(self, url: str) -> bool:
        spot = self._spot_url.get(url)
        if spot is None:
            spot = self._spot_url[url] = url.find("/stream") > -1 or url.find("demo-stream") > -1
        return spot

    def _decode(self, msg: Any, client: Any) -> list[Tick] | None:
        if type(msg) is dict:
            if "stream" in msg and ss(msg, "stream") is not None:
                data = msg.get("data")
                if type(data) is not dict:
                    return None  # ccxt ignores a wrapped array
                msg = data
            if ("status" in msg or "error" in msg or "id" in msg or "event" in msg or "data" in msg
                    or "result" in msg):
                return None  # errors, API responses, user-data and wrapped events: ccxt's
            event = msg.get("e")
            if event is None:
                if "a" in msg and "b" in msg:
                    return [self._one(msg, client, True)]
                return None
            if type(event) is not str:
                return None
            if event == "bookTicker":
                return [self._one(msg, client, True)]
            if event in _TICKER_EVENTS:
                return [self._one(msg, client, False)]
            return None
        if type(msg) is list and msg:
            first = msg[0]
            if type(first) is not dict or type(first.get("e")) is not str:
                return None
            if first["e"] + "@arr" not in _ARRAY_EVENTS:
                return None
            out = []
            for el in msg:
                if type(el) is not dict or el.get("e") not in _TICKER_EVENTS:
                    return None
                out.append(self._one(el, client, False))
            return out
        return None

    def _market(self, m: dict[str, Any], client: Any) -> MarketInfo:
        """handle_tickers_and_bids_asks: the unique market with that id, else by the URL."""
        market_id = m.get("s")
        if type(market_id) is not str:
            market_id = ss(m, "s")
            if market_id is None:
                raise ValueError("no market id")
        url = client_url(client)
        info = self._by_id_url.get((market_id, url))
        if info is not None:
            return info
        markets = self._by_id.get(market_id)
        if markets is not None and len(markets) == 1:
            market_type = markets[0]["type"]
        else:
            market_type = "spot" if self._is_spot_url(url) else "contract"
        info = self.resolve(market_id, market_type)
        if info is None or "inverse" not in info.market:
            raise ValueError("market left to ccxt")
        self._by_id_url[(market_id, url)] = info
        return info

    def _one(self, m: dict[str, Any], client: Any, bidask: bool) -> Tick:
        info = self._market(m, client)
        event = ss(m, "e") or "bookTicker"
        out = None
        if event == "bookTicker":
            ts = si2(m, "E", "time")
            try:
                out = _fast_book(m, info.symbol, ts, self.lean)
            except Exception:
                out = None
        else:
            close_time = m.get("C")
            if type(close_time) is int and -_2_53 < close_time < _2_53:
                ts = close_time  # what int(float(C)) gives for an exact integer
            else:
                ts = sin(m, _TS_KEYS)
            if self.lean and event == "24hrTicker":
                try:
                    out = _lean_ticker(m, info, ts)
                except Exception:
                    out = None
            if out is None:
                try:
                    out = _fast_ticker(m, info, ts) if event == "24hrTicker" else _fast_mini(m, info, ts)
                except Exception:
                    out = None
        if out is None:
            out = self._generic(m, info, ts)
        if self.datetime:
            from ccxt.base.exchange import Exchange

            out["datetime"] = Exchange.iso8601(ts)
        return (BIDASK if bidask else TICKER), info.symbol, out

    def _generic(self, m: dict[str, Any], info: MarketInfo, ts: int | None) -> dict[str, Any]:
        """parse_ws_ticker (any ticker/bookTicker shape)."""
        out: dict[str, Any] = {"symbol": info.symbol, "timestamp": ts, "info": m}
        last = ss2(m, "c", "price")
        base_vol: Any = ss(m, "v")
        quote_vol: Any = ss(m, "q")
        if info.inverse is True:
            contracts = base_vol
            base_vol = quote_vol
            wavg = ss(m, "w")
            if wavg is None:
                quote_vol = mul(contracts, ss(info.market, "contractSize"))
            else:
                quote_vol = mul(base_vol, wavg)
        return safe_ticker(out, ss(m, "h"), ss(m, "l"), ss2(m, "b", "bidPrice"), ss2(m, "B", "bidQty"),
                           ss2(m, "a", "askPrice"), ss2(m, "A", "askQty"), ss(m, "w"), ss(m, "o"), last,
                           ss(m, "x"), ss(m, "p"), ss(m, "P"), None, base_vol, quote_vol, None, None,
                           info.precision)


# a bookTicker with any of these is not the usual shape
_NOT_BOOK = frozenset(("c", "price", "o", "h", "l", "v", "q", "w", "x", "p", "P", "bidPrice",
                       "askPrice", "bidQty", "askQty"))
_FALLBACK_KEYS = ("bidPrice", "askPrice", "bidQty", "askQty", "price")


def _fast_book(m: dict[str, Any], symbol: str, ts: int | None, lean: bool = False) -> dict[str, Any] | None:
    """bookTicker: bid/ask and sizes only (safe_ticker derives nothing)."""
    if not _NOT_BOOK.isdisjoint(m):
        return None
    b, bq, a, aq = m["b"], m["B"], m["a"], m["A"]
    if type(b) is not str or type(bq) is not str or type(a) is not str or type(aq) is not str:
        return None
    fb, fa = float(b), float(a)
    if lean:  # the sizes are ccxt's safe_number (a bad one is None, never an error): not needed
        return {"symbol": symbol, "timestamp": ts, "bid": None if fb == 0 else fb, "ask": None if fa == 0 else fa,
                "last": None, "close": None, "baseVolume": None, "change": None, "percentage": None}
    return {"symbol": symbol, "timestamp": ts, "info": m,
            "bid": None if fb == 0 else fb, "bidVolume": float(bq),
            "ask": None if fa == 0 else fa, "askVolume": float(aq),
            "high": None, "low": None, "open": None, "close": None, "last": None, "change": None,
            "percentage": None, "average": None, "vwap": None, "baseVolume": None,
            "quoteVolume": None, "previousClose": None, "indexPrice": None, "markPrice": None}


def _usual_ticker(m: dict[str, Any]) -> tuple[str, str, str, str, str, str, str] | None:
    """(c, o, p, P, w, v, q) of a 24hrTicker of the usual shape (each a str, no fallback keys), else None."""
    for k in _FALLBACK_KEYS:
        if k in m:
            return None
    c, o, p, pct, w, v, q = m["c"], m["o"], m["p"], m["P"], m["w"], m["v"], m["q"]
    if (type(c) is not str or type(o) is not str or type(p) is not str or type(pct) is not str
            or type(w) is not str or type(v) is not str or type(q) is not str):
        return None
    return c, o, p, pct, w, v, q


def _fast_ticker(m: dict[str, Any], info: MarketInfo, ts: int | None) -> dict[str, Any] | None:
    """24hrTicker with open, close, change, percentage, vwap and volumes present and non-zero
    open/close/percentage: safe_ticker then only derives `average` (and inverse quote volume)."""
    fields = _usual_ticker(m)
    if fields is None:
        return None
    c, o, p, pct, w, v, q = fields
    fc, fo, fpct = float(c), float(o), float(pct)
    if fc == 0 or fo == 0 or fpct == 0:
        return None
    average = mid_average(o, c, info.precision)
    if info.inverse is True:
        base_vol, quote_vol = float(q), to_float(mul(q, w))  # type: ignore[arg-type]
    else:
        base_vol, quote_vol = float(v), float(q)
    g = m.get
    b, bq, a, aq, h, lo, x = g("b"), g("B"), g("a"), g("A"), g("h"), g("l"), g("x")
    if (type(b) is str and type(bq) is str and type(a) is str and type(aq) is str and type(h) is str
            and type(lo) is str and type(x) is str):  # spot: all there
        fb, fa, fh, fl = float(b), float(a), float(h), float(lo)
        return {"symbol": info.symbol, "timestamp": ts, "info": m,
                "bid": None if fb == 0 else fb, "bidVolume": float(bq), "ask": None if fa == 0 else fa,
                "askVolume": float(aq), "high": None if fh == 0 else fh, "low": None if fl == 0 else fl,
                "open": fo, "close": fc, "last": fc, "change": float(p), "percentage": fpct,
                "average": average, "vwap": float(w), "baseVolume": base_vol, "quoteVolume": quote_vol,
                "previousClose": float(x), "indexPrice": None, "markPrice": None}
    return {"symbol": info.symbol, "timestamp": ts, "info": m,
            "bid": fz(b), "bidVolume": f_(bq), "ask": fz(a), "askVolume": f_(aq),
            "high": fz(h), "low": fz(lo), "open": fo, "close": fc, "last": fc,
            "change": float(p), "percentage": fpct, "average": average, "vwap": float(w),
            "baseVolume": base_vol, "quoteVolume": quote_vol, "previousClose": f_(x),
            "indexPrice": None, "markPrice": None}


def _lean_ticker(m: dict[str, Any], info: MarketInfo, ts: int | None) -> dict[str, Any] | None:
    """`_fast_ticker`'s values of USED_FIELDS only, on the frames it takes, or None (then the full
    path decides). Skipped: ccxt's `average` (Precise), vwap, sizes, high/low, open, quote volume,
    previous close. ccxt parses those with parse_number/safe_number, which turn a bad value into
    None and never raise; only its Precise arithmetic raises. So a frame is taken here only where
    that arithmetic cannot: close and open finite (then Precise parses both, for the average),
    and on inverse markets the quote volume and vwap finite too (their product)."""
    fields = _usual_ticker(m)
    if fields is None:
        return None
    c, o, p, pct, w, v, q = fields
    fc, fo, fpct = float(c), float(o), float(pct)
    if fc == 0 or fo == 0 or fpct == 0 or not (_finite(fc) and _finite(fo)):
        return None
    if info.inverse is True:
        base_vol = float(q)
        if not (_finite(base_vol) and _finite(float(w))):
            return None
    else:
        base_vol = float(v)
    g = m.get
    return {"symbol": info.symbol, "timestamp": ts, "bid": fz(g("b")), "ask": fz(g("a")), "last": fc, "close": fc,
            "baseVolume": base_vol, "change": float(p), "percentage": fpct}


def _fast_mini(m: dict[str, Any], info: MarketInfo, ts: int | None) -> dict[str, Any] | None:
    """24hrMiniTicker (c, o, h, l, v, q): safe_ticker derives change, percentage, average and vwap
    from non-zero open/close."""
    for k in _NOT_MINI:
        if k in m:
            return None
    c, o, v, q = m["c"], m["o"], m["v"], m["q"]
    if type(c) is not str or type(o) is not str or type(v) is not str or type(q) is not str:
        return None
    fc, fo = float(c), float(o)
    if fc == 0 or fo == 0:
        return None
    change, pct, average = derive_from_open(c, o, info.precision)
    if pct is None:
        return None
    if info.inverse is True:
        contracts, base_vol = v, q
        quote_vol: Any = mul(contracts, ss(info.market, "contractSize"))
        vwap = None if quote_vol is None or quote_vol[0] == 0 else div(quote_vol, base_vol)
        return {"symbol": info.symbol, "timestamp": ts, "info": m, "bid": None, "bidVolume": None,
                "ask": None, "askVolume": None, "high": fz(m.get("h")), "low": fz(m.get("l")), "open": fo,
                "close": fc, "last": fc, "change": change, "percentage": pct, "average": average,
                "vwap": None if vwap is None else to_float(vwap), "baseVolume": float(base_vol),
                "quoteVolume": None if quote_vol is None else to_float(quote_vol), "previousClose": None,
                "indexPrice": None, "markPrice": None}
    return {"symbol": info.symbol, "timestamp": ts, "info": m, "bid": None, "bidVolume": None, "ask": None,
            "askVolume": None, "high": fz(m.get("h")), "low": fz(m.get("l")), "open": fo, "close": fc,
            "last": fc, "change": change, "percentage": pct, "average": average, "vwap": vwap_fast(q, v),
            "baseVolume": float(v), "quoteVolume": float(q), "previousClose": None, "indexPrice": None,
            "markPrice": None}


# a miniTicker with any of these is not the usual shape
_NOT_MINI = ("p", "P", "w", "x", "b", "B", "a", "A", "price", "bidPrice", "askPrice", "bidQty", "askQty")

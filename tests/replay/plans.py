"""Which ccxt calls reach every captured frame of a venue, and how to group symbols into calls.

A `Plan` is one exchange instance and the calls it makes. Channels that feed the same ccxt dict for
one symbol (binance ``ticker`` / ``miniTicker``, htx ``detail`` / ``bbo``, kucoin ``/market/ticker``
/ ``/market/snapshot``) go to separate plans so that each instance's final value is well defined.

Grouping: ccxt routes a whole ``watch_tickers`` / ``watch_bids_asks`` call to the socket of its
first symbol, and some venues refuse mixed market types in one call (krakenfutures futures vs
swaps, binance linear vs inverse). So symbols are grouped by the socket URL ccxt picks for each
(learned offline: on a throwaway instance ``watch`` / ``watch_multiple`` are replaced by a function
that raises with its url argument) and by market type and sub-type, then chunked.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

CHUNK = 50  # symbols per call (coinbase closes sockets on huge subscriptions, okx frames get too big)


@dataclass(frozen=True)
class Call:
    method: str  # watch_tickers | watch_bids_asks | watch_ticker (one call per symbol)
    channel: str  # the server channel whose symbols it subscribes
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def per_symbol(self) -> bool:
        return self.method == "watch_ticker"

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def describe(self) -> str:
        p = f", {self.kwargs()}" if self.params else ""
        return f"{self.method}({'symbol' if self.per_symbol else '[symbols]'}{p})"


@dataclass
class Plan:
    name: str
    calls: list[Call]
    options: dict[str, Any] = field(default_factory=dict)  # ccxt config beyond the URL overrides
    note: str = ""

    @property
    def channels(self) -> set[str]:
        return {c.channel for c in self.calls}


_BINANCE = [
    Plan("24hrTicker + bookTicker", [Call("watch_tickers", "ticker", (("name", "ticker"),)),
                                      Call("watch_bids_asks", "bookTicker")]),
    Plan("miniTicker", [Call("watch_tickers", "miniTicker")], note="ccxt's default ticker stream"),
]

PLANS: dict[str, list[Plan]] = {
    "binance": _BINANCE,
    "binanceusdm": _BINANCE,
    "binancecoinm": _BINANCE,
    "binanceus": [Plan("bookTicker", [Call("watch_bids_asks", "bookTicker")])],
    "bitfinex": [Plan("ticker", [Call("watch_ticker", "ticker")], note="no watch_tickers in ccxt")],
    "coinbaseexchange": [Plan("ticker", [Call("watch_tickers", "ticker")])],
    "deribit": [Plan("ticker.100ms", [Call("watch_tickers", "ticker")])],
    "gate": [Plan("tickers + book_ticker", [Call("watch_tickers", "tickers"), Call("watch_bids_asks", "book_ticker")])],
    "kucoin": [
        Plan("/market/ticker", [Call("watch_tickers", "ticker")]),
        Plan("/market/snapshot", [Call("watch_ticker", "snapshot")], note="watch_ticker's default topic"),
    ],
    "okx": [Plan("tickers", [Call("watch_tickers", "tickers")])],
    "htx": [
        Plan("detail", [Call("watch_ticker", "detail")], note="watch_tickers is not supported"),
        Plan("bbo", [Call("watch_ticker", "bbo")],
             options={"options": {"watchTicker": {"name": "market.{marketId}.bbo"}}},
             note="needs options.watchTicker.name (beyond URL overrides)"),
    ],
    "hitbtc": [Plan("ticker/1s", [Call("watch_tickers", "ticker")])],
    "krakenfutures": [Plan("ticker + ticker_lite", [Call("watch_tickers", "ticker"),
                                                    Call("watch_bids_asks", "ticker_lite")])],
    "kraken": [Plan("ticker (v2)", [Call("watch_tickers", "ticker")])],
    "bybit": [Plan("tickers", [Call("watch_tickers", "tickers")])],
    "hyperliquid": [Plan("activeAssetCtx", [Call("watch_ticker", "activeAssetCtx")],
                         note="watch_tickers would use allMids (mid price only)")],
}


class _ProbedUrl(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _raise_url(url: str, *args: Any, **kwargs: Any) -> Any:
    raise _ProbedUrl(url)


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def probe_url(exchange: Any, call: Call, symbol: str) -> str:
    """The websocket URL ccxt would use for `call` with `symbol` (throwaway instance: patched)."""
    exchange.watch = _raise_url
    exchange.watch_multiple = _raise_url
    arg: Any = symbol if call.per_symbol else [symbol]
    try:
        await maybe_await(getattr(exchange, call.method)(arg, call.kwargs()))
    except _ProbedUrl as probed:
        return probed.url
    raise AssertionError(f"{exchange.id}.{call.method}({symbol}) returned without calling watch")


def _socket_key(url: str) -> str:
    """Binance appends a per-call stream index (/ws/0, /ws/1): the same socket kind."""
    return re.sub(r"/\d+$", "", url.split("?")[0])


async def group_calls(probe: Any, call: Call, symbols: list[str],
                      markets: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """[(socket url, symbols)] for `call`: one entry per ccxt call to make."""
    if call.per_symbol:
        return [(await probe_url(probe, call, s), [s]) for s in symbols]
    groups: dict[tuple[str, str, str], list[str]] = {}
    urls: dict[tuple[str, str, str], str] = {}
    for s in symbols:
        url = await probe_url(probe, call, s)
        m = markets[s]
        sub = "linear" if m.get("linear") else "inverse" if m.get("inverse") else ""
        key = (_socket_key(url), str(m.get("type")), sub)
        groups.setdefault(key, []).append(s)
        urls.setdefault(key, url)
    out: list[tuple[str, list[str]]] = []
    for key, syms in groups.items():
        for i in range(0, len(syms), CHUNK):
            out.append((urls[key], syms[i:i + CHUNK]))
    return out

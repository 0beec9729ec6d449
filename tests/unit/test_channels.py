"""channels: which streams each venue gets, and how symbols group into ccxt calls.

The last test holds the plan against ccxt itself, for every venue of the real captures' manifest and
of the simulator: every planned call is one that ccxt accepts and routes to the socket each of its
symbols belongs to (ccxt routes a whole call by its first symbol).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import ccxt.pro as ccxtpro
import pytest

from fullon_ticker_service.channels import (
    BIDASK,
    TICKER,
    Stream,
    chunked,
    plan,
    route_key,
    socket_of,
    streams_for,
)
from fullon_ticker_service.sim.server import VENUES as SIM_VENUES
from fullon_ticker_service.sim.server import load_venue
from fullon_ticker_service.worker.exchange import _Probed, _raise_url, routes
from tests.replay.captures import CAPTURES_DIR

CAPTURES = CAPTURES_DIR  # tests/replay/captures.py finds them
ALL = {"watchTickers": True, "watchTicker": True, "watchBidsAsks": True}


@pytest.mark.parametrize(("venue", "has", "kw", "want"), [
    ("binance", ALL, {}, [Stream(TICKER, "watch_tickers", {"name": "ticker"}, 100),
                          Stream(BIDASK, "watch_bids_asks", {}, 100)]),
    ("binanceusdm", ALL, {}, [Stream(TICKER, "watch_tickers", {"name": "ticker"}, 100),
                              Stream(BIDASK, "watch_bids_asks", {}, 100)]),
    ("okx", ALL, {}, [Stream(TICKER, "watch_tickers", {}, 50), Stream(BIDASK, "watch_bids_asks", {}, 50)]),
    ("bybit", ALL, {}, [Stream(TICKER, "watch_tickers", {}, 10), Stream(BIDASK, "watch_bids_asks", {}, 10)]),
    ("kraken", ALL, {}, [Stream(TICKER, "watch_tickers", {}, 50, unwatch=False)]),  # bidask off by default
    ("kraken", ALL, {"streams": ("ticker", "bidask")},
     [Stream(TICKER, "watch_tickers", {}, 50, unwatch=False), Stream(BIDASK, "watch_bids_asks", {}, 50, False)]),
    ("hyperliquid", ALL, {}, [Stream(TICKER, "watch_ticker", {}, 1)]),
    ("coinbase", ALL, {}, [Stream(TICKER, "watch_ticker", {}, 1, unwatch=False)]),
    ("binance", ALL, {"streams": ("bidask",)}, [Stream(BIDASK, "watch_bids_asks", {}, 100)]),
    ("binance", ALL, {"streams": ("ticker",), "channel": "miniTicker", "chunk": 7},
     [Stream(TICKER, "watch_tickers", {"name": "miniTicker"}, 7)]),
    ("okx", ALL, {"streams": ("ticker",), "method": "watch_ticker"}, [Stream(TICKER, "watch_ticker", {}, 1)]),
    ("newvenue", {"watchTickers": True, "watchBidsAsks": True, "unWatchTickers": True}, {},
     [Stream(TICKER, "watch_tickers", {}, 50, True), Stream(BIDASK, "watch_bids_asks", {}, 50, False)]),
    ("newvenue", {"watchTicker": True}, {}, [Stream(TICKER, "watch_ticker", {}, 1, False)]),
])
def test_streams_for(venue: str, has: dict[str, Any], kw: dict[str, Any], want: list[Stream]) -> None:
    """The venue table (or ccxt's `has` for an exchange not in it), narrowed and overridden by config."""
    assert streams_for(venue, has, **kw) == want


@pytest.mark.parametrize(("venue", "has", "streams", "message"), [
    ("hyperliquid", ALL, ("ticker", "bidask"), "hyperliquid has no best bid/ask stream"),
    ("binance", {"watchTickers": True}, ("bidask",), "binance has no best bid/ask stream"),
    ("binance", ALL, ("trades",), "unknown stream 'trades'"),
])
def test_streams_that_do_not_exist_are_one_line_errors(venue: str, has: dict[str, Any], streams: tuple[str, ...],
                                                       message: str) -> None:
    with pytest.raises(ValueError, match=message):
        streams_for(venue, has, streams)


def _market(type_: str = "spot", linear: bool | None = None) -> dict[str, Any]:
    return {"type": type_, "linear": linear, "inverse": None if linear is None else not linear}


def test_plan_groups_by_socket_type_and_linearity_then_chunks() -> None:
    """Sorted within a group; one group per (socket, type, linear/inverse); chunks never mix groups."""
    markets = {"A/USDT": _market(), "B/USDT": _market(), "C/USDT": _market(),
               "A/USDT:USDT": _market("swap", True), "A/USD:A": _market("swap", False),
               "A/USD:A-261225": _market("future", False)}
    urls = {"A/USDT": "wss://x/spot", "B/USDT": "wss://x/spot", "C/USDT": "wss://x/spot",
            "A/USDT:USDT": "wss://x/linear", "A/USD:A": "wss://x/inverse", "A/USD:A-261225": "wss://x/inverse"}
    got = plan(Stream(TICKER, "watch_tickers", {}, 2), list(markets), markets, urls)
    assert got == [("wss://x/inverse|future|inverse", ["A/USD:A-261225"]),
                   ("wss://x/inverse|swap|inverse", ["A/USD:A"]),
                   ("wss://x/linear|swap|linear", ["A/USDT:USDT"]),
                   ("wss://x/spot|spot|", ["A/USDT", "B/USDT"]),
                   ("wss://x/spot|spot|", ["C/USDT"])]
    one = plan(Stream(TICKER, "watch_ticker", {}, 50), ["B/USDT", "A/USDT"], markets, urls)
    assert one == [("wss://x/spot|spot|", ["A/USDT"]), ("wss://x/spot|spot|", ["B/USDT"])]


def test_routes_unknown_group_by_market_alone_and_stream_indexes_are_one_socket() -> None:
    assert socket_of("wss://stream.binance.com:9443/ws/17") == "wss://stream.binance.com:9443/ws"
    assert socket_of("wss://fx-ws.gateio.ws/v4/ws/usdt?x=1") == "wss://fx-ws.gateio.ws/v4/ws/usdt"
    assert route_key(_market("swap", True), None) == "|swap|linear"
    assert chunked(["a", "b", "c"], 2) == [["a", "b"], ["c"]] and chunked([], 5) == []


# --- the plan against ccxt's own routing ----------------------------------------------------------
def _manifest_venues() -> list[tuple[str, str, list[dict[str, Any]]]]:
    if not (CAPTURES / "manifest.json").is_file():
        return []
    man = json.loads((CAPTURES / "manifest.json").read_text())
    return [(f"capture:{name}", m["ccxt_class"], m["markets"]) for name, m in man.items()
            if not name.startswith("_") and name not in ("kraken_v1", "bitmex")]


def _sim_venues() -> list[tuple[str, str, list[dict[str, Any]]]]:
    out = []
    for vid in SIM_VENUES:
        venue = load_venue(vid)
        out.append((f"sim:{vid}", vid, venue.make_markets(30)))
    return out


async def _call_url(exchange: Any, stream: Stream, symbols: list[str]) -> str | None:
    """The URL ccxt picks for one planned call (None: it needs the network first, e.g. KuCoin's token).
    Any other exception (BadRequest for a mix ccxt refuses) fails the test."""
    probe = type(exchange)({})
    probe.set_markets(list(exchange.markets.values()))
    probe.watch = probe.watch_multiple = _raise_url

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("offline")

    probe.fetch = probe.fetch2 = offline
    probe.asyncio_loop = probe.throttler.loop = asyncio.get_running_loop()
    try:
        await getattr(probe, stream.method)(symbols[0] if stream.per_symbol else symbols, dict(stream.params))
    except _Probed as p:
        return p.url
    except ConnectionError:
        return None
    finally:
        probe.timeout_on_exit = 0
        await probe.close()
    raise AssertionError(f"{stream.method} returned without subscribing")


@pytest.mark.parametrize(("label", "ccxt_class", "markets"), _manifest_venues() + _sim_venues(),
                         ids=lambda v: v if isinstance(v, str) and ":" in v else "")
async def test_every_planned_call_is_routed_by_ccxt_to_the_socket_of_all_its_symbols(label, ccxt_class, markets):
    """For each stream of the venue: the plan's calls cover every symbol once, ccxt accepts each call
    (no BadRequest for mixed types), and the socket it routes the call to is the one every symbol of
    the call is routed to on its own."""
    exchange = getattr(ccxtpro, ccxt_class)({})
    exchange.set_markets(markets)
    symbols = [m["symbol"] for m in markets]
    try:
        await _check_routing(label, exchange, symbols)
    finally:
        exchange.timeout_on_exit = 0
        await exchange.close()


async def _check_routing(label: str, exchange: Any, symbols: list[str]) -> None:
    for stream in streams_for(exchange.id, exchange.has):
        urls = await routes(exchange, stream, symbols)
        calls = plan(stream, symbols, exchange.markets, urls)
        assert sorted(s for _, part in calls for s in part) == sorted(symbols)
        for route, part in calls:
            got = await _call_url(exchange, stream, part)
            if got is None:  # ccxt needs the network to choose (KuCoin): grouped by market type only
                assert all(urls[s] is None for s in part), (label, part)
                continue
            assert {socket_of(urls[s]) for s in part} == {socket_of(got)}, (label, stream.kind, part, got)
            assert route.startswith(socket_of(got) + "|")

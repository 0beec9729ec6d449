"""tick.normalise / tick.validate on real ccxt ticker shapes and on hand-written edge cases."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service import tick
from fullon_ticker_service.sim.model import Walk
from fullon_ticker_service.sim.venues.binance import Binance
from fullon_ticker_service.sim.venues.coinbase import Coinbase
from tests.replay.captures import CAPTURES_DIR

CAPTURES = CAPTURES_DIR  # tests/replay/captures.py finds them
RECEIVED = 1_763_700_000.25  # arrival time handed to normalise (epoch s)
FULLON_FIELDS = ("symbol", "exchange", "price", "volume", "time", "bid", "ask", "last", "change", "percentage")

needs_captures = pytest.mark.skipif(not (CAPTURES / "manifest.json").is_file(),
                                    reason="exchange captures not available")


class _Client:
    """The part of a ccxt.pro websocket client that ticker handlers touch."""

    url = "wss://captured.invalid"

    def __init__(self) -> None:
        self.subscriptions: dict[str, Any] = {}
        self.futures: dict[str, Any] = {}
        self.resolved: list[str] = []

    def resolve(self, result: Any, message_hash: str) -> Any:
        self.resolved.append(message_hash)
        return result

    def reject(self, *args: Any) -> None:  # pragma: no cover - only on a protocol error
        raise AssertionError(f"ccxt rejected the frame: {args!r}")


def _captured_frame(name: str, n: int) -> dict[str, Any]:
    lines = (CAPTURES / f"{name}.jsonl").read_text().splitlines()
    meta = [json.loads(line) for line in (CAPTURES / f"{name}.meta.jsonl").read_text().splitlines()]
    assert meta[n - 1]["n"] == n and meta[n - 1]["kind"] in ("ticker", "bidask")
    frame = json.loads(lines[n - 1])
    # Binance was captured on the combined stream; ccxt connects to /ws, which sends `data` only.
    return frame["data"] if name.startswith("binance") and "stream" in frame else frame


def _ccxt_parse(ccxt_class: str, markets: list[dict[str, Any]], frame: dict[str, Any], symbol: str,
                store: str = "tickers") -> dict[str, Any]:
    """Feed one websocket frame through real ccxt.pro message handling; return its unified ticker."""
    ex = getattr(ccxtpro, ccxt_class)()
    ex.set_markets(markets)
    client = _Client()
    ex.handle_message(client, frame)
    assert client.resolved, f"ccxt {ccxt_class} resolved nothing for {frame!r}"
    return getattr(ex, store)[symbol]


@dataclass(frozen=True)
class Case:
    id: str
    name: str  # capture file / manifest key
    ccxt_class: str
    n: int  # 1-based line in the capture
    symbol: str
    price: float
    bid: float | None
    ask: float | None
    last: float | None
    volume: float
    time: float
    time_source: str
    change: float | None
    percentage: float | None  # None: not checked (ccxt derives it from open/last)
    store: str = "tickers"


# Expected values are read off the raw frame text (not off ccxt's output).
CAPTURED = [
    Case("binance-24hrTicker", "binance", "binance", 85, "ETH/USDT", 1792.84, 1792.83, 1792.84, 1792.84,
         471703.5311, 1653812650.344, "exchange", 28.23, 1.6),
    Case("binance-ticker-array", "binance", "binance", 86, "ETH/BTC", 0.061503, 0.061503, 0.061504, 0.061503,
         116854.4523, 1653812100.257, "exchange", 0.000315, 0.515),
    Case("binance-miniTicker-no-bidask", "binance", "binance", 91, "BTC/USDT", 10456.56, None, None, 10456.56,
         64483.097562, 1601628771.865, "exchange", -428.34, None),
    Case("binance-bookTicker-mid-price", "binance", "binance", 1, "NKN/USDT", (0.3521 + 0.3526) / 2, 0.3521,
         0.3526, None, 0.0, RECEIVED, "received", None, None, store="bidsasks"),
    Case("okx-tickers", "okx", "okx", 10, "BTC/USD:BTC-220527", 30218.8, 30210.4, 30220.1, 30218.8,
         779573.0, 1652459223.003, "exchange", 647.4, None),
    Case("bybit-linear-snapshot", "bybit", "bybit", 1, "BTC/USDT:USDT", 28550.7, 28550.7, 28550.8, 28550.7,
         151185.516, 1680673821.770, "exchange", 651.0, 2.3333),
    Case("kraken-v2-no-timestamp", "kraken", "kraken", 2, "BTC/USD", 65972.9, 65972.8, 65972.9, 65972.9,
         4216.6182937, RECEIVED, "received", 4412.1, 7.17),
    Case("hyperliquid-swap-no-volume", "hyperliquid", "hyperliquid", 1, "MOODENG/USDC:USDC", 0.19957, 0.199517,
         0.199725, 0.19957, 0.0, RECEIVED, "received", None, None),
    Case("hyperliquid-spot-no-bidask", "hyperliquid", "hyperliquid", 2, "HFUN/USDC", 0.00005307, None, None,
         0.00005307, 0.0, RECEIVED, "received", None, None),
    Case("coinbaseexchange-ticker", "coinbaseexchange", "coinbaseexchange", 3, "BAND/GBP", 14.7775, 14.755,
         14.806, 14.7775, 94381.28, 1618677810.244, "exchange", 0.1128, None),
]


def _approx(value: float | None) -> Any:
    return None if value is None else pytest.approx(value, rel=1e-9)


@needs_captures
@pytest.mark.parametrize("case", CAPTURED, ids=[c.id for c in CAPTURED])
def test_normalise_captured_frames(case: Case) -> None:
    """A real exchange frame parsed by real ccxt normalises to the fullon tick the frame describes."""
    manifest = json.loads((CAPTURES / "manifest.json").read_text())
    ticker = _ccxt_parse(case.ccxt_class, manifest[case.name]["markets"], _captured_frame(case.name, case.n),
                         case.symbol, case.store)
    t = tick.normalise(case.name, ticker, RECEIVED)
    assert t["symbol"] == case.symbol
    assert t["exchange"] == case.name
    assert t["price"] == _approx(case.price)
    assert t["bid"] == _approx(case.bid)
    assert t["ask"] == _approx(case.ask)
    assert t["last"] == _approx(case.last)
    assert t["volume"] == _approx(case.volume)
    assert t["time"] == pytest.approx(case.time, abs=1e-6)
    assert t["time_source"] == case.time_source
    assert t["change"] == _approx(case.change)
    if case.percentage is not None:
        assert t["percentage"] == _approx(case.percentage)
    assert tick.validate(t, now=RECEIVED, max_skew=10.0) is None


@needs_captures
@pytest.mark.parametrize("case", CAPTURED, ids=[c.id for c in CAPTURED])
def test_captured_tick_serialises_with_fullon_fields(case: Case) -> None:
    """The JSON stored in `tickers:{exchange}` carries every field fullon's Tick reads, numbers as numbers."""
    manifest = json.loads((CAPTURES / "manifest.json").read_text())
    ticker = _ccxt_parse(case.ccxt_class, manifest[case.name]["markets"], _captured_frame(case.name, case.n),
                         case.symbol, case.store)
    doc = orjson.loads(orjson.dumps(tick.normalise(case.name, ticker, RECEIVED)))
    missing = [f for f in FULLON_FIELDS if f not in doc]
    assert not missing, f"missing fullon fields {missing}"
    for key in ("price", "volume", "time"):
        assert isinstance(doc[key], float), (key, doc[key])
    for key in ("bid", "ask", "last", "change", "percentage"):
        assert doc[key] is None or isinstance(doc[key], float), (key, doc[key])


def _sim_quote(symbols: list[str], symbol: str) -> Any:
    return Walk(symbols, seed=11).step(symbol, 1_763_700_000_123)


@pytest.mark.parametrize(("channel", "store", "source", "has_last"), [
    ("ticker", "tickers", "exchange", True),
    ("bookTicker", "bidsasks", "received", False),
], ids=["ticker", "bookTicker"])
def test_normalise_binance_simulator_frames(channel: str, store: str, source: str, has_last: bool) -> None:
    """Binance frames from the simulator, parsed by ccxt, give back the simulated quote's values."""
    venue = Binance()
    markets = venue.make_markets(3)
    venue.index(markets)
    symbol = markets[1]["symbol"]
    q = _sim_quote([m["symbol"] for m in markets], symbol)
    frame = json.loads(venue.encode(SimpleNamespace(state={}), channel, q))
    ex = ccxtpro.binance()
    ex.set_markets(markets)
    if channel == "ticker":
        ticker = ex.parse_ws_ticker(frame, "spot")
    else:
        ex.handle_message(_Client(), frame)
        ticker = getattr(ex, store)[symbol]
    t = tick.normalise("binance", ticker, RECEIVED)
    assert t["symbol"] == symbol
    assert t["bid"] == q.bid and t["ask"] == q.ask
    assert t["time_source"] == source
    if has_last:
        assert t["price"] == q.last and t["last"] == q.last
        assert t["volume"] == q.volume
        assert t["time"] == pytest.approx(q.ts_ms / 1000)
    else:
        assert t["last"] is None and t["price"] == pytest.approx(q.mid, rel=1e-12)
        assert t["volume"] == 0.0 and t["time"] == RECEIVED
    assert tick.validate(t, now=RECEIVED, max_skew=10.0) is None


def test_normalise_coinbase_advanced_simulator_frame() -> None:
    """A Coinbase Advanced `ticker` frame (as the simulator speaks it) takes its time from the envelope."""
    venue = Coinbase()
    markets = venue.make_markets(3)
    venue.index(markets)
    symbol = markets[2]["symbol"]
    q = _sim_quote([m["symbol"] for m in markets], symbol)
    frame = json.loads(venue.encode(SimpleNamespace(state={}), "ticker", q))
    ticker = _ccxt_parse("coinbase", markets, frame, symbol)
    t = tick.normalise("coinbase", ticker, RECEIVED)
    assert (t["symbol"], t["price"], t["bid"], t["ask"], t["volume"]) == (symbol, q.last, q.bid, q.ask, q.volume)
    assert t["time"] == pytest.approx(q.ts_ms / 1000) and t["time_source"] == "exchange"
    assert t["percentage"] == pytest.approx(q.percentage)


# --- hand-written edge cases -----------------------------------------------------------------

def _ccxt(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"symbol": "BTC/USDT", "timestamp": 1_763_700_000_000, "bid": 99.0, "ask": 101.0,
                            "last": 100.0, "close": 100.0, "baseVolume": 12.5, "change": 1.0, "percentage": 1.01}
    base.update(fields)
    return base


NORMALISE_CASES = [
    ("last-wins-over-close", _ccxt(last=100.0, close=98.0), {"price": 100.0, "last": 100.0}),
    ("close-when-no-last", _ccxt(last=None, close=98.0), {"price": 98.0, "last": None}),
    ("mid-when-no-last-no-close", _ccxt(last=None, close=None, bid=99.0, ask=102.0), {"price": 100.5}),
    ("no-price-with-one-side-only", _ccxt(last=None, close=None, ask=None), {"price": None, "bid": 99.0}),
    ("no-price-at-all", _ccxt(last=None, close=None, bid=None, ask=None), {"price": None}),
    ("timestamp-ms-to-seconds", _ccxt(timestamp=1_763_699_999_500), {"time": 1_763_699_999.5,
                                                                      "time_source": "exchange"}),
    ("timestamp-none-uses-received", _ccxt(timestamp=None), {"time": RECEIVED, "time_source": "received"}),
    ("timestamp-missing-uses-received", {k: v for k, v in _ccxt().items() if k != "timestamp"},
     {"time": RECEIVED, "time_source": "received"}),
    ("timestamp-zero-uses-received", _ccxt(timestamp=0), {"time": RECEIVED, "time_source": "received"}),
    ("timestamp-bool-uses-received", _ccxt(timestamp=True), {"time": RECEIVED, "time_source": "received"}),
    ("timestamp-float-ms", _ccxt(timestamp=1_763_700_000_250.0), {"time": 1_763_700_000.25,
                                                                   "time_source": "exchange"}),
    ("volume-none-is-zero", _ccxt(baseVolume=None), {"volume": 0.0}),
    ("volume-kept", _ccxt(baseVolume=3.25), {"volume": 3.25}),
    ("change-nan-is-null", _ccxt(change=math.nan), {"change": None, "percentage": 1.01}),
    ("percentage-nan-is-null", _ccxt(percentage=math.nan), {"percentage": None, "change": 1.0}),
    ("change-inf-is-null", _ccxt(change=math.inf, percentage=-math.inf), {"change": None, "percentage": None}),
    ("numeric-strings-parsed", _ccxt(last="100.5", bid="100", ask="101"), {"price": 100.5, "bid": 100.0,
                                                                          "ask": 101.0}),
    ("int-prices-become-floats", _ccxt(last=100, bid=99, ask=101), {"price": 100.0, "bid": 99.0}),
    ("symbol-and-exchange", _ccxt(symbol="ETH/USDT:USDT"), {"symbol": "ETH/USDT:USDT", "exchange": "bybit"}),
]


@pytest.mark.parametrize(("ticker", "expected"), [c[1:] for c in NORMALISE_CASES],
                         ids=[c[0] for c in NORMALISE_CASES])
def test_normalise_edge_cases(ticker: dict[str, Any], expected: dict[str, Any]) -> None:
    """normalise applies the price fallback, time, volume and informational-field rules."""
    t = tick.normalise("bybit", ticker, RECEIVED)
    for key, want in expected.items():
        assert t[key] == want, (key, t[key], want)
        assert type(t[key]) is type(want), (key, type(t[key]))


def test_normalise_non_numeric_string_becomes_nan_and_is_rejected() -> None:
    """A non-numeric price string becomes NaN, which validate rejects as not_finite."""
    t = tick.normalise("binance", _ccxt(last="n/a"), RECEIVED)
    assert math.isnan(t["price"])
    assert tick.validate(t, now=RECEIVED, max_skew=10.0) == "not_finite"


def test_normalise_returns_exactly_the_documented_fields() -> None:
    """The internal tick has the fullon fields plus `time_source` and `close`; what is stored (merge)
    has exactly fullon's ten fields, in fullon's order."""
    t = tick.normalise("binance", _ccxt(), RECEIVED)
    assert set(t) == {*FULLON_FIELDS, "time_source", "close"}
    assert tuple(tick.merge("binance", "BTC/USDT", t, None)) == FULLON_FIELDS == tick.FULLON_FIELDS


# --- bid/ask quotes and the merge of two streams ------------------------------------------------
def _q(t: float, bid: float | None, ask: float | None) -> dict[str, Any]:
    return {"time": t, "bid": bid, "ask": ask, "time_source": "exchange"}


def _t(t: float, last: float | None = 100.0, bid: float | None = 99.0, ask: float | None = 101.0,
       close: float | None = None) -> dict[str, Any]:
    return {"symbol": "X/USDT", "exchange": "x", "price": last, "volume": 7.0, "time": t, "bid": bid, "ask": ask,
            "last": last, "change": 1.5, "percentage": 0.2, "time_source": "exchange", "close": close}


@pytest.mark.parametrize(("case", "t", "q", "want"), [
    ("ticker only", _t(10), None, {"price": 100.0, "bid": 99.0, "ask": 101.0, "time": 10, "volume": 7.0}),
    ("newer quote wins bid/ask, last stays", _t(10), _q(11, 99.5, 100.5),
     {"price": 100.0, "bid": 99.5, "ask": 100.5, "time": 11, "last": 100.0, "change": 1.5}),
    ("equal time: the quote", _t(10), _q(10, 99.5, 100.5), {"bid": 99.5, "ask": 100.5, "time": 10}),
    ("older quote loses to the ticker's own bid/ask", _t(10), _q(9, 99.5, 100.5),
     {"bid": 99.0, "ask": 101.0, "time": 10}),
    ("ticker without bid/ask (binance futures): the quote's, however old", _t(10, bid=None, ask=None),
     _q(3, 99.5, 100.5), {"bid": 99.5, "ask": 100.5, "time": 10, "price": 100.0}),
    ("no last: close", _t(10, last=None, close=98.0), _q(11, 99.5, 100.5), {"price": 98.0, "last": None}),
    ("no last or close: mid of the merged bid/ask", _t(10, last=None, bid=None, ask=None), _q(11, 99.0, 101.0),
     {"price": 100.0}),
    ("quote only", None, _q(5, 99.0, 101.0),
     {"price": 100.0, "volume": 0.0, "last": None, "change": None, "percentage": None, "time": 5}),
    ("one-sided quote only: no price invented", None, _q(5, 99.0, None), {"price": None, "bid": 99.0}),
])
def test_merge(case: str, t: dict[str, Any] | None, q: dict[str, Any] | None, want: dict[str, Any]) -> None:
    """last/volume/change from the ticker, bid/ask as a pair from the newer stream, time the newer."""
    got = tick.merge("x", "X/USDT", t, q)
    assert tuple(got) == FULLON_FIELDS and got["symbol"] == "X/USDT" and got["exchange"] == "x"
    assert {k: got[k] for k in want} == want


@pytest.mark.parametrize(("q", "reason"), [
    (_q(NOW_Q := 1_763_700_000.0, 99.0, 101.0), None),
    (_q(NOW_Q, 99.0, None), None),
    (_q(NOW_Q, None, None), "no_price"),
    (_q(NOW_Q, math.nan, 101.0), "not_finite"),
    (_q(NOW_Q, 0.0, 101.0), "not_positive"),
    (_q(NOW_Q, -1.0, 101.0), "not_positive"),
    (_q(NOW_Q, 102.0, 101.0), "crossed"),
    (_q(NOW_Q, 101.0, 101.0), None),
    (_q(NOW_Q + 11, 99.0, 101.0), "future"),
])
def test_validate_quote(q: dict[str, Any], reason: str | None) -> None:
    assert tick.validate_quote(q, NOW_Q, 10.0) == reason


def test_quote_takes_the_exchange_time_or_arrival() -> None:
    assert tick.quote({"bid": 1.0, "ask": "2", "timestamp": 5000}, RECEIVED) == \
        {"time": 5.0, "bid": 1.0, "ask": 2.0, "time_source": "exchange"}
    assert tick.quote({"bid": 1.0, "ask": None, "timestamp": None}, RECEIVED)["time"] == RECEIVED


# --- validate --------------------------------------------------------------------------------
NOW = 1_763_700_000.0


def _tick(**fields: Any) -> dict[str, Any]:
    base = {"symbol": "BTC/USDT", "exchange": "binance", "price": 100.0, "volume": 5.0, "time": NOW,
            "bid": 99.5, "ask": 100.5, "last": 100.0, "change": None, "percentage": None,
            "time_source": "exchange"}
    base.update(fields)
    return base


VALIDATE_CASES = [
    ("good", {}, None),
    ("good-without-bid-ask", {"bid": None, "ask": None}, None),
    ("good-without-last", {"last": None}, None),
    ("locked-bid-equals-ask", {"bid": 100.0, "ask": 100.0}, None),
    ("zero-volume", {"volume": 0.0}, None),
    ("old-time-accepted-older-is-the-workers-check", {"time": NOW - 3600}, None),
    ("time-within-skew", {"time": NOW + 9.9}, None),
    ("time-at-skew", {"time": NOW + 10.0}, None),
    ("no-price", {"price": None}, "no_price"),
    ("price-nan", {"price": math.nan, "last": None}, "not_finite"),
    ("price-inf", {"price": math.inf, "last": None}, "not_finite"),
    ("bid-nan", {"bid": math.nan}, "not_finite"),
    ("ask-neg-inf", {"ask": -math.inf}, "not_finite"),
    ("last-nan", {"last": math.nan}, "not_finite"),
    ("price-zero", {"price": 0.0, "last": None}, "not_positive"),
    ("price-negative", {"price": -1.0, "last": None}, "not_positive"),
    ("bid-zero", {"bid": 0.0}, "not_positive"),
    ("ask-negative", {"ask": -100.5}, "not_positive"),
    ("last-negative", {"last": -100.0}, "not_positive"),
    ("crossed", {"bid": 100.6, "ask": 100.5}, "crossed"),
    ("negative-volume", {"volume": -0.1}, "bad_volume"),
    ("nan-volume", {"volume": math.nan}, "bad_volume"),
    ("inf-volume", {"volume": math.inf}, "bad_volume"),
    ("future-beyond-skew", {"time": NOW + 10.001}, "future"),
    ("far-future", {"time": NOW + 86_400}, "future"),
]


@pytest.mark.parametrize(("fields", "reason"), [c[1:] for c in VALIDATE_CASES], ids=[c[0] for c in VALIDATE_CASES])
def test_validate(fields: dict[str, Any], reason: str | None) -> None:
    """validate returns None for a storable tick and the named rejection reason otherwise."""
    assert tick.validate(_tick(**fields), now=NOW, max_skew=10.0) == reason


def test_validate_reasons_are_health_counter_keys() -> None:
    """Every reason validate can return is one of tick.REASONS (the health record's counter keys)."""
    returned = {reason for _, _, reason in VALIDATE_CASES if reason}
    assert returned <= set(tick.REASONS)
    assert len(returned) == 6


def test_validate_max_skew_is_honoured() -> None:
    """A tick 5 s in the future passes with max_skew 10 and is rejected with max_skew 1."""
    t = _tick(time=NOW + 5)
    assert tick.validate(t, now=NOW, max_skew=10.0) is None
    assert tick.validate(t, now=NOW, max_skew=1.0) == "future"


def test_normalise_then_validate_mid_price_crossed_book() -> None:
    """A bid/ask-only ticker with a crossed book gets a mid price but is rejected as crossed."""
    t = tick.normalise("binance", _ccxt(last=None, close=None, bid=101.0, ask=100.0, timestamp=None), NOW)
    assert t["price"] == 100.5
    assert tick.validate(t, now=NOW, max_skew=10.0) == "crossed"

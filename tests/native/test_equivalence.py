"""The native decoders give, field for field, what ccxt 4.5.90 itself stores for the same frame.

Every frame goes through `tests.native.harness.Pair`: ccxt's `handle_message` on one exchange,
the decoder (plus ccxt for declined frames, as `install()` does) on a twin. Each decoded ticker
must equal ccxt's stored one exactly (float equality, None vs 0, int vs float), ccxt must store
nothing the decoder did not return, a frame ccxt raises on must be declined, and the two
exchanges' `tickers`/`bidsasks` must be identical after every frame.

Run with `-s` to see the per-venue/channel counts (they are also in the report of the lead).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import orjson
import pytest

from fullon_ticker_service.native import BinanceDecoder, BybitDecoder, OkxDecoder, build_decoder
from tests.native import frames as F
from tests.native.harness import Pair, StubClient, capture

SUMMARY: dict[str, Counter] = defaultdict(Counter)


# what a lean decoder (worker default) leaves out: ccxt's fields the fullon tick does not use
LEAN_OMITTED = {f"{stream}.{k}" for stream in ("ticker", "bidask") for k in (
    "info", "average", "vwap", "high", "low", "open", "bidVolume", "askVolume", "quoteVolume", "previousClose",
    "indexPrice", "markPrice")}
LEAN = pytest.mark.parametrize("lean", [False, True], ids=["full", "lean"])


def _check(pair: Pair, what: str, omitted_ok: set[str]) -> None:
    r = pair.report
    if pair.decoder.lean:
        omitted_ok = omitted_ok | LEAN_OMITTED
        what += " (lean)"
        SUMMARY[what]["lean"] += r.lean
    SUMMARY[what].update(frames=r.frames, decoded=r.decoded, declined=r.declined, ccxt_raised=r.ccxt_raised,
                         fields=r.compared_fields, **{f"ticks_{k}": v for k, v in r.ticks.items()})
    SUMMARY[what]["mismatches"] += len(r.mismatches)
    assert r.mismatches == [], r.mismatches[:10]
    assert r.omitted <= omitted_ok, r.omitted


def _print_summary() -> None:
    for what, c in sorted(SUMMARY.items()):
        print(f"  {what:38s} " + " ".join(f"{k}={v}" for k, v in sorted(c.items())))


# --- real captures -----------------------------------------------------------------------------
CAPTURE_NAMES = ["binance", "binanceus", "binanceusdm", "binancecoinm", "okx", "bybit"]


def _capture_url(name: str, entry: dict, meta: dict) -> str:
    if name == "bybit":
        return f"wss://stream.bybit.com/v5/public/{meta['ws']}"
    return entry["url_original"].split(" | ")[0]


@pytest.mark.parametrize("datetime,lean", [(True, False), (False, False), (False, True)],
                         ids=["with-datetime", "no-datetime", "lean"])
@pytest.mark.parametrize("name", CAPTURE_NAMES)
def test_captures_equal_ccxt(name, datetime, lean):
    """Every captured frame: as captured and, for Binance, unwrapped (what /ws sends). `lean`: the
    worker's decoder, whose tickers carry only the fields the fullon tick is made of."""
    entry, texts, meta = capture(name)
    pair = Pair(entry["ccxt_class"], entry["markets"], datetime=datetime, lean=lean)
    kinds: Counter = Counter()
    for text, m in zip(texts, meta, strict=True):
        client = StubClient(_capture_url(name, entry, m))
        variants = [text]
        if name.startswith("binance"):
            d = orjson.loads(text)
            if isinstance(d, dict) and "data" in d:
                variants.insert(0, orjson.dumps(d["data"]).decode())
        for v in variants:
            out = pair.feed(v, client, m["kind"])
            wrapped_array = v.startswith('{"stream":"!')  # ccxt ignores combined-stream arrays
            if m["kind"] in ("ticker", "bidask", "bbo") and not wrapped_array:
                assert out is not None, (m, v[:200])
                kinds[m["kind"]] += 1
            elif m["kind"] in ("ack", "info", "welcome", "heartbeat"):
                assert out is None, v
    _check(pair, f"capture {name}" + ("" if datetime else " (no datetime)"),
           set() if datetime else {"ticker.datetime", "bidask.datetime"})
    assert pair.report.decoded > 0


# --- simulator frames --------------------------------------------------------------------------
@LEAN
@pytest.mark.parametrize("venue", F.SIM_VENUES)
def test_simulator_frames_equal_ccxt(venue, lean):
    """The simulator's encoder (sim/venues/*.py), every channel and market kind, with NaN/negative/
    zero/crossed/older quotes mixed in; for Bybit each socket's snapshot + delta sequence."""
    markets, frames = F.sim_frames(venue)
    pair = Pair(venue, markets, lean=lean)
    per_channel: dict[str, Counter] = defaultdict(Counter)
    for channel, url, text in frames:
        before = pair.report.decoded
        pair.feed(text, StubClient(url), channel)
        per_channel[channel]["decoded" if pair.report.decoded > before else "declined"] += 1
    omitted = {"bidask.info"} if venue == "bybit" else set()
    _check(pair, f"simulator {venue}", omitted)
    assert pair.report.decoded > 0
    for channel, c in per_channel.items():
        SUMMARY[f"simulator {venue} {channel}"].update(c)
        # only quotes ccxt itself cannot parse (NaN in a Precise computation) are declined
        assert c["decoded"] > 0.8 * (c["decoded"] + c["declined"]), (channel, c)


# --- hand-made edge cases ----------------------------------------------------------------------
@LEAN
@pytest.mark.parametrize("venue", ["binance", "okx", "bybit"])
def test_edge_cases_equal_ccxt(venue, lean):
    """Missing fields, zero/empty strings, exponents, JSON numbers, NaN/inf, garbage, unknown and
    ambiguous market ids, Bybit deltas without bid/ask or state, level-1 book deltas, acks."""
    markets = F.EDGE_MARKETS[venue]
    pair = Pair(venue, markets, lean=lean)
    results = {}
    for label, url, text in F.EDGES[venue]():
        out = pair.feed(text, StubClient(url), label)
        results[label] = "decoded" if out is not None else "declined"
    _check(pair, f"edges {venue}", {"bidask.info"} if venue == "bybit" else set())
    decoded = [k for k, v in results.items() if v == "decoded"]
    SUMMARY[f"edges {venue}"]["labels_decoded"] += len(decoded)
    # the usual shapes must be decoded, not handed to ccxt
    must = {"binance": ["ticker plain", "ticker wrapped", "book", "book futures", "ticker inverse",
                        "ticker shared id spot url", "ticker shared id futures url", "ticker no bid/ask",
                        "mini ticker", "ticker array", "ticker exponents", "ticker numbers", "book zero bid"],
            "okx": ["tickers", "tickers swap", "bbo", "bbo swap", "tickers zero last", "tickers exponents",
                    "tickers two items", "bbo empty asks"],
            "bybit": ["snapshot linear (shared id)", "delta bid/ask only", "delta no bid/ask",
                      "delta before any snapshot", "snapshot spot (shared id)", "delta spot (usdIndexPrice)",
                      "book snapshot", "book snapshot again", "book spot url (shared id)",
                      "delta percentage zero", "delta after NaN"]}[venue]
    assert [k for k in must if results[k] != "decoded"] == []
    # what ccxt would not store the same way (or raises on) must be left to ccxt
    must_not = {"binance": ["ticker unknown symbol", "ticker NaN last", "mark price", "subscribe ack", "error",
                            "ticker array wrapped", "ticker C inf"],
                "okx": ["tickers unknown", "subscribe ack", "error", "bbo snapshot action", "tickers NaN last",
                        "tickers other instrument in data", "other channel"],
                "bybit": ["delta unknown symbol", "pong", "subscribe ack", "error", "book 50",
                          "book delta (replays snapshot)", "delta NaN last", "book snapshot NaN price"]}[venue]
    assert [k for k in must_not if results[k] != "declined"] == []


def test_bybit_prelude_replays_the_last_snapshot():
    """A level-1 delta is left to ccxt, after the last decoded snapshot of that symbol (ccxt's
    book never saw it); with the replay ccxt's bid/ask equals ccxt-alone's."""
    pair = Pair("bybit", F.EDGE_MARKETS["bybit"])
    client = StubClient(F.BYBIT_LINEAR_URL)
    ob = {"topic": "orderbook.1.ETHUSDT", "type": "snapshot", "ts": 1,
          "data": {"s": "ETHUSDT", "b": [["10", "1"]], "a": [["11", "1"]], "u": 1, "seq": 1}}
    pair.feed(F.dumps(ob), client)
    ob2 = {**ob, "ts": 2, "data": {**ob["data"], "b": [["10.5", "2"]], "a": [["10.9", "1"]]}}
    assert pair.feed(F.dumps(ob2), client) is not None
    delta = {**ob, "type": "delta", "ts": 3, "data": {"s": "ETHUSDT", "b": [["10.5", "0"]], "a": [], "u": 2}}
    assert pair.decoder._snapshots["ETH/USDT:USDT"] == orjson.loads(F.dumps(ob2))  # what prelude replays
    assert pair.feed(F.dumps(delta), client) is None
    assert pair.report.mismatches == []
    assert pair.mirror.bidsasks["ETH/USDT:USDT"]["bid"] is None  # the delta removed the only bid
    assert pair.mirror.bidsasks["ETH/USDT:USDT"]["ask"] == 10.9


def test_shared_channel_with_watch_order_book_is_left_to_ccxt():
    """OKX bbo-tbt and Bybit orderbook.1 frames go to ccxt when a watch_order_book uses them."""
    okx = build_decoder(_exchange("okx", F.EDGE_MARKETS["okx"]))
    frame = F.edge("okx", "bbo")
    assert okx.decode_raw(frame, StubClient(F.OKX_URL)) is not None
    assert okx.decode_raw(frame, StubClient(F.OKX_URL, {"bbo-tbt:BTC/USDT": {}})) is None
    bybit = build_decoder(_exchange("bybit", F.EDGE_MARKETS["bybit"]))
    book = F.dumps({"topic": "orderbook.1.ETHUSDT", "type": "snapshot", "ts": 1,
                    "data": {"s": "ETHUSDT", "b": [["1", "1"]], "a": [["2", "1"]]}})
    assert bybit.decode_raw(book, StubClient(F.BYBIT_LINEAR_URL)) is not None
    assert bybit.decode_raw(book, StubClient(F.BYBIT_LINEAR_URL, {"orderbook:ETH/USDT:USDT": {}})) is None


def _exchange(name, markets):
    import ccxt.pro as ccxtpro

    ex = getattr(ccxtpro, name)()
    ex.set_markets(markets)
    return ex


# --- fuzz --------------------------------------------------------------------------------------
FUZZ_KEYS = {
    "binance": ["c", "o", "p", "P", "w", "x", "b", "B", "a", "A", "h", "l", "v", "q", "C", "E", "s"],
    "okx": ["last", "open24h", "high24h", "low24h", "bidPx", "bidSz", "askPx", "askSz", "vol24h", "volCcy24h",
            "ts", "instType"],
    "bybit": ["lastPrice", "prevPrice24h", "price24hPcnt", "highPrice24h", "lowPrice24h", "bid1Price",
              "bid1Size", "ask1Price", "ask1Size", "volume24h", "turnover24h", "markPrice", "indexPrice",
              "openInterestValue", "symbol"],
}


@LEAN
@pytest.mark.parametrize("venue", ["binance", "okx", "bybit"])
def test_fuzzed_fields_equal_ccxt(venue, lean):
    """Seeded random damage (odd values, dropped keys) to the ticker fields of valid frames:
    either the decoder equals ccxt or it leaves the frame to ccxt - never a different value."""
    rng = random.Random(20240501)
    pair = Pair(venue, F.EDGE_MARKETS[venue], lean=lean)
    keys = FUZZ_KEYS[venue]
    if venue == "binance":
        base_t = orjson.loads(F.edge("binance", "ticker plain"))
        base_b = orjson.loads(F.edge("binance", "book"))
        urls = [F.BINANCE_SPOT_URL, F.BINANCE_USDM_URL]
        for i in range(1500):
            symbol = rng.choice(["ETHUSDT", "BTCUSDT", "BTCUSD_PERP", "SOLUSDT"])
            if i % 3 == 0:
                frame = F.mutate({**base_b, "s": symbol}, ["b", "B", "a", "A", "E", "s"], rng, rng.randint(1, 3))
            else:
                frame = F.mutate({**base_t, "s": symbol}, keys, rng, rng.randint(1, 4))
            pair.feed(F.dumps(frame), StubClient(rng.choice(urls)))
    elif venue == "okx":
        base = orjson.loads(F.edge("okx", "tickers"))
        for i in range(1500):
            inst = rng.choice(["BTC-USDT", "BTC-USDT-SWAP", "ETH-USD-SWAP", "XRP-USDT"])
            if i % 3 == 0:
                level = [rng.choice(F.ODD_VALUES + ("36232.2",) * 5), rng.choice(F.ODD_VALUES + ("1.5",) * 5)]
                data = {"asks": [level] if rng.random() < 0.8 else [], "bids": [["36232.1", "2"]],
                        "ts": rng.choice(["1651826598363", 1651826598363, "", None])}
                frame = {"arg": {"channel": "bbo-tbt", "instId": inst}, "data": [data]}
            else:
                item = F.mutate({**base["data"][0], "instId": inst}, keys, rng, rng.randint(1, 4))
                frame = {"arg": {"channel": "tickers", "instId": inst}, "data": [item]}
            pair.feed(F.dumps(frame), StubClient(F.OKX_URL))
    else:
        snap = orjson.loads(F.edge("bybit", "snapshot linear (shared id)"))
        for i in range(2000):
            sid = rng.choice(["BTCUSDT", "ETHUSDT", "BTCUSD", "SOLUSDT"])
            url = rng.choice([F.BYBIT_LINEAR_URL, F.BYBIT_SPOT_URL])
            r = rng.random()
            if r < 0.1:
                data = F.mutate({**snap["data"], "symbol": sid}, keys, rng, rng.randint(0, 3))
                frame = {"topic": f"tickers.{sid}", "type": "snapshot", "data": data, "ts": 1 + i}
            elif r < 0.8:
                pick = rng.sample(keys, rng.randint(1, 4))
                data = {k: rng.choice(F.ODD_VALUES + (snap["data"].get(k, "1"),) * 6) for k in pick}
                if rng.random() < 0.8:
                    data["symbol"] = sid
                frame = {"topic": f"tickers.{sid}", "type": "delta", "data": data,
                         "ts": rng.choice([2 + i, str(2 + i), None])}
            else:
                side = [[rng.choice(F.ODD_VALUES + ("100.5",) * 8), rng.choice(F.ODD_VALUES + ("1",) * 8)]
                        for _ in range(rng.choice([0, 1, 1, 1, 2]))]
                frame = {"topic": f"orderbook.1.{sid}", "type": rng.choice(["snapshot"] * 5 + ["delta"]),
                         "ts": 3 + i, "data": {"s": sid, "b": side, "a": [["101", "2"]], "u": i}}
            pair.feed(F.dumps(frame), StubClient(url))
    _check(pair, f"fuzz {venue}", {"bidask.info"} if venue == "bybit" else set())
    assert pair.report.decoded > 300


def test_usual_frames_take_the_fast_path(monkeypatch):
    """Simulator frames (the usual shape) never need the generic safe_ticker port."""
    import fullon_ticker_service.native.binance as nb
    import fullon_ticker_service.native.bybit as ny
    import fullon_ticker_service.native.okx as no

    def boom(*a, **k):
        raise AssertionError("generic path used")

    for mod in (nb, no, ny):
        monkeypatch.setattr(mod, "safe_ticker", boom)
    for venue in F.SIM_VENUES:
        channels = {"ticker", "bookTicker", "miniTicker", "tickers", "bbo-tbt", "orderbook.1"}
        markets, frames = F.sim_frames(venue, spoil_every=0, steps=60)
        decoder = build_decoder(_exchange(venue, markets))
        for channel, url, text in frames:
            if channel in channels:
                assert decoder.decode_raw(text, StubClient(url)) is not None, (venue, text)


def test_decoder_classes_and_never_raise():
    assert {c.__name__ for c in (BinanceDecoder, OkxDecoder, BybitDecoder)}
    for venue in ("binance", "okx", "bybit"):
        decoder = build_decoder(_exchange(venue, F.EDGE_MARKETS[venue]))
        for junk in (None, 1, "x", b"\xff", [], {}, [None], {"topic": None}, {"arg": 1, "data": 2},
                     {"e": "24hrTicker"}, {"topic": "tickers.X", "type": "delta", "data": 5}):
            assert decoder.decode(junk, None) is None
            assert decoder.decode(junk, object()) is None
        assert decoder.decode_raw("not json") is None
        assert decoder.decode_raw(b'{"a":') is None


def test_zz_print_summary(capsys):
    """(prints the per-suite counts when run with -s)"""
    with capsys.disabled():
        print()
        _print_summary()

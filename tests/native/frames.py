"""Frames for the equivalence tests: real captures, simulator frames and hand-made edge cases."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import orjson

from fullon_ticker_service.sim.model import BAD_KINDS, Walk, spoil
from fullon_ticker_service.sim.server import load_venue

BINANCE_SPOT_URL = "wss://stream.binance.com:9443/ws"
BINANCE_USDM_URL = "wss://fstream.binance.com/ws"
OKX_URL = "wss://ws.okx.com:8443/ws/v5/public"
BYBIT_LINEAR_URL = "wss://stream.bybit.com/v5/public/linear"
BYBIT_SPOT_URL = "wss://stream.bybit.com/v5/public/spot"

# The simulator's venues the decoders cover, and the channels each one encodes.
SIM_VENUES = ("binance", "binanceusdm", "binancecoinm", "okx", "bybit")
SIM_CHANNELS = {"binance": ("ticker", "bookTicker", "miniTicker"),
                "binanceusdm": ("ticker", "bookTicker", "miniTicker"),
                "binancecoinm": ("ticker", "bookTicker", "miniTicker"),
                "okx": ("tickers", "bbo-tbt"), "bybit": ("tickers", "orderbook.1")}


def sim_url(venue: Any, symbol: str) -> str:
    """The URL ccxt would be connected to for this symbol on the simulator (what ccxt's
    `is_spot_url` / Bybit's spot check look at)."""
    if venue.id == "okx":
        return "ws://127.0.0.1:1/okx/ws/v5/public"
    if venue.id == "bybit":
        category = getattr(venue, "category", {}).get(symbol, "linear")
        return f"ws://127.0.0.1:1/bybit/v5/public/{category}"
    return f"ws://127.0.0.1:1/{venue.id}/ws/0"


def sim_frames(venue_id: str, n_symbols: int = 8, steps: int = 480, seed: int = 7,
               spoil_every: int = 9) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """(markets, [(channel, url, frame)]): the simulator's own encoder over a seeded random walk,
    with every BAD_KINDS defect mixed in (one quote in `spoil_every`). Bybit tickers frames come
    from one simulated connection per socket: a snapshot per symbol, then deltas, as sent."""
    venue = load_venue(venue_id)
    markets = venue.make_markets(n_symbols)
    venue.index(markets)
    symbols = [m["symbol"] for m in markets]
    walk = Walk(symbols, seed)
    rng = random.Random(seed)
    conns: dict[str, Any] = {}
    out: list[tuple[str, str, str]] = []
    ts = 1_700_000_000_000
    for i in range(steps):
        symbol = symbols[i % len(symbols)]
        ts += rng.randint(0, 50)
        q = walk.step(symbol, ts)
        if spoil_every and i % spoil_every == spoil_every - 1:
            q = spoil(q, BAD_KINDS[(i // spoil_every) % len(BAD_KINDS)])
        url = sim_url(venue, symbol)
        conn = conns.setdefault(url, SimpleNamespace(state={}, path=url.split("/bybit")[-1]))
        for channel in SIM_CHANNELS[venue_id]:
            frame = venue.encode(conn, channel, q)  # type: ignore[arg-type]
            out.append((channel, url, frame if isinstance(frame, str) else frame.decode()))
    return markets, out


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


# --- hand-made edge cases ----------------------------------------------------------------------
# Each: (label, url, frame). Markets: EDGE_MARKETS[venue]. The harness compares with ccxt.

def _m(id: str, symbol: str, kind: str, **kw: Any) -> dict[str, Any]:
    base, rest = symbol.split("/")
    quote = rest.split(":")[0]
    settle = rest.split(":")[1].split("-")[0] if ":" in rest else None
    spot = kind == "spot"
    d = {"id": id, "symbol": symbol, "base": base, "quote": quote, "settle": settle, "baseId": base,
         "quoteId": quote, "settleId": settle, "type": kind, "spot": spot, "margin": False,
         "swap": kind == "swap", "future": kind == "future", "option": False, "contract": not spot,
         "linear": None if spot else settle == quote, "inverse": None if spot else settle != quote,
         "contractSize": None if spot else 1, "active": True,
         "precision": {"amount": 1e-8, "price": 1e-8}, "limits": {}, "info": {},
         "lowercaseId": id.lower()}
    d.update(kw)
    return d


EDGE_MARKETS = {
    "binance": [
        _m("BTCUSDT", "BTC/USDT", "spot", precision={"amount": 0.00001, "price": 0.01}),
        _m("BTCUSDT", "BTC/USDT:USDT", "swap", precision={"amount": 0.001, "price": 0.1}),
        _m("ETHUSDT", "ETH/USDT", "spot", precision={"amount": None, "price": None}),
        _m("SOLUSDT", "SOL/USDT:USDT", "swap", precision={"price": "0.0010"}),
        _m("BTCUSD_PERP", "BTC/USD:BTC", "swap", contractSize=100, precision={"price": "1e-1"}),
        _m("XRPUSDT", "XRP/USDT", "spot", precision={"price": 1e-05}),
        _m("DOGEUSDT", "DOGE/USDT", "spot", precision={"price": 1}),
    ],
    "okx": [
        _m("BTC-USDT", "BTC/USDT", "spot", precision={"price": 0.1}),
        _m("BTC-USDT-SWAP", "BTC/USDT:USDT", "swap", precision={"price": 0.1}, contractSize=0.01),
        _m("ETH-USD-SWAP", "ETH/USD:ETH", "swap", contractSize=10),
        _m("XRP-USDT", "XRP/USDT", "spot", precision={"price": 1e-05}),
    ],
    "bybit": [
        _m("BTCUSDT", "BTC/USDT", "spot", precision={"price": 0.01}),
        _m("BTCUSDT", "BTC/USDT:USDT", "swap", precision={"price": 0.1}),
        _m("ETHUSDT", "ETH/USDT:USDT", "swap", precision={"price": "0.01"}),
        _m("BTCUSD", "BTC/USD:BTC", "swap", precision={"price": 0.5}),
        _m("SOLUSDT", "SOL/USDT", "spot", precision={"price": None}),
    ],
}

_BN_TICKER = {"e": "24hrTicker", "E": 1653812650349, "s": "ETHUSDT", "p": "28.23000000", "P": "1.600",
              "w": "1781.16275609", "x": "1764.61000000", "c": "1792.84000000", "Q": "0.55720000",
              "b": "1792.83000000", "B": "1.62740000", "a": "1792.84000000", "A": "20.29140000",
              "o": "1764.61000000", "h": "1808.98000000", "l": "1748.94000000", "v": "471703.53110000",
              "q": "840180761.51358100", "O": 1653726250344, "C": 1653812650344, "F": 841094172,
              "L": 841646650, "n": 552479}
_BN_BOOK = {"u": 7488717758, "s": "ETHUSDT", "b": "28621.74000000", "B": "1.43278800",
            "a": "28621.75000000", "A": "2.52500800"}
_BN_FBOOK = {"e": "bookTicker", "u": 400900217, "E": 1568014460893, "T": 1568014460891, "s": "BTCUSD_PERP",
             "ps": "BTCUSD", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}
_BN_MINI = {"e": "24hrMiniTicker", "E": 1671617114585, "s": "ETHUSDT", "c": "0.95900000", "o": "0.91200000",
            "h": "1.04000000", "l": "0.89400000", "v": "2109995.32000000", "q": "2019254.05788000"}


def _with(d: dict[str, Any], **kw: Any) -> dict[str, Any]:
    out = dict(d)
    for k, v in kw.items():
        if v is _DROP:
            out.pop(k, None)
        else:
            out[k] = v
    return out


_DROP = object()


def binance_edges() -> list[tuple[str, str, str]]:
    S, F = BINANCE_SPOT_URL, BINANCE_USDM_URL
    t, b = _BN_TICKER, _BN_BOOK
    cases: list[tuple[str, str, Any]] = [
        ("ticker plain", S, t),
        ("ticker wrapped", S, {"stream": "ethusdt@ticker", "data": t}),
        ("ticker no bid/ask", S, _with(t, b=_DROP, B=_DROP, a=_DROP, A=_DROP)),
        ("ticker no change", S, _with(t, p=_DROP)),
        ("ticker no percentage", S, _with(t, P=_DROP)),
        ("ticker percentage 0.000", S, _with(t, P="0.000")),
        ("ticker change 0", S, _with(t, p="0.00000000")),
        ("ticker no open", S, _with(t, o=_DROP)),
        ("ticker open 0", S, _with(t, o="0")),
        ("ticker no open no change", S, _with(t, o=_DROP, p=_DROP)),
        ("ticker no close", S, _with(t, c=_DROP)),
        ("ticker close 0", S, _with(t, c="0.00000000")),
        ("ticker close empty", S, _with(t, c="")),
        ("ticker no vwap", S, _with(t, w=_DROP)),
        ("ticker no volumes", S, _with(t, v=_DROP, q=_DROP, w=_DROP)),
        ("ticker quote volume 0", S, _with(t, q="0", w=_DROP)),
        ("ticker base volume 0", S, _with(t, v="0", w=_DROP)),
        ("ticker exponents", S, _with(t, c="1.79284E+3", o="1764.61e0", b="1e-5", a="1E-5", h="2e3")),
        ("ticker exponent open/close only", S, _with(t, c="17.9284e2", o="1764.61E0")),
        ("ticker bid 0", S, _with(t, b="0", a="0.00000000")),
        ("ticker bid empty", S, _with(t, b="", B="")),
        ("ticker numbers", S, _with(t, c=1792.84, o=1764, p=28.84, P=1.6, b=0.1, B=0, v=12, q=3.5e-7)),
        ("ticker booleans", S, _with(t, b=True, B=False, h=None)),
        ("ticker nested", S, _with(t, h=[], l={})),
        ("ticker NaN last", S, _with(t, c="NaN")),
        ("ticker NaN high", S, _with(t, h="NaN", l="nan")),
        ("ticker inf bid", S, _with(t, b="Infinity", a="inf")),
        ("ticker garbage high", S, _with(t, h="abc")),
        ("ticker garbage close", S, _with(t, c="abc")),
        ("ticker negative", S, _with(t, c="-5", o="-4", p="-1", b="-1")),
        ("ticker no C (E)", S, _with(t, C=_DROP)),
        ("ticker C string", S, _with(t, C="1653812650344")),
        ("ticker C float string", S, _with(t, C="1653812650344.9")),
        ("ticker C empty", S, _with(t, C="")),
        ("ticker C garbage", S, _with(t, C="x")),
        ("ticker C inf", S, _with(t, C="inf")),
        ("ticker no C no E", S, _with(t, C=_DROP, E=_DROP)),
        ("ticker bidPrice fallback", S, _with(t, b=_DROP, bidPrice="1790.1", bidQty="3")),
        ("ticker price fallback", S, _with(t, c=_DROP, price="1790.5")),
        ("ticker symbol key", S, _with(t, s=_DROP, symbol="ETHUSDT")),
        ("ticker s number", S, _with(t, s=12)),
        ("ticker unknown symbol", S, _with(t, s="NOPEUSDT")),
        ("ticker shared id spot url", S, _with(t, s="BTCUSDT")),
        ("ticker shared id futures url", F, _with(t, s="BTCUSDT")),
        ("ticker unique swap on spot url", S, _with(t, s="SOLUSDT")),
        ("ticker precision 0.0010", F, _with(t, s="SOLUSDT")),
        ("ticker precision 1", S, _with(t, s="DOGEUSDT", o="0.1", c="0.3")),
        ("ticker precision 1e-05", S, _with(t, s="XRPUSDT", o="0.000013", c="0.000016")),
        ("ticker inverse", F, _with(t, s="BTCUSD_PERP", v="12229247", q="42252.54497257")),
        ("ticker inverse no vwap", F, _with(t, s="BTCUSD_PERP", w=_DROP)),
        ("ticker odd average", S, _with(t, o="0.00000001", c="0.00000002")),
        ("ticker with id", S, _with(t, id=5)),
        ("ticker with status", S, _with(t, status=200)),
        ("ticker array", S, [t, _with(t, s="BTCUSDT", c="30000.1", o="29000")]),
        ("ticker array mixed", S, [t, _BN_MINI]),
        ("ticker array first no e", S, [_with(t, e=_DROP), t]),
        ("ticker array wrapped", S, {"stream": "!ticker@arr", "data": [t]}),
        ("mini ticker", S, _BN_MINI),
        ("mini ticker zero open", S, _with(_BN_MINI, o="0")),
        ("mini ticker array", S, [_BN_MINI, _with(_BN_MINI, s="XRPUSDT")]),
        ("book", S, b),
        ("book wrapped", S, {"stream": "ethusdt@bookTicker", "data": b}),
        ("book zero bid", S, _with(b, b="0.00000000")),
        ("book empty ask", S, _with(b, a="")),
        ("book null ask", S, _with(b, a=None)),
        ("book exponent", S, _with(b, b="2.862174E+4", B="1e0")),
        ("book NaN", S, _with(b, b="NaN", a="-Infinity")),
        ("book numbers", S, _with(b, b=28621.74, B=1, a=28621.75)),
        ("book no sizes", S, _with(b, B=_DROP, A=_DROP)),
        ("book with E", S, _with(b, E=1568014460893)),
        ("book with time", S, _with(b, time="1568014460893")),
        ("book unknown", S, _with(b, s="NOPE")),
        ("book shared id spot url", S, _with(b, s="BTCUSDT")),
        ("book shared id futures url", F, _with(b, s="BTCUSDT")),
        ("book futures", F, _BN_FBOOK),
        ("book futures T only", F, _with(_BN_FBOOK, E=_DROP)),
        ("book with close", S, _with(b, c="28621.7")),
        ("book garbage bid", S, _with(b, b="abc")),
        ("mark price", F, {"e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15",
                           "i": "11784.62", "P": "11784.25", "r": "0.00038167", "T": 1562306400000}),
        ("subscribe ack", S, {"result": None, "id": 1}),
        ("error", S, {"error": {"code": 2, "msg": "Invalid request"}, "id": 3}),
        ("other event", S, {"e": "trade", "E": 1, "s": "ETHUSDT", "t": 1, "p": "1", "q": "1"}),
        ("empty dict", S, {}),
        ("empty list", S, []),
        ("list of numbers", S, [1, 2]),
    ]
    return [(label, url, dumps(frame)) for label, url, frame in cases]


_OKX_T = {"instType": "SPOT", "instId": "BTC-USDT", "last": "31500.1", "lastSz": "0.00001754",
          "askPx": "31500.1", "askSz": "0.00998144", "bidPx": "31500", "bidSz": "3.05652439",
          "open24h": "31697", "high24h": "32248", "low24h": "31165.6", "sodUtc0": "31385.5",
          "sodUtc8": "32134.9", "volCcy24h": "503403597.38138519", "vol24h": "15937.10781721",
          "ts": "1626526618762"}
_OKX_BBO = {"asks": [["36232.2", "1.8826134", "0", "17"]], "bids": [["36232.1", "0.00572212", "0", "2"]],
            "ts": "1651826598363", "seqId": 5}


def okx_edges() -> list[tuple[str, str, str]]:
    U = OKX_URL

    def tk(inst: str = "BTC-USDT", **kw: Any) -> dict[str, Any]:
        return {"arg": {"channel": "tickers", "instId": inst}, "data": [_with(_OKX_T, instId=inst, **kw)]}

    def bbo(inst: str = "BTC-USDT", data: Any = None) -> dict[str, Any]:
        return {"arg": {"channel": "bbo-tbt", "instId": inst}, "data": [data if data is not None else _OKX_BBO]}

    swap = dict(instType="SWAP")
    cases: list[tuple[str, str, Any]] = [
        ("tickers", U, tk()),
        ("tickers swap", U, tk("BTC-USDT-SWAP", **swap)),
        ("tickers inverse swap", U, tk("ETH-USD-SWAP", **swap)),
        ("tickers precision 1e-05", U, tk("XRP-USDT", last="0.51234", open24h="0.5")),
        ("tickers zero last", U, tk(last="0")),
        ("tickers zero open", U, tk(open24h="0")),
        ("tickers no open", U, tk(open24h=_DROP)),
        ("tickers no last", U, tk(last=_DROP)),
        ("tickers last empty", U, tk(last="")),
        ("tickers same open/last", U, tk(last="31697.0")),
        ("tickers no volume", U, tk(vol24h=_DROP)),
        ("tickers zero quote volume", U, tk(volCcy24h="0")),
        ("tickers zero base volume", U, tk(vol24h="0")),
        ("tickers exponents", U, tk(last="3.15001e4", open24h="31697E0", bidPx="1e-5")),
        ("tickers many decimals", U, tk(last="0.0000000000000000001", open24h="0.00000000000000000003")),
        ("tickers NaN last", U, tk(last="NaN")),
        ("tickers NaN bid", U, tk(bidPx="NaN")),
        ("tickers garbage high", U, tk(high24h="abc")),
        ("tickers numbers", U, tk(last=31500.1, open24h=31697, bidPx=31500, askSz=0)),
        ("tickers mark/index", U, tk(markPx="31501", idxPx="31499.5")),
        ("tickers ts number", U, tk(ts=1626526618762)),
        ("tickers ts missing", U, tk(ts=_DROP)),
        ("tickers ts garbage", U, tk(ts="soon")),
        ("tickers no instType", U, tk(instType=_DROP)),
        ("tickers no bid/ask", U, tk(bidPx=_DROP, askPx=_DROP, bidSz=_DROP, askSz=_DROP)),
        ("tickers two items", U, {"arg": {"channel": "tickers", "instId": "BTC-USDT"},
                                  "data": [_OKX_T, _with(_OKX_T, last="31600")]}),
        ("tickers empty data", U, {"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": []}),
        ("tickers other instrument in data", U, {"arg": {"channel": "tickers", "instId": "BTC-USDT"},
                                                 "data": [_with(_OKX_T, instId="XRP-USDT")]}),
        ("tickers no instId in data", U, {"arg": {"channel": "tickers", "instId": "BTC-USDT"},
                                          "data": [_with(_OKX_T, instId=_DROP)]}),
        ("tickers unknown", U, tk("NOPE-USDT")),
        ("tickers no instId", U, {"arg": {"channel": "tickers"}, "data": [_OKX_T]}),
        ("bbo", U, bbo()),
        ("bbo swap", U, bbo("BTC-USDT-SWAP")),
        ("bbo empty asks", U, bbo(data=_with(_OKX_BBO, asks=[]))),
        ("bbo no bids", U, bbo(data=_with(_OKX_BBO, bids=_DROP))),
        ("bbo zero bid", U, bbo(data=_with(_OKX_BBO, bids=[["0", "1", "0", "1"]]))),
        ("bbo exponent", U, bbo(data=_with(_OKX_BBO, bids=[["3.62321E4", "5e-3", "0", "2"]]))),
        ("bbo NaN", U, bbo(data=_with(_OKX_BBO, asks=[["NaN", "1", "0", "1"]]))),
        ("bbo numbers", U, bbo(data=_with(_OKX_BBO, asks=[[36232.2, 1, 0, 1]]))),
        ("bbo level too short", U, bbo(data=_with(_OKX_BBO, asks=[["36232.2"]]))),
        ("bbo with instId", U, bbo(data=_with(_OKX_BBO, instId="BTC-USDT"))),
        ("bbo with askPx", U, bbo(data=_with(_OKX_BBO, askPx="1", askSz="2"))),
        ("bbo ts missing", U, bbo(data=_with(_OKX_BBO, ts=_DROP))),
        ("bbo snapshot action", U, {**bbo(), "action": "snapshot"}),
        ("bbo unknown", U, bbo("NOPE-USDT")),
        ("subscribe ack", U, {"event": "subscribe", "arg": {"channel": "tickers", "instId": "BTC-USDT"},
                              "connId": "a4d3ae55"}),
        ("error", U, {"event": "error", "code": "60018", "msg": "doesn't exist", "connId": "a4d3ae55"}),
        ("code 0", U, {**tk(), "code": "0"}),
        ("other channel", U, {"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [{"px": "1"}]}),
        ("mark-price channel", U, {"arg": {"channel": "mark-price", "instId": "BTC-USDT-SWAP"},
                                   "data": [{"instType": "SWAP", "instId": "BTC-USDT-SWAP", "markPx": "1",
                                             "ts": "1"}]}),
        ("empty dict", U, {}),
        ("list", U, [1]),
    ]
    return [(label, url, dumps(frame)) for label, url, frame in cases]


_BY_SNAP = {"symbol": "BTCUSDT", "tickDirection": "ZeroMinusTick", "price24hPcnt": "0.023333",
            "lastPrice": "28550.70", "prevPrice24h": "27899.70", "highPrice24h": "28797.10",
            "lowPrice24h": "27842.80", "prevPrice1h": "28474.70", "markPrice": "28552.81",
            "indexPrice": "28562.25", "openInterest": "52774.528", "openInterestValue": "1506861070.82",
            "turnover24h": "4273027716.4294", "volume24h": "151185.5160", "nextFundingTime": "1680681600000",
            "fundingRate": "0.0001", "bid1Price": "28550.70", "bid1Size": "2.049", "ask1Price": "28550.80",
            "ask1Size": "15.328"}
_BY_SPOT = {"symbol": "BTCUSDT", "lastPrice": "21109.77", "highPrice24h": "21426.99", "lowPrice24h": "20575",
            "prevPrice24h": "20704.93", "volume24h": "6780.866843", "turnover24h": "141946527.22907118",
            "price24hPcnt": "0.0196", "usdIndexPrice": "21120.2400136"}


def bybit_edges() -> list[tuple[str, str, str]]:
    """A sequence (order matters: deltas merge into what came before)."""
    L, SP = BYBIT_LINEAR_URL, BYBIT_SPOT_URL

    def tk(kind: str, data: dict[str, Any], topic: str = "tickers.BTCUSDT", ts: Any = 1680673821770) -> dict[str, Any]:
        return {"topic": topic, "type": kind, "data": data, "cs": 1, "ts": ts}

    def ob(kind: str, s: str = "BTCUSDT", b: Any = None, a: Any = None, ts: Any = 1672304484978,
           topic: str | None = None) -> dict[str, Any]:
        data = {"s": s, "b": [["16493.50", "0.006"]] if b is None else b,
                "a": [["16611.00", "0.029"]] if a is None else a, "u": 1, "seq": 2}
        return {"topic": topic or f"orderbook.1.{s}", "type": kind, "ts": ts, "data": data, "cts": 1}

    eth = _with(_BY_SNAP, symbol="ETHUSDT")
    cases: list[tuple[str, str, Any]] = [
        ("delta before any snapshot", L, tk("delta", {"symbol": "ETHUSDT", "bid1Price": "1800.5"},
                                           "tickers.ETHUSDT")),
        ("delta after partial state", L, tk("delta", {"symbol": "ETHUSDT", "lastPrice": "1801"},
                                            "tickers.ETHUSDT")),
        ("snapshot linear (shared id)", L, tk("snapshot", _BY_SNAP)),
        ("delta bid/ask only", L, tk("delta", {"symbol": "BTCUSDT", "bid1Price": "28551.10", "bid1Size": "1",
                                              "ask1Price": "28551.20", "ask1Size": "2"})),
        ("delta no bid/ask", L, tk("delta", {"symbol": "BTCUSDT", "lastPrice": "28560.1",
                                            "price24hPcnt": "0.0237", "turnover24h": "4273027717"})),
        ("delta only openInterest", L, tk("delta", {"symbol": "BTCUSDT", "openInterest": "52775"})),
        ("delta no symbol in data", L, tk("delta", {"lastPrice": "28570"})),
        ("delta percentage zero", L, tk("delta", {"symbol": "BTCUSDT", "price24hPcnt": "0"})),
        ("delta percentage empty", L, tk("delta", {"symbol": "BTCUSDT", "price24hPcnt": ""})),
        ("delta percentage exponent", L, tk("delta", {"symbol": "BTCUSDT", "price24hPcnt": "2.3e-2"})),
        ("delta bid zero", L, tk("delta", {"symbol": "BTCUSDT", "bid1Price": "0", "bid1Size": "0"})),
        ("delta bid empty", L, tk("delta", {"symbol": "BTCUSDT", "bid1Price": "", "bid1Size": ""})),
        ("delta last exponent", L, tk("delta", {"symbol": "BTCUSDT", "lastPrice": "2.85601E4"})),
        ("delta open zero", L, tk("delta", {"symbol": "BTCUSDT", "prevPrice24h": "0"})),
        ("delta open restored", L, tk("delta", {"symbol": "BTCUSDT", "prevPrice24h": "27899.70"})),
        ("delta volume zero", L, tk("delta", {"symbol": "BTCUSDT", "volume24h": "0"})),
        ("delta turnover zero", L, tk("delta", {"symbol": "BTCUSDT", "volume24h": "1", "turnover24h": "0"})),
        ("delta numbers", L, tk("delta", {"symbol": "BTCUSDT", "lastPrice": 28561.5, "bid1Price": 28561})),
        ("delta bidSize key", L, tk("delta", {"symbol": "BTCUSDT", "bidSize": "7"})),
        ("delta NaN last", L, tk("delta", {"symbol": "BTCUSDT", "lastPrice": "NaN"})),
        ("delta after NaN", L, tk("delta", {"symbol": "BTCUSDT", "lastPrice": "28562"})),
        ("delta NaN bid", L, tk("delta", {"symbol": "BTCUSDT", "bid1Price": "NaN"})),
        ("delta garbage pct", L, tk("delta", {"symbol": "BTCUSDT", "price24hPcnt": "x"})),
        ("delta after garbage", L, tk("delta", {"symbol": "BTCUSDT", "price24hPcnt": "0.02"})),
        ("delta ts string", L, tk("delta", {"symbol": "BTCUSDT", "lastPrice": "28563"}, ts="1680673821999")),
        ("delta ts missing", L, {"topic": "tickers.BTCUSDT", "type": "delta", "data": {"lastPrice": "28564"}}),
        ("delta unknown symbol", L, tk("delta", {"symbol": "NOPEUSDT", "lastPrice": "1"}, "tickers.NOPEUSDT")),
        ("snapshot unknown symbol", L, tk("snapshot", _with(_BY_SNAP, symbol="NOPEUSDT"), "tickers.NOPEUSDT")),
        ("snapshot no symbol", L, tk("snapshot", _with(_BY_SNAP, symbol=_DROP))),
        ("snapshot spot (shared id)", SP, tk("snapshot", _BY_SPOT)),
        ("delta spot (usdIndexPrice)", SP, tk("delta", {"symbol": "BTCUSDT", "lastPrice": "21110",
                                                        "usdIndexPrice": "21121"})),
        ("delta spot without usdIndexPrice", SP, tk("delta", {"symbol": "BTCUSDT", "lastPrice": "21111"})),
        ("snapshot unique spot", SP, tk("snapshot", _with(_BY_SPOT, symbol="SOLUSDT"), "tickers.SOLUSDT")),
        ("snapshot eth", L, tk("snapshot", eth, "tickers.ETHUSDT")),
        ("delta eth", L, tk("delta", {"symbol": "ETHUSDT", "lastPrice": "1802.5"}, "tickers.ETHUSDT")),
        ("snapshot inverse", L, tk("snapshot", _with(_BY_SNAP, symbol="BTCUSD"), "tickers.BTCUSD")),
        ("snapshot no prevPrice24h", L, tk("snapshot", _with(eth, prevPrice24h=_DROP), "tickers.ETHUSDT")),
        ("snapshot no pct", L, tk("snapshot", _with(eth, price24hPcnt=_DROP), "tickers.ETHUSDT")),
        ("snapshot empty strings", L, tk("snapshot", _with(eth, nextFundingTime="", fundingRate="",
                                                           bid1Price=""), "tickers.ETHUSDT")),
        ("snapshot with time", L, tk("snapshot", _with(eth, time="1680673821000"), "tickers.ETHUSDT")),
        ("tickers unknown type", L, tk("update", _BY_SNAP)),
        ("tickers data list", L, {"topic": "tickers.BTCUSDT", "type": "snapshot", "data": [_BY_SNAP], "ts": 1}),
        ("tickers_lt topic", L, tk("snapshot", _BY_SNAP, "tickers_lt.BTCUSDT")),
        ("book snapshot", L, ob("snapshot")),
        ("book snapshot eth", L, ob("snapshot", "ETHUSDT", [["1800.1", "3"]], [["1800.2", "4"]])),
        ("book delta (replays snapshot)", L, ob("delta", b=[["16493.60", "1"]], a=[])),
        ("book delta remove level", L, ob("delta", b=[["16493.50", "0"]], a=[])),
        ("book snapshot again", L, ob("snapshot", b=[["16494", "1"]], a=[["16600", "2"]])),
        ("book snapshot empty sides", L, ob("snapshot", b=[], a=[])),
        ("book snapshot zero size", L, ob("snapshot", b=[["16494", "0"]], a=[["16600", "0.000"]])),
        ("book snapshot zero price", L, ob("snapshot", b=[["0", "1"]], a=[["16600", "1"]])),
        ("book snapshot two levels", L, ob("snapshot", b=[["16494", "1"], ["16493", "2"]],
                                           a=[["16600", "1"], ["16601", "2"]])),
        ("book snapshot duplicate level", L, ob("snapshot", b=[["16494", "1"], ["16494", "0"]],
                                                a=[["16600", "1"], ["16600", "3"]])),
        ("book snapshot NaN size", L, ob("snapshot", b=[["16494", "NaN"]])),
        ("book snapshot negative size", L, ob("snapshot", b=[["16494", "-1"]])),
        ("book snapshot NaN price", L, ob("snapshot", b=[["NaN", "1"]])),
        ("book snapshot exponent", L, ob("snapshot", b=[["1.6494E4", "1e-3"]])),
        ("book snapshot numbers", L, ob("snapshot", b=[[16494.5, 1]])),
        ("book snapshot garbage price", L, ob("snapshot", b=[["x", "1"]])),
        ("book snapshot 3-item level", L, ob("snapshot", b=[["16494", "1", "7"]])),
        ("book snapshot ts string", L, ob("snapshot", ts="1672304484999")),
        ("book snapshot after garbage", L, ob("snapshot")),
        ("book spot url (shared id)", SP, ob("snapshot", b=[["16495", "1"]])),
        ("book unique spot", SP, ob("snapshot", "SOLUSDT", [["20", "1"]], [["21", "1"]])),
        ("book unknown", L, ob("snapshot", "NOPEUSDT")),
        ("book no s", L, {"topic": "orderbook.1.BTCUSDT", "type": "snapshot", "ts": 1, "data": {"b": [], "a": []}}),
        ("book 50", L, ob("snapshot", topic="orderbook.50.BTCUSDT")),
        ("pong", L, {"success": True, "ret_msg": "pong", "conn_id": "x", "req_id": "1", "op": "ping"}),
        ("subscribe ack", L, {"success": True, "ret_msg": "", "conn_id": "x", "req_id": "2", "op": "subscribe"}),
        ("error", L, {"success": False, "ret_msg": "error:invalid op", "conn_id": "x"}),
        ("trade", L, {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1, "data": []}),
        ("empty dict", L, {}),
    ]
    return [(label, url, dumps(frame)) for label, url, frame in cases]


EDGES = {"binance": binance_edges, "okx": okx_edges, "bybit": bybit_edges}

# --- fuzz --------------------------------------------------------------------------------------
ODD_VALUES: tuple[Any, ...] = ("", "0", "0.0", "-0", "00.100", "1e-5", "1E+3", "-1", "NaN", "inf", "abc",
                               "1.2.3", " 5 ", "1_000", None, 0, 1, 1.5, -2.0, 1e-7, True, False, [], {})


def mutate(obj: dict[str, Any], keys: list[str], rng: random.Random, n: int = 2) -> dict[str, Any]:
    """Replace or drop `n` of `keys` in a copy of obj."""
    out = dict(obj)
    for k in rng.sample(keys, min(n, len(keys))):
        if rng.random() < 0.2:
            out.pop(k, None)
        else:
            out[k] = rng.choice(ODD_VALUES)
    return out


def edge(venue: str, label: str) -> str:
    """The text of one edge-case frame, by label."""
    for lbl, _url, text in EDGES[venue]():
        if lbl == label:
            return text
    raise KeyError(label)

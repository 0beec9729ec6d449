"""Kraken Futures websocket v1 (wss://futures.kraken.com/ws/v1), as ccxt.pro 4.5.90 speaks it.

Markets (ids as Kraken lists them; BTC is XBT there):
    PF_XBTUSD          `BTC/USD:USD`         linear (multi-collateral) perpetual
    PI_XBTUSD          `BTC/USD:BTC`         inverse perpetual (contracts of 1 USD)
    FI_XBTUSD_281229   `BTC/USD:BTC-281229`  inverse future
    FF_XBTUSD_281229   `BTC/USD:USD-281229`  linear future
ccxt refuses to mix futures and perpetuals in one watch call ("symbols must be of the same type").

Client: {"event":"subscribe"|"unsubscribe","feed":"ticker"|"ticker_lite","product_ids":["PI_XBTUSD",..]}
Server: on connect {"event":"info","version":1}; then one ack per product id
{"event":"subscribed","feed":"ticker","product_ids":["PI_XBTUSD"]} (unsubscribed likewise) followed
by that product's current ticker; an unknown product gets {"event":"error","message":"Invalid
product id"} (ccxt ignores it); a second subscribe to the same feed and product gets {"event":
"alert","message":"Already subscribed to feed, re-requesting"} (ccxt treats it as benign) and the
ticker again. ccxt keeps the socket alive with websocket pings (answered by the server).
Feeds (JSON numbers; a non-finite price goes out as null, as serialisers emit it):
- `ticker` (ccxt's watch_ticker/watch_tickers): bid, ask, sizes, last, volume, change, mark/index,
  funding fields for perpetuals, maturity for futures, and `time` (ms) — but ccxt reads a
  `lastTime` field these frames do not have, so its timestamp is None.
- `ticker_lite` (ccxt's watch_bids_asks): bid, ask, change, premium, volume; no last, no time.
`volume` is in contracts: base units on linear markets, USD (= base volume x price) on inverse
ones; ccxt reports it as baseVolume either way.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from fullon_ticker_service.sim.model import Quote
from fullon_ticker_service.sim.venues.base import Conn, Venue, bases, interleave, market

FEEDS = ("ticker", "ticker_lite")
EXPIRY = "281229"
EXPIRY_MS = 1_861_689_600_000  # 2028-12-29T00:00:00Z, in the frames' maturityTime
KRAKEN_BASE = {"BTC": "XBT"}


def _num(x: float) -> str:
    """A JSON number (plain decimal); `null` when it is not finite."""
    if not math.isfinite(x):
        return "null"
    s = f"{x:.8f}".rstrip("0")
    return s + "0" if s[-1] == "." else s


def _kind(m: dict[str, Any]) -> str:
    return m["id"][:2]  # PF, PI, FI, FF


class KrakenFutures(Venue):
    id = "krakenfutures"
    quote_ccy = "USD"

    def make_markets(self, n: int) -> list[dict[str, Any]]:
        """Linear perpetuals for every base, with inverse perpetuals and BTC/ETH futures spread
        in: PF_XBTUSD, PI_XBTUSD, PF_ETHUSD, FI_XBTUSD_281229, PF_SOLUSD, PI_ETHUSD, PF_XRPUSD,
        FF_XBTUSD_281229, ..."""
        def pf(b: str) -> dict[str, Any]:
            kb = KRAKEN_BASE.get(b, b)
            return market(f"PF_{kb}USD", b, "USD", kind="swap", base_id=kb)

        def pi(b: str) -> dict[str, Any]:
            kb = KRAKEN_BASE.get(b, b)
            return market(f"PI_{kb}USD", b, "USD", kind="swap", settle=b, base_id=kb)

        def fut(prefix: str, b: str) -> dict[str, Any]:
            kb = KRAKEN_BASE.get(b, b)
            return market(f"{prefix}_{kb}USD_{EXPIRY}", b, "USD", kind="future", expiry=EXPIRY,
                          settle=b if prefix == "FI" else "USD", base_id=kb)

        extras = [pi("BTC"), fut("FI", "BTC"), pi("ETH"), fut("FF", "BTC"), pi("XRP"), fut("FI", "ETH"),
                  pi("LTC"), fut("FF", "ETH"), pi("BCH")]
        return interleave([pf(b) for b in bases(n)], extras)[:n]

    def ccxt_config(self, http_base: str, ws_base: str) -> dict[str, Any]:
        return {"urls": {"api": {"ws": f"{ws_base}/ws/v1"}, "test": {"ws": f"{ws_base}/ws/v1"}}}

    async def on_open(self, conn: Conn) -> None:
        await conn.send('{"event":"info","version":1}')

    async def on_text(self, conn: Conn, text: str) -> None:
        try:
            req = orjson.loads(text)
            event, feed = req["event"], req.get("feed")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await conn.send('{"event":"error","message":"Json Error"}')
            return
        if event == "ping":
            await conn.send('{"event":"pong"}')
            return
        if event not in ("subscribe", "unsubscribe"):
            await conn.send('{"event":"error","message":"Invalid event"}')
            return
        if feed not in FEEDS:
            await conn.send('{"event":"error","message":"Invalid feed"}')
            return
        ids = req.get("product_ids")
        if not isinstance(ids, list) or not ids:
            await conn.send('{"event":"error","message":"Invalid product id"}')
            return
        done = "subscribed" if event == "subscribe" else "unsubscribed"
        for pid in ids:
            m = self.by_id.get(pid) if isinstance(pid, str) else None
            if m is None:
                await conn.send('{"event":"error","message":"Invalid product id"}')
                continue
            symbol = m["symbol"]
            if event == "unsubscribe":
                conn.unsubscribe(feed, symbol)
                await conn.send(orjson.dumps({"event": done, "feed": feed, "product_ids": [pid]}).decode())
                continue
            if (feed, symbol) in conn.subs:
                await conn.send('{"event":"alert","message":"Already subscribed to feed, re-requesting"}')
                if not conn.exchange.silent(symbol):
                    await conn.send(self.encode(conn, feed, conn.exchange.current(symbol)))
                continue
            await conn.send(orjson.dumps({"event": done, "feed": feed, "product_ids": [pid]}).decode())
            await conn.subscribe(feed, symbol)

    def encode(self, conn: Conn, channel: str, q: Quote) -> str:
        m = self.by_symbol[q.symbol]
        kind = _kind(m)
        pid = m["id"]
        pair = f"{m['baseId']}:USD"
        perpetual = kind in ("PF", "PI")
        tag = "perpetual" if perpetual else "quarter"
        dtm = 0 if perpetual else max(0, (EXPIRY_MS - q.ts_ms) // 86_400_000)
        maturity = 0 if perpetual else EXPIRY_MS
        # volume in contracts: base units (linear) or USD (inverse, contracts of 1 USD)
        volume = round(q.quote_volume) if m["inverse"] and math.isfinite(q.quote_volume) else q.volume
        change = q.percentage
        premium = 0.1 if not perpetual else 0.0
        if channel == "ticker_lite":
            return (f'{{"feed":"ticker_lite","product_id":"{pid}","bid":{_num(q.bid)},"ask":{_num(q.ask)},'
                    f'"change":{_num(change)},"premium":{premium},"volume":{_num(volume)},"tag":"{tag}",'
                    f'"pair":"{pair}","dtm":{dtm},"maturityTime":{maturity},'
                    f'"volumeQuote":{_num(q.quote_volume)}}}')
        funding = ('"funding_rate":3.216424e-12,"funding_rate_prediction":-8.63581351e-10,'
                   '"relative_funding_rate":9.6321875e-8,"relative_funding_rate_prediction":-0.000025847309375,'
                   f'"next_funding_rate_time":{(q.ts_ms // 3_600_000 + 1) * 3_600_000},') if perpetual else ""
        return (f'{{"time":{q.ts_ms},"product_id":"{pid}",{funding}"feed":"ticker","bid":{_num(q.bid)},'
                f'"ask":{_num(q.ask)},"bid_size":8400.0,"ask_size":10000.0,"volume":{_num(volume)},'
                f'"dtm":{dtm},"leverage":"50x","index":{_num(q.mid)},"premium":{premium},"last":{_num(q.last)},'
                f'"change":{_num(change)},"suspended":false,"tag":"{tag}","pair":"{pair}",'
                f'"openInterest":43967525.0,"markPrice":{_num(q.mid)},"maturityTime":{maturity},'
                f'"post_only":false,"volumeQuote":{_num(q.quote_volume)}}}')


VENUE_CLASS = KrakenFutures

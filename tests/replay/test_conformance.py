"""Real data, real service: the captured frames of 16 venues replayed to the real `tickerctl up`.

One supervisor collects every venue from the replay server (ccxt connects with only the manifest's
URL overrides; markets are the manifest's, served over HTTP like a snapshot). For every catalog
entry, every symbol that has a ticker or bid/ask frame on the channels that entry subscribes must
be in Redis (`tickers:{entry}`) with the values ccxt itself parses from those frames, passed through
the service's documented rules (tick.normalise / quote / merge: each stream never older, bid/ask
from the newer stream). A symbol whose frames give no usable price at all may be absent.

Several venues publish the same data on more than one ticker channel (binance `ticker` vs ccxt's
default `miniTicker`, kucoin `/market/ticker` vs `/market/snapshot`, htx `detail` vs `bbo`); the
captures hold some symbols on one channel only, so those channels run as extra catalog entries
configured the way a user would (`channel`, `method`, ccxt `options`).
"""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fullon_ticker_service import tick
from fullon_ticker_service.sim.demo import toml_value
from tests.conftest import SHARED_REDIS_HOST, SHARED_REDIS_PORT, TEST_REDIS_DB
from tests.replay.captures import CAPTURES_DIR, VENUES
from tests.replay.expected import expected
from tests.replay.server import ReplayServer
from tests.supervisor.helpers import tickerctl

pytestmark = pytest.mark.skipif(not (CAPTURES_DIR / "manifest.json").exists(),
                                reason=f"captures not found in {CAPTURES_DIR}")

MINI = {"streams": ["ticker"], "channel": "miniTicker"}
# catalog entry -> (venue, the replay channels its subscriptions receive (None: all), exchange config)
ENTRIES: dict[str, tuple[str, set[str] | None, dict[str, Any]]] = {
    "binance": ("binance", {"ticker", "bookTicker"}, {}),
    "binance_mini": ("binance", {"miniTicker"}, MINI),
    "binanceusdm": ("binanceusdm", {"ticker", "bookTicker"}, {}),
    "binanceusdm_mini": ("binanceusdm", {"miniTicker"}, MINI),
    "binancecoinm": ("binancecoinm", {"ticker", "bookTicker"}, {}),
    "binancecoinm_mini": ("binancecoinm", {"miniTicker"}, MINI),
    "binanceus": ("binanceus", {"ticker", "bookTicker"}, {}),
    "bitfinex": ("bitfinex", None, {}),
    "coinbaseexchange": ("coinbaseexchange", None, {}),
    "deribit": ("deribit", None, {}),
    "gate": ("gate", None, {}),
    "kucoin": ("kucoin", {"ticker"}, {}),
    "kucoin_snapshot": ("kucoin", {"snapshot"}, {"streams": ["ticker"], "method": "watch_ticker"}),
    "okx": ("okx", None, {}),
    "htx": ("htx", {"detail"}, {}),
    "htx_bbo": ("htx", {"bbo"}, {"ccxt": {"options": {"watchTicker": {"name": "market.{marketId}.bbo"}}}}),
    "hitbtc": ("hitbtc", None, {}),
    "krakenfutures": ("krakenfutures", None, {}),
    "kraken": ("kraken", None, {}),
    "bybit": ("bybit", None, {}),
    "hyperliquid": ("hyperliquid", None, {}),
}
FIELDS = ("price", "bid", "ask", "last", "volume", "change", "percentage")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_config(path: Path, srv: ReplayServer) -> Path:
    lines = ["[service]", 'namespace = "replay"', "health_interval = 1.0", "",
             "[redis]", f'host = "{SHARED_REDIS_HOST}"', f"port = {SHARED_REDIS_PORT}", f"db = {TEST_REDIS_DB}", "",
             "[supervisor]", "restart_base = 0.3", "start_grace = 30.0", "stop_timeout = 5.0", "",
             "[defaults]", "stale_after = 120.0", "symbol_stale_after = 0", "reconnect_delay = 0.2",
             "reconnect_max_delay = 1.0", ""]
    for name, (venue, _, extra) in ENTRIES.items():
        extra = dict(extra)
        ccxt_cfg = _merge(srv.ccxt_config(venue), extra.pop("ccxt", {}))
        lines += [f"[exchanges.{name}]", f'ccxt_id = "{srv.ccxt_class(venue)}"',
                  f"symbols = {toml_value(sorted(m['symbol'] for m in srv.markets(venue)))}",
                  f'markets = "{srv.markets_url(venue)}"', f"ccxt = {toml_value(ccxt_cfg)}"]
        lines += [f"{k} = {toml_value(v)}" for k, v in extra.items()] + [""]
    path.write_text("\n".join(lines))
    return path


def _pick(name: str, seq: list[dict[str, Any]], parse: Any, check: Any, base: float) -> dict[str, Any] | None:
    """The part of a stream the intake keeps: valid updates, each not older than the kept one.
    Frames without an exchange time get their arrival time, which is after every shifted frame."""
    kept = None
    for i, d in enumerate(seq):
        x = parse(d, base + i * 1e-6)
        if check(x, math.inf, math.inf) is None and (kept is None or x["time"] >= kept["time"]):
            kept = x
    return kept


def want_of(entry: str, srv: ReplayServer) -> dict[str, tuple[dict[str, Any], bool]]:
    """symbol -> (the tick the service must store, whether its bid/ask may come from either stream)."""
    venue, channels, _ = ENTRIES[entry]
    out = {}
    base = srv.now_ms / 1000 + 1.0
    for symbol, books in expected(venue, now_ms=srv.now_ms, channels=channels,
                                  socket_urls=srv.socket_urls(venue)).items():
        t = _pick(entry, books.get("ticker", []), lambda d, r: tick.normalise(entry, d, r),
                  lambda x, n, s: tick.validate(x, n, s), base)
        q = _pick(entry, books.get("bidask", []), tick.quote, tick.validate_quote, base)
        if t is None and q is None:
            continue
        merged = tick.merge(entry, symbol, t, q)
        if merged["price"] is None:
            continue  # no usable price in any frame: may be absent (the worker logs no_price)
        # both parts timed by arrival: which stream arrived last decides bid/ask
        either = t is not None and q is not None and "received" in (t["time_source"], q["time_source"])
        exact_time = all(p is None or p["time_source"] == "exchange" for p in (t, q))
        out[symbol] = ({**merged, "_t": t, "_q": q, "_exact_time": exact_time}, either)
    return out


def _equal(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-12))


def mismatches(entry: str, stored: dict[str, dict[str, Any]], want: dict[str, tuple[dict[str, Any], bool]]) -> list:
    out = []
    for symbol, (w, either) in want.items():
        got = stored.get(symbol)
        if got is None:
            out.append((entry, symbol, "missing"))
            continue
        if list(got) != list(tick.FULLON_FIELDS):
            out.append((entry, symbol, f"fields {list(got)}"))
        fields = [f for f in FIELDS if not (either and f in ("bid", "ask", "price"))]
        bad = {f: (got[f], w[f]) for f in fields if not _equal(got[f], w[f])}
        if either:
            pairs = {(p["bid"], p["ask"]) for p in (w["_t"], w["_q"])}
            if (got["bid"], got["ask"]) not in pairs:
                bad["bid/ask"] = ((got["bid"], got["ask"]), pairs)
        if w["_exact_time"] and not _equal(got["time"], w["time"]):
            bad["time"] = (got["time"], w["time"])
        if bad:
            out.append((entry, symbol, bad))
    return out


async def test_every_captured_symbol_of_16_venues_reaches_redis_with_ccxts_values(redis_db, tmp_path):
    """The issue's evidence, as a test: 8 of 16 venues used to lose symbols while `ps` said running."""
    assert len(VENUES) == 16
    async with ReplayServer(venues=list(VENUES)) as srv:
        cfg = write_config(tmp_path / "replay.toml", srv)
        want = {entry: want_of(entry, srv) for entry in ENTRIES}
        assert all(want.values()), {e: len(w) for e, w in want.items()}
        log = tmp_path / "up.log"
        up = tickerctl("up", "-c", str(cfg), log=log)
        try:
            async def problems() -> list[Any]:
                stored = {}
                for entry in ENTRIES:
                    raw = await redis_db.hgetall(f"tickers:{entry}")
                    stored[entry] = {k.decode(): orjson.loads(v) for k, v in raw.items()}
                return [m for entry in ENTRIES for m in mismatches(entry, stored[entry], want[entry])]

            started = time.monotonic()
            while (bad := await problems()) and time.monotonic() - started < 90:  # noqa: ASYNC110 - Redis
                await asyncio.sleep(0.5)
            assert not bad, f"{len(bad)} symbols not (yet) right after 90 s, e.g. {bad[:12]}"
            took = time.monotonic() - started
        finally:
            up.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(up.wait, 20)
            except subprocess.TimeoutExpired:
                up.kill()
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        total = sum(len(w) for w in want.values())
        print(f"\nreplay conformance: {total} symbols of {len(ENTRIES)} catalog entries ({len(VENUES)} venues) "
              f"in Redis with ccxt's values after {took:.1f}s")

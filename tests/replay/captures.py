"""The captured frames as data: loading, a token-preserving JSON codec, classification, time shift.

`load(venue, now_ms)` returns a `Capture`: the venue's manifest entry, its synthetic markets and
its frames, every timestamp field shifted by one constant so that the newest frame of the venue is
`now_ms`. Number tokens are kept byte-identical: frames are parsed with every number kept as its
source token (`Raw`) and written back by `dumps_raw`, which reproduces all 2440 captured lines
exactly (checked at load time); only the shifted fields change.

Two samples are left out on purpose:

- ``kraken_v1``: Kraken websocket v1 frames (``[channelID, {...}, "ticker", "XBT/USD"]`` arrays and
  ``subscriptionStatus`` events). ccxt 4.5.x's ``kraken`` class speaks only websocket v2
  (``urls['api']['ws']['publicV2']``, ``{"channel": "ticker", "data": [...]}``) for public data,
  so no ccxt call would subscribe to, or parse, a v1 ticker.
- ``bitmex``: ccxt 4.5.90 has no ``ccxt.pro.bitmex`` websocket class at all (the manifest's
  ``ccxt_class`` is null), so there is no ccxt code to replay the ``quote`` frames into.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any


def _captures_dir() -> Path:
    """$REPLAY_CAPTURES_DIR, else `../shared/data/exchange-captures` beside the checkout (where the
    team's machines keep them), else the machines' absolute path; tests skip when none exists."""
    if os.environ.get("REPLAY_CAPTURES_DIR"):
        return Path(os.environ["REPLAY_CAPTURES_DIR"])
    candidates = (Path(__file__).resolve().parents[3] / "shared/data/exchange-captures",
                  Path("/work/shared/data/exchange-captures"))
    return next((c for c in candidates if c.is_dir()), candidates[0])


CAPTURES_DIR = _captures_dir()

VENUES: tuple[str, ...] = (
    "binance", "binanceusdm", "binancecoinm", "binanceus", "bitfinex", "coinbaseexchange", "deribit",
    "gate", "kucoin", "okx", "htx", "hitbtc", "krakenfutures", "kraken", "bybit", "hyperliquid",
)
EXCLUDED: dict[str, str] = {
    "kraken_v1": "websocket v1 frames; ccxt 4.5.x kraken subscribes and parses only websocket v2",
    "bitmex": "ccxt 4.5.90 has no ccxt.pro.bitmex websocket class",
}


# --- a JSON codec that keeps number tokens -------------------------------------------------------
class Raw(str):
    """A JSON number kept as its source token (e.g. ``8.181588598785326E8``, ``0.10000000``)."""


def loads_raw(text: str) -> Any:
    return json.loads(text, parse_int=Raw, parse_float=Raw, parse_constant=Raw)


def dumps_raw(obj: Any) -> str:
    """Compact JSON; `Raw` numbers verbatim, strings unescaped as the exchanges send them."""
    if isinstance(obj, Raw):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + dumps_raw(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(dumps_raw(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False)


# --- time fields -----------------------------------------------------------------------------------
# Per venue: the keys (at any depth) holding the timestamps that ccxt reads for tickers and
# bid/asks, plus the frame's own event/transaction time where ccxt ignores it, and their unit.
# Contract schedule fields (maturityTime, nextFundingTime, deliveryTime, next_funding_rate_time),
# ids that happen to look like times (htx tick `id`, kucoin `sequence`) and ack-only fields
# (deribit usIn/usOut, kraken time_in/time_out: we generate acks) are not shifted.
TIME_FIELDS: dict[str, dict[str, str]] = {
    "binance": {"E": "ms", "T": "ms", "O": "ms", "C": "ms"},
    "binanceusdm": {"E": "ms", "T": "ms", "O": "ms", "C": "ms"},
    "binancecoinm": {"E": "ms", "T": "ms", "O": "ms", "C": "ms"},
    "binanceus": {"E": "ms", "T": "ms"},  # its bookTicker frames carry no time at all
    "bitfinex": {},  # ticker arrays carry no time
    "coinbaseexchange": {"time": "iso"},
    "deribit": {"timestamp": "ms"},
    "gate": {"time": "s", "time_ms": "ms", "t": "ms"},
    "kucoin": {"time": "ms", "datetime": "ms"},
    "okx": {"ts": "ms"},  # a JSON string in okx frames; kept a string
    "htx": {"ts": "ms", "quoteTime": "ms"},
    "hitbtc": {"t": "ms"},
    "krakenfutures": {"time": "ms"},  # ccxt reads `lastTime`, absent from these frames
    "kraken": {},  # v2 ticker frames carry no time
    "bybit": {"ts": "ms"},
    "hyperliquid": {"time": "ms"},  # only the bbo frame has one
}


def _parse_iso(s: str) -> tuple[datetime, int]:
    """An ISO-8601 UTC time and its number of fractional digits."""
    body = s[:-1] if s.endswith("Z") else s
    frac = body.split(".", 1)[1] if "." in body else ""
    head = body.split(".", 1)[0]
    dt = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    if frac:
        dt += timedelta(microseconds=int((frac + "000000")[:6]))
    return dt, len(frac)


def _format_iso(dt: datetime, digits: int) -> str:
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        s += "." + f"{dt.microsecond:06d}"[:digits] + "0" * max(0, digits - 6)
    return s + "Z"


def _to_ms(value: Any, unit: str) -> int | None:
    try:
        if unit == "iso":
            dt, _ = _parse_iso(str(value))
            return int(dt.timestamp() * 1000)
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    if number <= 0:
        return None
    return number * 1000 if unit == "s" else number


def _shift_value(value: Any, unit: str, delta_ms: int) -> Any:
    if unit == "iso":
        dt, digits = _parse_iso(str(value))
        return _format_iso(dt + timedelta(milliseconds=delta_ms), digits)
    text = str(value)
    if not text.lstrip("-").isdigit() or int(text) <= 0:
        return value  # e.g. gate's ack "time_ms": 0
    shifted = str(int(text) + (delta_ms // 1000 if unit == "s" else delta_ms))
    return Raw(shifted) if isinstance(value, Raw) else shifted


def _walk_times(obj: Any, fields: dict[str, str], delta_ms: int | None, found: list[int]) -> Any:
    """Collect (delta None) or shift (delta set) every time field of `obj`, in place."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in fields and not isinstance(v, (dict, list)) and v is not None:
                ms = _to_ms(v, fields[k])
                if ms is not None:
                    found.append(ms)
                    if delta_ms is not None:
                        obj[k] = _shift_value(v, fields[k], delta_ms)
            else:
                _walk_times(v, fields, delta_ms, found)
    elif isinstance(obj, list):
        for v in obj:
            _walk_times(v, fields, delta_ms, found)
    return obj


# --- frames --------------------------------------------------------------------------------------
@dataclass
class Frame:
    """One captured frame, time-shifted. `channel` is the server-side stream that carries it (None for
    acks/info/welcome, which the protocol code answers itself); `book` is the ccxt dict it lands in
    ('ticker' -> exchange.tickers, 'bidask' -> exchange.bidsasks, None: not parsed by ccxt)."""

    n: int
    text: str
    obj: Any
    meta: dict[str, Any]
    kind: str
    symbols: tuple[str, ...]
    channel: str | None
    book: str | None
    times_ms: tuple[int, ...] = ()

    @property
    def ts_ms(self) -> int | None:
        return max(self.times_ms) if self.times_ms else None


def _binance_event(obj: Any) -> str | None:
    data = obj.get("data", obj) if isinstance(obj, dict) else obj
    first = data[0] if isinstance(data, list) and data else data
    return first.get("e") if isinstance(first, dict) else None


def classify(venue: str, obj: Any, meta: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, book) of a frame; see `Frame`."""
    kind = meta["kind"]
    if kind in ("ack", "info", "welcome"):
        return None, None
    if kind == "heartbeat":  # bitfinex [chanId, "hb", seq]: on the ticker channel, ignored by ccxt
        return "ticker", None
    if venue.startswith("binance"):
        event = _binance_event(obj)
        if event == "24hrTicker":
            return "ticker", "ticker"
        if event == "24hrMiniTicker":
            return "miniTicker", "ticker"
        return "bookTicker", "bidask"
    if venue == "gate":
        suffix = str(obj.get("channel", "")).split(".")[-1]
        return suffix, ("bidask" if suffix == "book_ticker" else "ticker")
    if venue == "kucoin":
        topic = str(obj.get("topic", ""))
        return ("snapshot" if topic.startswith("/market/snapshot") else "ticker"), "ticker"
    if venue == "htx":
        return str(obj.get("ch", "")).split(".")[-1], "ticker"  # detail | bbo | ticker
    if venue == "hyperliquid":
        if obj.get("channel") == "bbo":
            return "bbo", None  # ccxt 4.5.90 has no handler for the bbo channel
        return "activeAssetCtx", "ticker"
    if venue == "krakenfutures":
        feed = obj.get("feed")
        return feed, ("bidask" if feed == "ticker_lite" else "ticker")
    if venue == "okx":
        return obj["arg"]["channel"], "ticker"
    if venue == "bybit":
        topic = str(obj.get("topic", ""))
        return topic.rsplit(".", 1)[0], ("bidask" if topic.startswith("orderbook") else "ticker")
    if venue == "deribit":
        prefix = obj["params"]["channel"].split(".")[0]
        return prefix, ("bidask" if prefix == "quote" else "ticker")
    return "ticker", ("bidask" if kind == "bidask" else "ticker")


@dataclass
class Capture:
    venue: str
    manifest: dict[str, Any]
    markets: list[dict[str, Any]]
    frames: list[Frame]
    shift_ms: int
    now_ms: int
    newest_ms: int | None  # newest frame time before the shift
    by_symbol: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ccxt_class(self) -> str:
        return self.manifest["ccxt_class"]

    def market(self, symbol: str) -> dict[str, Any]:
        return self.by_symbol[symbol]

    def data_frames(self, channels: set[str] | None = None) -> list[Frame]:
        return [f for f in self.frames if f.channel is not None and f.symbols
                and (channels is None or f.channel in channels)]

    def symbols(self, channel: str | None = None, book: str | None = None) -> list[str]:
        """Symbols with data frames (optionally of one channel / ccxt dict), in first-seen order."""
        seen: dict[str, None] = {}
        for f in self.data_frames():
            if f.book is None or (channel and f.channel != channel) or (book and f.book != book):
                continue
            for s in f.symbols:
                seen.setdefault(s, None)
        return list(seen)

    def channels(self) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.data_frames():
            if f.book is not None:
                seen.setdefault(f.channel or "", None)
        return list(seen)


@cache
def manifest() -> dict[str, Any]:
    return json.loads((CAPTURES_DIR / "manifest.json").read_text())


@cache
def _raw_lines(venue: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    entry = manifest()[venue]
    frames = (CAPTURES_DIR / entry["file"]).read_text().splitlines()
    metas = (CAPTURES_DIR / entry["meta"]).read_text().splitlines()
    if len(frames) != len(metas):
        raise ValueError(f"{venue}: {len(frames)} frames but {len(metas)} meta lines")
    return tuple(frames), tuple(metas)


def newest_ms(venue: str) -> int | None:
    """The newest (unshifted) time of any frame of the venue, in ms."""
    fields = TIME_FIELDS[venue]
    found: list[int] = []
    for line in _raw_lines(venue)[0]:
        _walk_times(loads_raw(line), fields, None, found)
    return max(found) if found else None


def shift_for(venue: str, now_ms: int) -> int:
    """The constant added to every time field: the newest frame lands on `now_ms` (whole seconds
    earlier at most where the venue has second-resolution fields, so those shift exactly too)."""
    newest = newest_ms(venue)
    if newest is None:
        return 0
    delta = now_ms - newest
    if "s" in TIME_FIELDS[venue].values():
        delta -= delta % 1000
    return delta


def load(venue: str, now_ms: int) -> Capture:
    if venue in EXCLUDED:
        raise ValueError(f"{venue} is not replayable: {EXCLUDED[venue]}")
    entry = manifest()[venue]
    shift = shift_for(venue, now_ms)
    fields = TIME_FIELDS[venue]
    frames: list[Frame] = []
    for line, meta_line in zip(*_raw_lines(venue), strict=True):
        meta = json.loads(meta_line)
        obj = loads_raw(line)
        if dumps_raw(obj) != line:  # the codec must reproduce the capture before we edit anything
            raise ValueError(f"{venue} line {meta['n']}: frame does not round-trip through dumps_raw")
        found: list[int] = []
        _walk_times(obj, fields, shift, found)
        text = dumps_raw(obj)
        symbols = tuple(s for s in (meta.get("ccxt_symbol") or "").split(",") if s)
        channel, book = classify(venue, obj, meta)
        frames.append(Frame(n=meta["n"], text=text, obj=obj, meta=meta, kind=meta["kind"], symbols=symbols,
                            channel=channel, book=book, times_ms=tuple(t + shift for t in found)))
    markets = list(entry["markets"])
    return Capture(venue=venue, manifest=entry, markets=markets, frames=frames, shift_ms=shift, now_ms=now_ms,
                   newest_ms=newest_ms(venue), by_symbol={m["symbol"]: m for m in markets})

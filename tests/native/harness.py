"""Equivalence harness: a frame through ccxt's own handle_message vs through a native decoder.

`Pair` holds two ccxt exchanges with the same markets:
- `ref`: every frame goes to `ref.handle_message(client, parsed)` - what ccxt alone stores;
- `mirror`: what `install()` does - the decoder decodes the frame and its tickers are stored in
  `mirror.tickers`/`mirror.bidsasks`; a declined frame (plus the decoder's prelude) goes to
  `mirror.handle_message`. The decoder's Bybit state lives in `mirror.tickers`, as installed.
After each frame, every decoded ticker must equal what `ref` stored for it, `ref` must have stored
nothing else, and the two exchanges' ticker caches must be identical.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.native import USED_FIELDS, build_decoder, diff
from tests.replay.captures import CAPTURES_DIR

CAPTURES = CAPTURES_DIR  # tests/replay/captures.py finds them


class StubClient:
    """What ccxt's handlers use of a ws Client: url, subscriptions, resolve/reject (no futures)."""

    def __init__(self, url: str, subscriptions: dict[str, Any] | None = None) -> None:
        self.url = url
        self.subscriptions = subscriptions if subscriptions is not None else {}
        self.futures: dict[str, Any] = {}
        self.rejections: dict[str, Any] = {}
        self.verbose = False
        self.lastPong = None
        self.resolved: list[str] = []

    def resolve(self, result: Any, message_hash: Any) -> Any:
        self.resolved.append(message_hash)
        return result

    def reject(self, result: Any, message_hash: Any = None) -> Any:
        return result

    def reset(self, error: Any) -> None:
        pass


def manifest() -> dict[str, Any]:
    """The captures' manifest; the calling test is skipped (with where we looked) when they are absent."""
    path = CAPTURES / "manifest.json"
    if not path.is_file():
        pytest.skip(f"captures not found in {CAPTURES} (set REPLAY_CAPTURES_DIR)")
    return json.loads(path.read_text())


def capture(name: str) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """(manifest entry, frames as text, meta lines) of one capture file."""
    entry = manifest()[name]
    frames = (CAPTURES / entry["file"]).read_text().splitlines()
    meta = [json.loads(x) for x in (CAPTURES / entry["meta"]).read_text().splitlines()]
    assert len(frames) == len(meta)
    return entry, frames, meta


def new_exchange(ccxt_class: str, markets: list[dict[str, Any]]) -> Any:
    ex = getattr(ccxtpro, ccxt_class)()
    ex.set_markets(markets)
    return ex


@dataclass
class Report:
    frames: int = 0
    decoded: int = 0
    declined: int = 0
    ccxt_raised: int = 0
    ticks: Counter = field(default_factory=Counter)  # stream -> count
    compared_fields: int = 0
    mismatches: list[tuple[int, str, str, list[Any]]] = field(default_factory=list)
    omitted: set[str] = field(default_factory=set)
    declined_kinds: Counter = field(default_factory=Counter)
    lean: int = 0  # decoded tickers that carry only what the fullon tick is made of


def _changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {k for k, v in after.items() if before.get(k) is not v} | (set(before) - set(after))


class Pair:
    def __init__(self, ccxt_class: str, markets: list[dict[str, Any]], *, datetime: bool = True,
                 lean: bool = False) -> None:
        self.ref = new_exchange(ccxt_class, markets)
        self.mirror = new_exchange(ccxt_class, markets)
        self.decoder = build_decoder(self.mirror, datetime=datetime, lean=lean)
        if hasattr(self.decoder, "store"):
            self.decoder.store = self.mirror
        self.report = Report()

    def feed(self, text: str, client: StubClient, label: str = "") -> list[Any] | None:
        r = self.report
        r.frames += 1
        ref, mirror = self.ref, self.mirror
        t0, b0 = dict(ref.tickers), dict(ref.bidsasks)
        ref_error = None
        try:
            ref.handle_message(client, orjson.loads(text))
        except Exception as exc:
            ref_error = exc
            r.ccxt_raised += 1
        msg = orjson.loads(text)
        out = self.decoder.decode(msg, client)
        if out is None:
            r.declined += 1
            r.declined_kinds[label] += 1
            for m in self.decoder.prelude(msg, client):
                mirror.handle_message(client, m)
            try:
                mirror.handle_message(client, msg)
            except Exception:
                pass
        else:
            r.decoded += 1
            if ref_error is not None:
                r.mismatches.append((r.frames, "<frame>", "", [("ccxt raised", repr(ref_error), out)]))
            last = {}
            for stream, symbol, ticker in out:
                r.ticks[stream] += 1
                (mirror.tickers if stream == "ticker" else mirror.bidsasks)[symbol] = ticker
                last[(stream, symbol)] = ticker
            changed = {("ticker", s) for s in _changed(t0, ref.tickers)} | {
                ("bidask", s) for s in _changed(b0, ref.bidsasks)}
            if changed != set(last):
                r.mismatches.append((r.frames, "<keys>", "", [("ccxt stored", sorted(changed), sorted(last))]))
            for (stream, symbol), ours in last.items():
                theirs = (ref.tickers if stream == "ticker" else ref.bidsasks).get(symbol)
                if "average" not in ours:
                    r.lean += 1
                if not set(USED_FIELDS) <= set(ours):  # normalise() would read None for a missing one
                    r.mismatches.append((r.frames, stream, symbol, [("missing", sorted(set(USED_FIELDS) - set(ours)))]))
                fields, omitted = diff(ours, theirs)
                r.compared_fields += len(ours)
                r.omitted.update(f"{stream}.{k}" for k in omitted)
                if fields:
                    r.mismatches.append((r.frames, stream, symbol, fields))
        # the two caches must agree on every entry (by value, except fields omitted by design)
        for name in ("tickers", "bidsasks"):
            a, b = getattr(ref, name), getattr(mirror, name)
            if set(a) != set(b):
                r.mismatches.append((r.frames, f"<{name} keys>", "", [(sorted(a), sorted(b))]))
                continue
            for k in a:
                fields, _ = diff({x: y for x, y in b[k].items()}, a[k])
                fields = [f for f in fields if not (f[0] == "info" and name == "bidsasks")]
                if fields:
                    r.mismatches.append((r.frames, f"<{name} state>", k, fields))
        return out

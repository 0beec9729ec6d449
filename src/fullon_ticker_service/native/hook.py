"""Hooking a decoder into a live ccxt.pro exchange (see the package docstring for the design)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from fullon_ticker_service.native.base import TICKER, Decoder, Tick
from fullon_ticker_service.native.compare import diff

try:  # parse with the very parser ccxt's client uses (orjson when importable)
    from ccxt.async_support.base.ws.client import json_parser as _json
except Exception:
    import orjson as _json

_loads = _json.loads

OnTick = Callable[[str, str, dict[str, Any]], Any]


@dataclass
class Mismatch:
    """A shadow check that found ccxt's stored ticker different from the decoded one."""

    stream: str  # "ticker" | "bidask"
    symbol: str
    ours: dict[str, Any]
    theirs: dict[str, Any] | None  # what ccxt stored (None: nothing, see `error`)
    fields: list[tuple[str, Any, Any]]  # (field, ours, ccxt's)
    error: BaseException | None = None  # ccxt raised while handling the frame
    frame: str = ""


@dataclass
class Stats:
    decoded: int = 0  # frames the decoder consumed (never shown to ccxt, except shadowed ones)
    ticks: int = 0  # tickers given to on_tick
    passed: int = 0  # frames handed to ccxt unchanged
    replayed: int = 0  # prelude frames handed to ccxt before a declined one
    shadowed: int = 0
    mismatches: int = 0
    tick_errors: int = 0  # exceptions raised by on_tick (caught: they must not kill ccxt's loop)
    ccxt_errors: int = 0  # exceptions ccxt raised on a passed frame, caught because guard=True
    omitted: set[str] = field(default_factory=set)  # ccxt fields the decoder leaves out by design


class Installation:
    """What `install()` returns: counters, and `uninstall()` to give ccxt every frame again."""

    def __init__(self, exchange: Any, decoder: Decoder, on_tick: OnTick, shadow_every: int,
                 on_mismatch: Callable[[Mismatch], Any] | None, store: bool,
                 on_error: Callable[[BaseException], Any] | None, guard: bool = False) -> None:
        self.exchange = exchange
        self.decoder = decoder
        self.on_tick = on_tick
        self.shadow_every = max(0, int(shadow_every))
        self.on_mismatch = on_mismatch
        self.store = store
        self.on_error = on_error
        self.guard = guard
        self.stats = Stats()
        self.active = True
        self._armed = self.shadow_every > 0  # the next decodable frame is shadowed (the 1st, N+1th...)
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()  # hooked clients (closed ones go away)
        self._orig_client: Any = None  # an instance attribute `client` that was there before us

    # wiring ---------------------------------------------------------------------------------
    def _attach(self) -> None:
        ex = self.exchange
        orig = ex.client  # the bound method (or an earlier wrapper)
        self._orig_client = ex.__dict__.get("client")

        def client(url: str) -> Any:
            c = orig(url)
            if "handle_text_or_binary_message" not in c.__dict__:
                self._hook(c)
            return c

        ex.client = client
        for c in list((getattr(ex, "clients", None) or {}).values()):
            if "handle_text_or_binary_message" not in c.__dict__:
                self._hook(c)

    def uninstall(self) -> None:
        """Restore ccxt: every frame of every connection goes to ccxt again."""
        self.active = False
        ex = self.exchange
        if self._orig_client is not None:
            ex.client = self._orig_client
        else:
            ex.__dict__.pop("client", None)
        for c in list(self._clients):
            c.__dict__.pop("handle_text_or_binary_message", None)
        self._clients.clear()
        if getattr(ex, "_native_installation", None) is self:
            ex._native_installation = None

    def _hook(self, c: Any) -> None:
        orig = c.handle_text_or_binary_message  # ccxt: verbose log, bytes decode, json parse, callback
        inst = self
        ex = self.exchange
        decoder = self.decoder

        def handle_text_or_binary_message(data: Any) -> Any:
            # ccxt's Client.handle_text_or_binary_message parses a text frame that starts with
            # '{' or '[' (client.py:324-335); we parse it once, here, with the same parser
            if (type(data) is not str or len(data) < 2 or (data[0] != "{" and data[0] != "[")
                    or not inst.active or c.verbose):
                return orig(data)
            try:
                msg = _loads(data)
            except Exception:
                return orig(data)
            if ex.markets_by_id is not decoder.source:
                decoder.set_markets(ex.markets_by_id)
            if inst._armed:
                return inst._shadow(c, data, msg)
            out = decoder.decode(msg, c)
            if out is None:
                return inst._pass(c, msg)
            inst._deliver(out)
            return None

        c.handle_text_or_binary_message = handle_text_or_binary_message
        self._clients.add(c)

    # per frame ------------------------------------------------------------------------------
    def _pass(self, c: Any, msg: Any) -> Any:
        self.stats.passed += 1
        if not self.guard:
            for m in self.decoder.prelude(msg, c):
                self.stats.replayed += 1
                c.on_message_callback(c, m)
            return c.on_message_callback(c, msg)
        try:
            for m in self.decoder.prelude(msg, c):
                self.stats.replayed += 1
                c.on_message_callback(c, m)
            return c.on_message_callback(c, msg)
        except Exception as exc:
            # ccxt would have raised out of its receive callback, which ends the receive loop
            # (e.g. "NaN" in a Binance 24hrTicker); with guard=True the frame is dropped instead
            self.stats.ccxt_errors += 1
            if self.on_error is not None:
                self.on_error(exc)
            else:
                logger.bind(component="native").opt(exception=exc).error(
                    f"{self.exchange.id}: ccxt raised on a frame; dropped (guard=True)")
            return None

    def _deliver(self, out: list[Tick]) -> None:
        st = self.stats
        st.decoded += 1
        n = self.shadow_every
        if n and st.decoded % n == 0:
            self._armed = True
        ex = self.exchange
        on_tick = self.on_tick
        for stream, symbol, ticker in out:
            if self.store:
                (ex.tickers if stream == TICKER else ex.bidsasks)[symbol] = ticker
            st.ticks += 1
            try:
                on_tick(stream, symbol, ticker)
            except Exception as exc:
                st.tick_errors += 1
                if self.on_error is not None:
                    self.on_error(exc)
                else:
                    logger.bind(component="native").opt(exception=exc).error(
                        f"{self.exchange.id}: on_tick raised for {symbol}")

    def _shadow(self, c: Any, data: str, msg: Any) -> Any:
        """Decode, then let ccxt handle the same frame from the same prior state, and compare.

        Both run on scratch copies of the exchange's ticker stores, so neither the decoder's nor
        ccxt's result reaches the real stores (or whoever watches them) before `_deliver` stores
        ours once; the real stores are put back whatever happens."""
        ex = self.exchange
        real_t, real_b = ex.tickers, ex.bidsasks
        error: BaseException | None = None
        try:
            ex.tickers, ex.bidsasks = dict(real_t), dict(real_b)
            out = self.decoder.decode(msg, c)
            if out is None:
                ex.tickers, ex.bidsasks = real_t, real_b
                return self._pass(c, msg)  # stay armed for the next decodable frame
            self._armed = False
            self.stats.shadowed += 1
            ex.tickers, ex.bidsasks = dict(real_t), dict(real_b)  # ccxt from the same prior state
            try:
                c.on_message_callback(c, _loads(data))  # a fresh parse: ccxt's result shares nothing
            except Exception as exc:
                error = exc
            theirs_t, theirs_b = ex.tickers, ex.bidsasks
        finally:
            ex.tickers, ex.bidsasks = real_t, real_b
        last = {(stream, symbol): ticker for stream, symbol, ticker in out}
        for (stream, symbol), ours in last.items():
            theirs = (theirs_t if stream == TICKER else theirs_b).get(symbol)
            fields, omitted = diff(ours, theirs)
            self.stats.omitted.update(omitted)
            if fields or error is not None:
                self.stats.mismatches += 1
                m = Mismatch(stream, symbol, ours, theirs, fields, error, data)
                if self.on_mismatch is not None:
                    try:
                        self.on_mismatch(m)
                    except Exception:
                        logger.bind(component="native").exception("on_mismatch raised")
                else:
                    logger.bind(component="native").warning(
                        f"{ex.id}: native decoder differs from ccxt for {stream} {symbol}: {fields} {error!r}")
        self._deliver(out)
        return None


def install(exchange: Any, decoder: Decoder | None = None, on_tick: OnTick | None = None, *,
            shadow_every: int = 0, on_mismatch: Callable[[Mismatch], Any] | None = None,
            store: bool = True, on_error: Callable[[BaseException], Any] | None = None,
            guard: bool = False) -> Installation:
    """Route the frames `decoder` recognises to `on_tick(stream, symbol, ticker)` instead of ccxt.

    - `decoder`: default `build_decoder(exchange)` (markets must be loaded or set).
    - Frames the decoder declines (acks, pongs, errors, other channels, unknown markets, odd
      values) reach ccxt exactly as before, parsed once.
    - `store`: also put each decoded ticker where ccxt would (`exchange.tickers` /
      `exchange.bidsasks`), so code reading those dicts keeps working.
    - `shadow_every=N`: one decoded frame in N is also handed to ccxt, from the same prior state,
      and both results are compared field by field; a difference (or ccxt raising) calls
      `on_mismatch(Mismatch)` (default: a warning in the log).
    - `on_tick` runs inside ccxt's receive callback: it must be quick and must not block; an
      exception it raises is counted and logged (or given to `on_error`), never propagated.
    - `guard=True` (off by default: ccxt unchanged): an exception ccxt raises while handling a
      frame the decoder passed on is caught, counted and logged (or given to `on_error`) instead of
      ending ccxt's receive loop - ccxt 4.5.90 stops reading a socket after e.g. a "NaN" price.
      Only text JSON frames are covered; anything else reaches ccxt's own method as before.

    Decoded frames do not resolve ccxt's futures: a pending `watch_*` call stays pending until the
    connection fails (then it raises as usual) - use it as the connection's sentinel.
    """
    if on_tick is None:
        raise TypeError("install() needs on_tick")
    if getattr(exchange, "_native_installation", None) is not None:
        raise RuntimeError(f"{exchange.id}: a native decoder is already installed")
    if decoder is None:
        from fullon_ticker_service.native import build_decoder

        decoder = build_decoder(exchange)
    if hasattr(decoder, "store"):
        decoder.store = exchange  # Bybit: share the merge state with ccxt (exchange.tickers)
    inst = Installation(exchange, decoder, on_tick, shadow_every, on_mismatch, store, on_error, guard)
    inst._attach()
    exchange._native_installation = inst
    return inst

"""Which parser turns an exchange's frames into tickers: our native decoder or ccxt's own.

`decoder = "native"` (the default) installs `native` for the exchange's busiest channels where one
exists: frames it recognises skip ccxt's parser and are stored where ccxt would store them, so the
intake's hooks see them the same way; everything else, and 1 frame in `shadow_every` as a check,
goes to ccxt. The first check that finds a difference is one error line with both values, counted,
and ccxt parses every frame from then on, until the worker restarts.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from fullon_ticker_service.config import ExchangeSettings


def _ignore(stream: str, symbol: str, ticker: Any) -> None:
    """The intake takes decoded tickers from `exchange.tickers`/`bidsasks`, like ccxt's."""


class Decoder:
    def __init__(self, exchange_name: str, cfg: ExchangeSettings) -> None:
        self.cfg = cfg
        self.log = logger.bind(exchange=exchange_name)
        self.installed: Any = None  # the native installation (None: ccxt parses every frame)
        self.mismatches = 0
        self.fallback = ""  # what made us fall back to ccxt

    def install(self, exchange: Any) -> None:
        from fullon_ticker_service import native

        if self.cfg.decoder == "native" and native.supported(exchange.id):
            # lean: the tickers carry what the fullon tick is made of (the shadow check compares those)
            self.installed = native.install(exchange, native.build_decoder(exchange, lean=True), _ignore,
                                            shadow_every=self.cfg.shadow_every, on_mismatch=self.mismatch, store=True)

    def mismatch(self, m: Any) -> None:
        """A shadow check found our value different from ccxt's (or ccxt raised on the frame)."""
        self.mismatches += 1
        if self.installed is None:
            return
        fields = ", ".join(f"{f}: ours {a!r}, ccxt {b!r}" for f, a, b in m.fields) or f"ccxt raised {m.error!r}"
        self.log.error(f"native decoder differs from ccxt for {m.stream} {m.symbol} ({fields}); ccxt parses "
                       f"every frame from now on, until restart")
        self.installed.uninstall()
        self.installed = None
        self.fallback = f"{m.stream} {m.symbol}: {fields}"[:300]

    def snapshot(self) -> dict[str, Any]:
        """The decoder's part of the health record."""
        out: dict[str, Any] = {"decoder": "native" if self.installed is not None else "ccxt",
                               "decoder_mismatches": self.mismatches, "decoder_fallback": self.fallback}
        if self.installed is not None:
            out.update(decoder_frames=self.installed.stats.decoded, shadow_checks=self.installed.stats.shadowed)
        return out

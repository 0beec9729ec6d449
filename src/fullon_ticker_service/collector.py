"""`LiveTickerCollector`: the original service's collection manager, kept for the code that uses it.

fullon code written against the service this one replaces calls this class; here it is a thin
facade over `TickerDaemon`'s public API (`start`, `process_ticker`, `stop`, `is_running`,
`catalog`), so there is one way symbols get collected, not two, and every guarantee of the
daemon (one supervisor process, a worker per exchange, restarts) holds for it too.

What it adds is the original's checks: a symbol is collected only on an exchange of the
catalog (the admin user's active exchanges in PostgreSQL; without a database, the config's
`[exchanges]`), and a missing admin user or exchange is a `ValueError` before anything starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fullon_ticker_service import catalog
from fullon_ticker_service.config import valid_symbol
from fullon_ticker_service.daemon import TickerDaemon


class LiveTickerCollector:
    """Collect fullon `Symbol`s (or `(symbol, exchange)` pairs) into the cache.

    `symbols`: the symbols `start_collection()` collects; none (the single-symbol use, with
    `start_symbol`) means every catalog symbol of the admin's exchanges. `daemon`: the
    `TickerDaemon` to drive (default: a new one from the environment and config file), so an
    embedding program can share its own daemon with the collector.

    A symbol is a fullon `Symbol`-like object (`.symbol`, `.cat_exchange.name`, `.cat_ex_id`;
    `.exchange_name` is read too; with only `.cat_ex_id` the exchange is found in the catalog),
    or a `(symbol, exchange)` pair.
    """

    def __init__(self, symbols: Iterable[Any] | None = None, daemon: TickerDaemon | None = None) -> None:
        self.symbols = list(symbols) if symbols else []
        self.daemon = daemon if daemon is not None else TickerDaemon()
        self._names: dict[str, str] = {}  # str(cat_ex_id) -> exchange name, learnt from the catalog

    async def start_collection(self) -> None:
        """Collect every given symbol, or every catalog symbol of the admin's exchanges.

        Every symbol is checked before anything starts (a `ValueError` leaves nothing half
        started). A running daemon gets the symbols added live; a stopped one starts with them."""
        allowed = await self._allowed()
        if not self.symbols:
            if not self.daemon.is_running():
                await self.daemon.start()  # the daemon reads the same catalog the check just read
            return
        pairs = [self._resolve(s, allowed) for s in self.symbols]
        if self.daemon.is_running():
            for sym, exchange in pairs:
                await self.daemon.process_ticker(sym, exchange)
            return
        only: dict[str, set[str]] = {}
        for sym, exchange in pairs:
            only.setdefault(exchange, set()).add(sym)
        await self.daemon.start(only={ex: tuple(sorted(syms)) for ex, syms in only.items()})

    async def start_symbol(self, symbol: Any) -> None:
        """Collect one more symbol; its exchange's running worker takes it without a restart."""
        sym, exchange = self._resolve(symbol, await self._allowed())
        await self.daemon.process_ticker(sym, exchange)

    async def stop_collection(self) -> None:
        """Stop collecting everything (the daemon's graceful stop; never raises)."""
        await self.daemon.stop()

    def is_collecting(self, symbol: Any) -> bool:
        """Whether the symbol is in the running daemon's catalog (a fast, synchronous check)."""
        try:
            sym, exchange, _ = self._identify(symbol)
        except ValueError:
            return False
        return exchange is not None and self.daemon.is_running() and sym in self.daemon.catalog.get(exchange, ())

    # --- internals ------------------------------------------------------------------------------
    async def _allowed(self) -> dict[str, Any]:
        """{exchange name: cat_ex_id} symbols may be collected on; ValueError without an admin user."""
        settings = self.daemon.settings
        allowed = await catalog.admin_exchanges(settings)
        if allowed is None:
            raise ValueError(f"admin user {settings.database.admin_mail!r} is not in the catalog "
                             "(no users row with that mail; set ADMIN_MAIL or seed it with `tickerctl db init`)")
        for name, cat_id in allowed.items():
            if cat_id is not None:
                self._names[str(cat_id)] = name
        return allowed

    def _identify(self, symbol: Any) -> tuple[str, str | None, Any]:
        """(symbol, exchange name or None, cat_ex_id or None) from either accepted form."""
        if isinstance(symbol, tuple | list):
            if len(symbol) != 2:
                raise ValueError(f"expected a (symbol, exchange) pair, got {symbol!r}")
            sym, exchange = symbol
            cat_id = None
        elif isinstance(symbol, str):
            raise ValueError(f"{symbol!r}: a bare symbol has no exchange; pass (symbol, exchange) or a Symbol")
        else:
            sym = getattr(symbol, "symbol", None)
            exchange = getattr(getattr(symbol, "cat_exchange", None), "name", None) or getattr(
                symbol, "exchange_name", None)
            cat_id = getattr(symbol, "cat_ex_id", None)
        if not isinstance(sym, str) or not valid_symbol(sym):
            raise ValueError(f"invalid symbol {sym!r}: expected a unified symbol like BTC/USDT")
        if exchange is None and cat_id is not None:
            exchange = self._names.get(str(cat_id))
        if exchange is not None and not isinstance(exchange, str):
            raise ValueError(f"invalid exchange {exchange!r} for {sym}")
        return sym, exchange, cat_id

    def _resolve(self, symbol: Any, allowed: dict[str, Any]) -> tuple[str, str]:
        sym, exchange, cat_id = self._identify(symbol)
        if exchange is None:
            why = f", and cat_ex_id {cat_id!r} is not one of the admin's active exchanges" if cat_id is not None else ""
            raise ValueError(f"{sym}: no exchange given{why}")
        if exchange not in allowed:
            where = ("the admin's active exchanges" if self.daemon.settings.database.enabled
                     else "the config's [exchanges]")
            raise ValueError(f"exchange {exchange!r} of {sym} is not in the catalog (not among {where})")
        known = allowed[exchange]
        if cat_id is not None and known is not None and str(cat_id) != str(known):
            raise ValueError(f"{sym}: cat_ex_id {cat_id!r} does not match exchange {exchange!r} "
                             f"(cat_ex_id {known!r} in the catalog)")
        return sym, exchange

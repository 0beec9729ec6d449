"""fullon_ticker_service: real-time crypto tickers from ccxt.pro websockets into Redis.

    from fullon_ticker_service import TickerDaemon, TickerReader
    from fullon_ticker_service import LiveTickerCollector  # the original's collection manager

The public names load on first use, so `tickerctl` (and each worker) does not import PostgreSQL
and Redis clients it may not need before it has even parsed its command line.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing alone costs ~10 ms, before Ctrl-C is handled
if TYPE_CHECKING:  # nothing else is imported at run time: a `tickerctl` process starts with this module
    from typing import Any

__all__ = ["LiveTickerCollector", "Ticker", "TickerDaemon", "TickerReader"]
__version__ = "0.1.0"

_WHERE = {"LiveTickerCollector": "collector", "TickerDaemon": "daemon", "Ticker": "reader",
          "TickerReader": "reader"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"fullon_ticker_service.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'fullon_ticker_service' has no attribute {name!r}")

"""fullon_ticker_service: real-time crypto tickers from ccxt.pro websockets into Redis.

    from fullon_ticker_service import TickerDaemon, TickerReader
    from fullon_ticker_service import LiveTickerCollector  # the original's collection manager
"""

from fullon_ticker_service.collector import LiveTickerCollector
from fullon_ticker_service.daemon import TickerDaemon
from fullon_ticker_service.reader import Ticker, TickerReader

__all__ = ["LiveTickerCollector", "Ticker", "TickerDaemon", "TickerReader"]
__version__ = "0.1.0"

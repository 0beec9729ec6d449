"""Imported once by the fork server (`supervisor.start_method = "forkserver"`) before it forks workers.

Everything a worker imports (ccxt.pro, aiohttp, redis, uvloop) is loaded here, then the heap is
frozen: `gc.freeze()` moves these objects out of the collector's generations, so collections in
the workers never write to (and so never copy) the pages they share with the fork server.
"""

import gc

import fullon_ticker_service.worker  # noqa: F401  (imports ccxt.pro and the rest of the data path)
from fullon_ticker_service.proctitle import set_title

set_title("fork server")

gc.collect()
gc.freeze()

"""`python -m fullon_ticker_service.worker EXCHANGE [SYMBOL ...] [--config FILE]` = `tickerctl worker`."""

import sys

from fullon_ticker_service.cli import app

app(["worker", *sys.argv[1:]], prog_name="python -m fullon_ticker_service.worker")

"""The exchange worker: one process, one exchange, every ticker into Redis.

    lifecycle.py      Worker: builds the parts, runs them, one shutdown path, the exit code
    exchange.py       the ccxt.pro exchange: class, config, frame limit, plan, markets
    intake.py         the hot path: every ticker ccxt stores -> validated tick -> the writer
    subscriptions.py  the watch loops, reconnects with backoff, the silence watchdog
    writer.py         coalescing, fenced, never-older Redis writer (one round trip per flush)
    report.py         the health record and fullon's process records, from each part's snapshot
    ownership.py      the exchange's lease as this worker holds it
    link.py           the supervisor's pipe: symbols and the lease in, status and beats out
"""

from fullon_ticker_service.worker.lifecycle import Worker, run_process

__all__ = ["Worker", "run_process"]

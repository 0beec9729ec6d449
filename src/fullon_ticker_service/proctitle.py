"""Process titles, so an operator can tell the processes apart in `ps` and `top`:

    tickerctl: supervisor [ticker_service]      tickerctl: worker binance
    tickerctl: fork server [ticker_service]     tickerctl: simulator :8765

Without it every worker is `python3 -B -c from multiprocessing.forkserver import main; ...`.
"""

from __future__ import annotations


def set_title(title: str) -> None:
    """Set this process's title (`ps`, `top`, /proc/PID/cmdline and comm)."""
    try:
        from setproctitle import setproctitle
    except ImportError:  # pragma: no cover - a dependency; without it titles are only cosmetic
        return
    setproctitle(f"tickerctl: {title}")

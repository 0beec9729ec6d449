"""Per-exchange subscription choices, in one place (pure).

For each ccxt exchange: which ccxt method to call, with which params, and how many symbols go
into one subscription. We prefer channels that carry bid and ask (Binance: the full `ticker`
stream, not the default `miniTicker`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Plan:
    method: str  # "watch_tickers" (one subscription, many symbols) or "watch_ticker" (one each)
    params: dict[str, Any] = field(default_factory=dict)
    chunk: int = 50  # symbols per watch_tickers call (each exchange has its own limits)
    unwatch: bool = True  # ccxt has un_watch_* for this exchange and it works per chunk


# Facts from ccxt 4.5.90 and the exchanges' documentation (checked against the simulator):
# - binance*: the `ticker` stream has bid/ask (default miniTicker has none); 200 streams per
#   connection. ccxt keys a connection on the exact symbol list, so a subset cannot be
#   unwatched: we always unwatch whole chunks (what `_drop_chunk` does).
# - okx: ccxt sends every symbol in one subscribe request (frames too large): we chunk.
#   Partial unwatch works on the same socket.
# - bybit: at most 10 args per subscribe request on spot (more -> an error that fails every
#   waiter on the socket); ccxt does not chunk, so we do, by 10.
# - kraken: websocket v2 with unified symbols; ticker frames carry no timestamp.
# - hyperliquid: watch_tickers is `allMids` (mid only); watch_ticker (activeAssetCtx) gives
#   last (midPx) and impact bid/ask, one subscription per coin on one socket. No timestamps.
# - coinbase: watch_tickers is `ticker_batch`, batched every 5 s upstream: too slow for us.
#   watch_ticker (`ticker`) is real time. A partial unwatch never resolves in ccxt (it waits
#   for an empty subscription list), so removed symbols are only ignored, not unwatched.
PLANS: dict[str, Plan] = {
    "binance": Plan("watch_tickers", {"name": "ticker"}, 100),
    "binanceus": Plan("watch_tickers", {"name": "ticker"}, 100),
    "binanceusdm": Plan("watch_tickers", {"name": "ticker"}, 100),
    "binancecoinm": Plan("watch_tickers", {"name": "ticker"}, 100),
    "okx": Plan("watch_tickers", {}, 50),
    "bybit": Plan("watch_tickers", {}, 10),
    "kraken": Plan("watch_tickers", {}, 50, unwatch=False),  # ccxt has no un_watch_ticker(s) for kraken
    "hyperliquid": Plan("watch_ticker", {}, 1),
    "coinbase": Plan("watch_ticker", {}, 1, unwatch=False),
}


def plan_for(ccxt_id: str, has: dict[str, Any], method: str = "", channel: str = "",
             chunk: int = 0) -> Plan:
    """The plan for an exchange; config (`method`, `channel`, `chunk`) overrides the table."""
    base = PLANS.get(ccxt_id)
    if base is None:
        base = Plan("watch_tickers" if has.get("watchTickers") else "watch_ticker", {}, 50,
                    bool(has.get("unWatchTickers")))
    params = dict(base.params)
    if channel:
        params["name"] = channel
    chosen = method or base.method
    size = 1 if chosen == "watch_ticker" else (chunk or base.chunk)
    return Plan(chosen, params, size, base.unwatch)


def chunked(symbols: list[str], size: int) -> list[list[str]]:
    size = max(1, size)
    return [symbols[i:i + size] for i in range(0, len(symbols), size)]

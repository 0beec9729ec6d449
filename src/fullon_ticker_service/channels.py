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


# Facts from ccxt 4.5.90 and the exchanges' documentation:
# - binance*: `ticker` stream has bid/ask (miniTicker has none); 200 streams per connection,
#   ccxt keys a connection on the exact symbol list, so we keep chunks stable.
# - okx: one subscribe request for every symbol makes frames too large: chunk.
# - bybit: v5 public allows 10 args per subscribe request; ccxt sends one request per call.
# - kraken: websocket v2, unified symbols; no timestamp in ticker frames.
# - hyperliquid: watch_tickers is `allMids` (mid only); watch_ticker is activeAssetCtx.
# - coinbase: Advanced Trade; ~900 products in one subscription gets the socket closed.
PLANS: dict[str, Plan] = {
    "binance": Plan("watch_tickers", {"name": "ticker"}, 100),
    "binanceus": Plan("watch_tickers", {"name": "ticker"}, 100),
    "binanceusdm": Plan("watch_tickers", {"name": "ticker"}, 100),
    "binancecoinm": Plan("watch_tickers", {"name": "ticker"}, 100),
    "okx": Plan("watch_tickers", {}, 50),
    "bybit": Plan("watch_tickers", {}, 10),
    "kraken": Plan("watch_tickers", {}, 50),
    "hyperliquid": Plan("watch_ticker", {}, 1),
    "coinbase": Plan("watch_tickers", {}, 50),
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
    return [symbols[i:i + size] for i in range(0, len(symbols), max(1, size))]

"""Every Redis key and channel this service touches, in one place.

The fullon keys (`tickers:*`, `ticker_time:*`, `ticker_updates:*`, `process:*`) are a contract
with other fullon services and are never prefixed. Our own keys live under a namespace.
"""

from __future__ import annotations


def tickers(exchange: str) -> str:
    return f"tickers:{exchange}"


def ticker_time(exchange: str, symbol: str) -> str:
    return f"ticker_time:{exchange}:{symbol}"


def ticker_updates(exchange: str, symbol: str) -> str:
    return f"ticker_updates:{exchange}:{symbol}"


PROCESS_TYPE = "tick"


def process_data(process_id: str) -> str:
    return f"process:data:{process_id}"


def process_active(process_type: str = PROCESS_TYPE) -> str:
    return f"process:active:{process_type}"


PROCESS_COMPONENTS = "process:components"
PROCESS_DATA_TTL = 86400


def health(namespace: str, exchange: str) -> str:
    return f"{namespace}:health:{exchange}"


def health_pattern(namespace: str) -> str:
    return f"{namespace}:health:*"


def supervisor_state(namespace: str) -> str:
    return f"{namespace}:supervisor:state"


def supervisor_owner(namespace: str) -> str:
    """`host:pid` of the one supervisor that owns the namespace (short TTL, renewed every tick)."""
    return f"{namespace}:supervisor:owner"

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


def symbols(namespace: str, exchange: str) -> str:
    """The owning worker's per-symbol table (JSON; `tickerctl ps --symbols`), TTL as the health record."""
    return f"{namespace}:symbols:{exchange}"


def supervisor_state(namespace: str, host_id: str) -> str:
    """What one host's supervisor is doing (`tickerctl ps` merges every live host's)."""
    return f"{namespace}:supervisor:state:{host_id}"


def supervisor_state_pattern(namespace: str) -> str:
    return f"{namespace}:supervisor:state:*"


# --- several hosts (lease.py) -------------------------------------------------------------------
def hosts(namespace: str) -> str:
    """Hash host id -> JSON {instance, hostname, pid, capacity, started_at} of every registered host."""
    return f"{namespace}:hosts"


def hosts_alive(namespace: str) -> str:
    """Sorted set host id -> expiry (Redis server ms): a host is live until its score passes."""
    return f"{namespace}:hosts:alive"


def lease(namespace: str, exchange: str) -> str:
    """`{token}:{host_id}:{pid}` of the one worker allowed to write the exchange (PX = lease TTL)."""
    return f"{namespace}:lease:{exchange}"


def fence(namespace: str, exchange: str) -> str:
    """The exchange's fencing counter: INCR on every acquisition, never expires."""
    return f"{namespace}:fence:{exchange}"


def fenced(namespace: str) -> str:
    """Hash exchange -> writes (flushes, reports) refused because the writer no longer held the lease."""
    return f"{namespace}:fenced"


def write_probe(namespace: str) -> str:
    """`tickerctl health`/`ps` write this (expiring at once) to learn whether Redis takes writes."""
    return f"{namespace}:write-probe"


def flush_audit(namespace: str) -> str:
    """Channel: `{exchange} {token} {written}` for every accepted flush (watchers, tests)."""
    return f"{namespace}:flushes"


def armed(namespace: str, exchange: str, host_id: str) -> str:
    """A standby worker's record: connected and holding ticks, waiting for the lease."""
    return f"{namespace}:armed:{exchange}:{host_id}"

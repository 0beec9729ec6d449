"""A local exchange simulator that unmodified ccxt.pro connects to (tests, demo, benchmarks)."""

from fullon_ticker_service.sim.server import SimExchange, Simulator

__all__ = ["SimExchange", "Simulator"]

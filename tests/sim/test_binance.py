"""Real ccxt.pro binance against the simulator: values equal what was sent."""

from __future__ import annotations

import ccxt.pro as ccxtpro
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import assert_matches_quote, eventually


@pytest.fixture
async def sim():
    async with Simulator([SimExchange("binance", symbols=6, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim):
    ex = ccxtpro.binance(sim.ccxt_config("binance"))
    ex.set_markets(sim.markets("binance"))
    yield ex
    await ex.close()


async def test_watch_ticker_full_ticker_stream(sim, exchange):
    """watch_ticker on the `ticker` stream returns last, bid, ask, volume and time as sent."""
    symbol = sim.symbols("binance")[1]
    t = await exchange.watch_ticker(symbol, {"name": "ticker"})
    assert_matches_quote(t, sim.last_good("binance")[symbol])


async def test_watch_tickers_updates_every_symbol(sim, exchange):
    """After a burst, ccxt's stored ticker of every symbol equals the last one sent."""
    symbols = sim.symbols("binance")
    await exchange.watch_tickers(symbols, {"name": "ticker"})
    # start the burst only once every symbol is subscribed (watch_tickers returns on the first one)
    await eventually(lambda: sim.exchanges["binance"].state()["subscriptions"] >= len(symbols), 10,
                     what="every symbol subscribed")
    sim.set_rate("binance", 100, count=30)  # protocol check, not throughput (see closing note)
    await sim.drained("binance")
    good = sim.last_good("binance")

    def differing():
        return {s: (exchange.tickers.get(s, {}).get("last"), good[s].last) for s in symbols
                if exchange.tickers.get(s, {}).get("last") != good[s].last}

    await eventually(lambda: not differing(), what="every symbol to reach its last sent value")
    assert differing() == {}
    for s in symbols:
        assert_matches_quote(exchange.tickers[s], good[s])


async def test_mini_ticker_has_no_bid_ask(sim, exchange):
    """The default miniTicker stream carries last and volume but no bid/ask (why we avoid it)."""
    symbol = sim.symbols("binance")[0]
    t = await exchange.watch_ticker(symbol)
    q = sim.last_good("binance")[symbol]
    assert t["last"] == q.last and t["baseVolume"] == q.volume
    assert t["bid"] is None and t["ask"] is None


async def test_watch_bids_asks_book_ticker(sim, exchange):
    """bookTicker gives bid/ask without a timestamp (the receiver must stamp it)."""
    symbols = sim.symbols("binance")[:3]
    await exchange.watch_bids_asks(symbols)
    good = sim.last_good("binance")
    await eventually(lambda: all(s in exchange.bidsasks for s in symbols), what="all bidsasks")
    for s in symbols:
        b = exchange.bidsasks[s]
        assert b["bid"] == good[s].bid and b["ask"] == good[s].ask
        assert b["timestamp"] is None


async def test_unsubscribe_stops_updates(sim, exchange):
    """un_watch_tickers with the watched list sends UNSUBSCRIBE on that connection.

    ccxt binance keys the connection (`/ws/<n>`) on the exact symbol list, so unwatching a
    subset goes to a new connection and removes nothing: the worker unwatches whole chunks.
    """
    symbols = sim.symbols("binance")[:2]
    state = sim.exchanges["binance"].state
    await exchange.watch_tickers(symbols, {"name": "ticker"})
    await eventually(lambda: state()["subscriptions"] == 2, what="2 subs")
    await exchange.un_watch_tickers(symbols[:1], {"name": "ticker"})
    await eventually(lambda: state()["connections"] == 2, what="a second connection for the subset")
    assert state()["subscriptions"] == 2
    await exchange.un_watch_tickers(symbols, {"name": "ticker"})
    await eventually(lambda: state()["subscriptions"] == 0, what="no subscription left")

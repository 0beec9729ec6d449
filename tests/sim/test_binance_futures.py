"""Real ccxt.pro binanceusdm / binancecoinm against the simulator: futures frames as Binance sends them."""

from __future__ import annotations

import asyncio

import ccxt.pro as ccxtpro
import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually

TICKER = {"name": "ticker"}


@pytest.fixture(params=["binanceusdm", "binancecoinm"])
async def venue(request):
    return request.param


@pytest.fixture
async def sim(venue):
    async with Simulator([SimExchange(venue, symbols=6, rate=0)]) as s:
        yield s


@pytest.fixture
async def exchange(sim, venue):
    ex = getattr(ccxtpro, venue)(sim.ccxt_config(venue))
    ex.set_markets(sim.markets(venue))
    yield ex
    await ex.close()


def test_markets_are_perpetuals_and_quarterlies(venue):
    """USD-M: USDT-margined perpetuals and BTC/ETH quarterlies; COIN-M: the coin-margined ones."""
    from fullon_ticker_service.sim.server import load_venue

    markets = load_venue(venue).make_markets(6)
    symbols = [m["symbol"] for m in markets]
    if venue == "binanceusdm":
        assert symbols == ["BTC/USDT:USDT", "ETH/USDT:USDT", "BTC/USDT:USDT-281229", "SOL/USDT:USDT",
                           "XRP/USDT:USDT", "ETH/USDT:USDT-281229"]
        assert markets[2]["id"] == "BTCUSDT_281229" and markets[2]["linear"] and markets[2]["lowercaseId"]
    else:
        assert symbols == ["BTC/USD:BTC", "ETH/USD:ETH", "BTC/USD:BTC-281229", "SOL/USD:SOL", "XRP/USD:XRP",
                           "ETH/USD:ETH-281229"]
        assert markets[0]["id"] == "BTCUSD_PERP" and markets[0]["inverse"] and markets[0]["contractSize"] == 100
    assert markets[2]["type"] == "future" and markets[2]["expiry"] > 0


async def test_ticker_stream_has_no_bid_ask(sim, exchange, venue):
    """The futures 24hrTicker has no b/a: ccxt's bid/ask are None; last, volume and time (C) as sent."""
    for symbol in (sim.symbols(venue)[0], sim.symbols(venue)[2]):  # a perpetual and a quarterly
        t = await asyncio.wait_for(exchange.watch_ticker(symbol, TICKER), 5)
        q = sim.last_good(venue)[symbol]
        assert (t["symbol"], t["last"], t["baseVolume"], t["timestamp"]) == (symbol, q.last, q.volume, q.ts_ms)
        assert t["bid"] is None and t["ask"] is None
        assert not {"b", "a", "x"} & set(t["info"]) and t["info"]["E"] > t["info"]["C"]
    if venue == "binancecoinm":  # inverse: v = contracts, q = coin volume (ccxt's baseVolume)
        market = exchange.market(symbol)
        assert int(t["info"]["v"]) == round(q.quote_volume / market["contractSize"])
        assert t["info"]["ps"] == market["base"] + "USD"


async def test_book_ticker_has_exchange_time(sim, exchange, venue):
    """watch_bids_asks (bookTicker) gives bid/ask with the frame's E as timestamp (T a few ms before)."""
    symbols = sim.symbols(venue)[:3]
    await asyncio.wait_for(exchange.watch_bids_asks(symbols), 5)
    await eventually(lambda: all(s in exchange.bidsasks for s in symbols), 5, what="all bidsasks")
    sim.set_rate(venue, 200, count=12)
    await sim.drained(venue)
    good = sim.last_good(venue)
    await eventually(lambda: all(exchange.bidsasks[s]["bid"] == good[s].bid for s in symbols if s in good),
                     what="the last bid/ask of every symbol")
    for s in symbols:
        b = exchange.bidsasks[s]
        assert (b["bid"], b["ask"], b["timestamp"]) == (good[s].bid, good[s].ask, good[s].ts_ms)
        assert b["info"]["e"] == "bookTicker" and b["info"]["T"] < b["info"]["E"] == good[s].ts_ms


async def test_watch_tickers_updates_every_symbol(sim, exchange, venue):
    """After a burst, ccxt's stored ticker of every symbol (perpetuals and quarterlies in one call)
    equals the last one sent; the miniTicker default also works."""
    symbols = sim.symbols(venue)
    await exchange.watch_tickers(symbols, TICKER)
    await eventually(lambda: sim.exchanges[venue].state()["subscriptions"] >= len(symbols), 10,
                     what="every symbol subscribed")
    sim.set_rate(venue, 200, count=30)
    await sim.drained(venue)
    good = sim.last_good(venue)
    await eventually(lambda: all(exchange.tickers[s]["last"] == good[s].last for s in symbols),
                     what="every symbol to reach its last sent value")
    for s in symbols:
        t = exchange.tickers[s]
        assert (t["timestamp"], t["baseVolume"]) == (good[s].ts_ms, good[s].volume)
    mini = await asyncio.wait_for(exchange.watch_ticker(symbols[1]), 5)  # default: miniTicker
    assert mini["info"]["e"] == "24hrMiniTicker" and mini["bid"] is None
    assert mini["baseVolume"] == sim.last_good(venue)[symbols[1]].volume


async def test_stream_urls(sim, exchange, venue):
    """USD-M: ccxt splits ticker (`/market/ws/<n>`) and bookTicker (`/public/ws/<n>`); COIN-M keeps `/ws/<n>`."""
    symbol = sim.symbols(venue)[0]
    await asyncio.wait_for(exchange.watch_ticker(symbol, TICKER), 5)
    await asyncio.wait_for(exchange.watch_bids_asks([symbol]), 5)
    paths = sorted(url.split(f"/{venue}/", 1)[1].rsplit("/", 1)[0] for url in exchange.clients)
    assert paths == (["market/ws", "public/ws"] if venue == "binanceusdm" else ["ws", "ws"])

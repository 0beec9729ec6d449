"""Real ccxt.pro binance against the simulator: values equal what was sent. Also the combined-stream
endpoint and the REST symbol list, and cryptofeed (the benchmark's peer, when installed) on them."""

from __future__ import annotations

import asyncio

import aiohttp
import ccxt.pro as ccxtpro
import orjson
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


# --- the combined-stream endpoint and the REST symbol list (what cryptofeed uses) -------------------
async def test_exchange_info_lists_every_market_as_binance_does(sim):
    """GET /api/v3/exchangeInfo: every simulated market, TRADING, PRICE_FILTER first with the market's
    tick; ccxt's own Binance parser reads the same symbols and price precision from it."""
    import ccxt

    async with aiohttp.ClientSession() as s, s.get(f"{sim.http_url}/binance/api/v3/exchangeInfo") as r:
        assert r.status == 200 and r.content_type == "application/json"
        info = await r.json()
    assert info["timezone"] == "UTC" and isinstance(info["serverTime"], int) and info["rateLimits"]
    markets = {m["id"]: m for m in sim.markets("binance")}
    assert [e["symbol"] for e in info["symbols"]] == list(markets)
    parser = ccxt.binance()
    parser.options["crossMarginPairsData"] = parser.options["isolatedMarginPairsData"] = []
    for e in info["symbols"]:
        m = markets[e["symbol"]]
        assert (e["status"], e["baseAsset"], e["quoteAsset"]) == ("TRADING", m["base"], m["quote"])
        price = e["filters"][0]
        assert price["filterType"] == "PRICE_FILTER" and float(price["tickSize"]) == m["precision"]["price"]
        q = sim.exchanges["binance"].current(m["symbol"])
        assert float(price["minPrice"]) <= q.bid < q.ask <= float(price["maxPrice"])
        parsed = parser.parse_market(e)
        assert (parsed["symbol"], parsed["spot"], parsed["active"]) == (m["symbol"], True, True)
        assert parsed["precision"]["price"] == m["precision"]["price"]


async def test_exchange_info_symbol_filters(sim):
    """`symbol` / `symbols` narrow the list; an unknown symbol is Binance's -1121 with a 400."""
    base = f"{sim.http_url}/binance/api/v3/exchangeInfo"
    async with aiohttp.ClientSession() as s:
        async with s.get(base, params={"symbol": "ETHUSDT"}) as r:
            assert [e["symbol"] for e in (await r.json())["symbols"]] == ["ETHUSDT"]
        async with s.get(base, params={"symbols": '["SOLUSDT","BTCUSDT"]'}) as r:
            assert {e["symbol"] for e in (await r.json())["symbols"]} == {"BTCUSDT", "SOLUSDT"}
        async with s.get(base, params={"symbol": "NOPEUSDT"}) as r:
            assert r.status == 400 and (await r.json())["code"] == -1121
        async with s.get(base, params={"symbols": "BTCUSDT"}) as r:  # not a JSON list
            assert r.status == 400 and (await r.json())["code"] == -1100


async def test_futures_venues_have_no_spot_exchange_info():
    """The USD-M venue lists no spot market: /api/v3/exchangeInfo is not there (Binance serves /fapi)."""
    async with Simulator([SimExchange("binanceusdm", symbols=3, rate=0)]) as s, aiohttp.ClientSession() as c, \
            c.get(f"{s.http_url}/binanceusdm/api/v3/exchangeInfo") as r:
        assert r.status == 404


async def test_combined_stream_url_subscribes_and_wraps_payloads(sim):
    """/stream?streams=a@bookTicker/b@ticker subscribes from the URL alone; every payload comes wrapped as
    {"stream": ..., "data": <the bare payload>}; SUBSCRIBE works there too; unknown streams send nothing."""
    btc, eth = sim.symbols("binance")[:2]
    url = f"ws://127.0.0.1:{sim.port}/binance/stream?streams=btcusdt@bookTicker/ethusdt@ticker/nopeusdt@ticker"
    venue = sim.exchanges["binance"].venue
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        first = [orjson.loads((await ws.receive(timeout=5)).data) for _ in range(2)]
        assert {f["stream"] for f in first} == {"btcusdt@bookTicker", "ethusdt@ticker"}
        good = sim.last_good("binance")
        book = next(f["data"] for f in first if f["stream"] == "btcusdt@bookTicker")
        assert book == orjson.loads(venue.book_ticker(venue.by_symbol[btc], good[btc]))
        ticker = next(f["data"] for f in first if f["stream"] == "ethusdt@ticker")
        assert ticker == orjson.loads(venue.ticker(venue.by_symbol[eth], good[eth]))
        await ws.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": ["solusdt@bookTicker"], "id": 7}).decode())
        assert orjson.loads((await ws.receive(timeout=5)).data) == {"result": None, "id": 7}
        snap = orjson.loads((await ws.receive(timeout=5)).data)
        assert snap["stream"] == "solusdt@bookTicker" and snap["data"]["s"] == "SOLUSDT"
        assert sim.exchanges["binance"].state()["subscriptions"] == 3
        sim.set_rate("binance", 200, count=12)  # two rounds over the 6 symbols: 6 frames on this socket
        await sim.drained("binance")
        frames = [orjson.loads((await ws.receive(timeout=5)).data) for _ in range(6)]
        assert all(set(f) == {"stream", "data"} for f in frames)
        assert {f["stream"] for f in frames} == {"btcusdt@bookTicker", "ethusdt@ticker", "solusdt@bookTicker"}


async def test_cryptofeed_reads_the_simulated_binance(sim, monkeypatch):
    """The peer as the benchmark runs it: cryptofeed's Binance feed with its two URLs pointed at the
    simulator gets its symbol list from exchangeInfo and every bookTicker value as sent."""
    pytest.importorskip("cryptofeed")
    import cryptofeed.feed
    from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint, WSAsyncConn
    from cryptofeed.defines import TICKER
    from cryptofeed.exchanges import Binance
    from cryptofeed.symbols import Symbols

    class LoopbackWS(WSAsyncConn):  # cryptofeed accepts wss:// only; the simulator is plain ws
        def __init__(self, address, *args, **kw):
            super().__init__("wss://" + address.removeprefix("ws://"), *args, **kw)
            self.address = address

    monkeypatch.setattr(cryptofeed.feed, "WSAsyncConn", LoopbackWS)
    base = f"127.0.0.1:{sim.port}/binance"

    class SimBinance(Binance):
        websocket_endpoints = [WebsocketEndpoint(f"ws://{base}")]  # noqa: RUF012
        rest_endpoints = [RestEndpoint(f"http://{base}", routes=Routes("/api/v3/exchangeInfo"))]  # noqa: RUF012

    seen: dict[str, tuple[float, float]] = {}

    async def on_ticker(t, receipt):
        seen[t.symbol] = (float(t.bid), float(t.ask))

    try:
        # cryptofeed reads the symbol list with blocking `requests`: off this loop, which serves the simulator
        mapping = await asyncio.to_thread(SimBinance.symbol_mapping, True)
        assert mapping == {m["symbol"].replace("/", "-"): m["id"] for m in sim.markets("binance")}
        feed = SimBinance(symbols=list(mapping), channels=[TICKER], callbacks={TICKER: on_ticker},
                          config={"log": {"disabled": True}})
        feed.start(asyncio.get_running_loop())
        await eventually(lambda: len(seen) == len(mapping), 10, what="a snapshot of every symbol")
        sim.set_rate("binance", 200, count=30)
        await sim.drained("binance")
        good = sim.last_good("binance")
        want = {s.replace("/", "-"): (q.bid, q.ask) for s, q in good.items()}
        await eventually(lambda: seen == want, 10, what="cryptofeed to see every last bid/ask")
        feed.stop()
        await feed.shutdown()
    finally:
        Symbols.clear()

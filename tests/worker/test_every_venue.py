"""Every simulated exchange, end to end: simulator -> real ccxt -> real worker process -> Redis."""

from __future__ import annotations

import pytest

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.worker.helpers import settings_for, start_worker, stored

# What each venue's stored tick carries: (has base volume, time = the frame's exchange timestamp).
# Binance spot's bookTicker (subscribed beside the ticker stream) has no timestamp: its arrival time
# is newer than the ticker's exchange time, so the stored time is that arrival.
VENUES = {
    "binance": (True, False),
    "okx": (True, True),
    "bybit": (True, True),
    "kraken": (True, False),  # websocket v2 ticker frames have no timestamp
    "hyperliquid": (False, False),  # activeAssetCtx: no base volume, no timestamp
    "coinbase": (True, True),
    # mixed markets on several sockets (bybit spot/linear/inverse, gate spot/USDT/BTC, krakenfutures
    # futures/perpetuals), futures tickers without bid/ask (binance USD-M/COIN-M, gate futures): every
    # symbol must arrive, with bid/ask from the bid/ask stream where the ticker has none
    "gate": (True, False),  # tickers carry no timestamp
    "krakenfutures": (True, False),  # ccxt reads `lastTime`, which the frames lack
    "binanceusdm": (True, False),  # the bookTicker's E is later than the ticker's C
    "binancecoinm": (True, False),
    "kucoin": (False, False),  # /market/ticker has no 24h volume
}


@pytest.mark.parametrize("venue", sorted(VENUES))
async def test_redis_equals_what_the_exchange_sent(venue, redis_db):
    """After a burst, every symbol's stored last/bid/ask (and volume, time where the venue has them)
    equals the last frame the simulator sent."""
    has_volume, has_time = VENUES[venue]
    async with Simulator([SimExchange(venue, symbols=8, rate=0)]) as sim:
        proc = start_worker(settings_for(sim, venue), venue, sim.symbols(venue))
        try:
            async def match():
                got = await stored(redis_db, venue)
                good = sim.last_good(venue)
                return bool(good) and all(
                    (t := got.get(s)) is not None and t["last"] == q.last and t["bid"] == q.bid and t["ask"] == q.ask
                    for s, q in good.items())

            await eventually(match, 40, 0.05, f"{venue} snapshot in redis")
            sim.set_rate(venue, 300, count=120)
            await sim.drained(venue)
            await eventually(match, 15, 0.05, f"{venue} burst values in redis")
            got = await stored(redis_db, venue)
            for s, q in sim.last_good(venue).items():
                t = got[s]
                assert t["price"] == q.last and t["exchange"] == venue and t["symbol"] == s
                inverse = next(m for m in sim.markets(venue) if m["symbol"] == s).get("inverse")
                if has_volume and not inverse:  # inverse contracts report volume in USD contracts
                    assert t["volume"] == pytest.approx(q.volume, rel=1e-9)
                if has_time:
                    assert t["time"] == q.ts_ms / 1000
                else:
                    assert q.ts_ms / 1000 - 1 <= t["time"] <= q.ts_ms / 1000 + 5
        finally:
            proc.kill()
            proc.join(5)

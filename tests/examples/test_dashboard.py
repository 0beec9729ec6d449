"""examples/dashboard.py as a process: every cached ticker over HTTP, equal to Redis, with its age."""

from __future__ import annotations

import re
import signal
import time

import aiohttp
import orjson

from tests.examples.conftest import VENUE
from tests.examples.helpers import put_tick, running, script_env
from tests.worker.helpers import stored

FIELDS = ("symbol", "exchange", "price", "volume", "time", "bid", "ask", "last", "change", "percentage")


async def base_url(p) -> str:  # type: ignore[no-untyped-def]
    line = await p.wait_line("on", timeout=10)
    m = re.search(r"http://(127\.0\.0\.1):(\d+)/tickers", line)
    assert m, line
    return f"http://127.0.0.1:{m.group(2)}"


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(url) as resp:
        return resp.status, orjson.loads(await resp.read())


def check_ticker(got: dict, want: dict, now: float) -> None:
    for f in FIELDS:
        assert got[f] == want[f], (f, got, want)
    assert got["age"] == round(now - want["time"], 3)
    assert got["iso_time"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(want["time"])))


async def test_dashboard_serves_every_ticker_equal_to_redis(live, redis_db, tmp_path):
    """A real worker's exchange plus a second one: /tickers has every symbol of both with the
    stored values and their age; /tickers/{exchange} and /tickers/{exchange}/{symbol} agree;
    unknown names are 404; SIGTERM stops it cleanly. It listens on 127.0.0.1 by default."""
    old = time.time() - 42
    await put_tick(redis_db, "testex", "AAA/USD", 1.5, when=old)
    await put_tick(redis_db, "testex", "BBB/USD:USD", 2.25, bid=None, ask=None, change=None)
    want = {ex: await stored(redis_db, ex) for ex in (VENUE, "testex")}
    for symbol, q in live.last_good(VENUE).items():
        assert want[VENUE][symbol]["price"] == q.last

    async with running("dashboard.py", "--port", "0", cwd=tmp_path) as p, aiohttp.ClientSession() as session:
        base = await base_url(p)
        status, body = await get(session, f"{base}/tickers")
        assert status == 200
        assert sorted(body["exchanges"]) == [VENUE, "testex"]
        assert body["count"] == len(want[VENUE]) + 2 == 8
        for ex, tickers in body["exchanges"].items():
            assert [t["symbol"] for t in tickers] == sorted(want[ex])
            for t in tickers:
                check_ticker(t, want[ex][t["symbol"]], body["time"])
        aged = next(t for t in body["exchanges"]["testex"] if t["symbol"] == "AAA/USD")
        assert 41.5 < aged["age"] < 60

        status, one = await get(session, f"{base}/tickers/{VENUE}")
        assert status == 200 and one["exchange"] == VENUE and one["count"] == 6
        for t in one["tickers"]:
            check_ticker(t, want[VENUE][t["symbol"]], one["time"])

        symbol = live.symbols(VENUE)[0]
        status, t = await get(session, f"{base}/tickers/{VENUE}/{symbol}")
        assert status == 200 and t["symbol"] == symbol and t["price"] == want[VENUE][symbol]["price"]
        status, t = await get(session, f"{base}/tickers/testex/BBB/USD:USD")
        assert status == 200 and t["bid"] is None

        assert (await get(session, f"{base}/tickers/nosuch"))[0] == 404
        assert (await get(session, f"{base}/tickers/{VENUE}/NOPE/USDT"))[0] == 404

        # Values are read per request: a new price shows up in the next response.
        await put_tick(redis_db, "testex", "AAA/USD", 1.75)
        status, t = await get(session, f"{base}/tickers/testex/AAA/USD")
        assert status == 200 and t["price"] == 1.75 and t["age"] < 5

        p.proc.send_signal(signal.SIGTERM)
        assert await p.exit_code() == 0


async def test_dashboard_answers_503_while_redis_is_unreachable(tmp_path):
    async with running("dashboard.py", "--port", "0", cwd=tmp_path, env=script_env(REDIS_PORT="1")) as p, \
            aiohttp.ClientSession() as session:
        base = await base_url(p)
        status, body = await get(session, f"{base}/tickers")
        assert status == 503 and "Redis unavailable" in body["error"]
        status, body = await get(session, f"{base}/tickers/binance/BTC/USDT")
        assert status == 503
        p.proc.send_signal(signal.SIGTERM)
        assert await p.exit_code() == 0

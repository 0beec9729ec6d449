"""metrics.py: Prometheus text from real health records (real supervisor, workers, simulator) and the endpoint."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import orjson
import pytest

from fullon_ticker_service import health, metrics, status
from tests.conftest import eventually
from tests.ops.helpers import free_port, parse_exposition, running, series, settings
from tests.supervisor.helpers import NAMESPACE, write_config

P = "fullon_ticker_"


async def test_render_matches_the_real_records_and_follows_a_stop(sim, redis_db, procs, tmp_path):
    """Every exported value equals the worker's own health record; rejections by reason; stop -> down."""
    cfg = write_config(tmp_path / "c.toml", sim, {n: {"symbols": sim.symbols(n)} for n in ("binance", "okx")})
    sup = procs("up", "-c", str(cfg))
    await eventually(lambda: running(cfg, ("binance", "okx")), 40, 0.3, "2 running workers")
    await sim.fault("binance", "negative", count=3)

    async def rejected():
        raw = await redis_db.get(f"{NAMESPACE}:health:binance")
        return raw and orjson.loads(raw)["rejected"].get("not_positive", 0) >= 3

    await eventually(rejected, 20, 0.1, "3 negative prices rejected by the binance worker")
    s = settings(cfg)
    supervisor, records = await asyncio.to_thread(status.collect, s)
    now = time.time()
    types, samples = parse_exposition(metrics.render(supervisor, records, now, s.service.health_interval))

    assert series(samples, P + "supervisor_up") == 1 and series(samples, P + "redis_reachable") == 1
    for ex in ("binance", "okx"):
        doc = orjson.loads(records[ex])
        rec = health.decode(ex, records[ex], now, s.service.health_interval)
        assert series(samples, P + "up", exchange=ex) == 1
        for word in metrics.STATUS_WORDS:
            assert series(samples, P + "status", exchange=ex, status=word) == (word == "running")
        expect = {"ticks_total": doc["ticks"], "ticks_per_second": doc["ticks_per_s"],
                  "reconnects_total": doc["reconnects"], "stale_reconnects_total": doc["stale_reconnects"],
                  "written_total": doc["written"], "redis_round_trips_total": doc["redis_round_trips"],
                  "flushes_total": doc["flushes"], "older_in_redis_total": doc["older_in_redis"],
                  "pending": doc["pending"], "symbols": 6, "restarts_total": 0, "worker_redis_up": 1,
                  "last_flush_seconds": pytest.approx(doc["last_flush_ms"] / 1000.0),
                  "last_tick_age_seconds": pytest.approx(rec.last_tick_age_s, abs=1e-3),
                  "health_record_age_seconds": pytest.approx(now - doc["updated_at"], abs=1e-3)}
        got = {name: series(samples, P + name, exchange=ex) for name in expect}
        assert got == expect, ex
        assert doc["ticks"] > 0 and doc["written"] > 0
        for reason, count in doc["rejected"].items():
            assert series(samples, P + "rejected_total", exchange=ex, reason=reason) == count
    assert series(samples, P + "rejected_total", exchange="binance", reason="not_positive") >= 3
    assert types[P + "ticks_total"] == "counter" and types[P + "ticks_per_second"] == "gauge"

    sup.send_signal(signal.SIGTERM)
    await eventually(lambda: sup.poll() is not None, 20, what="supervisor exit")
    assert sup.returncode == 0
    _, samples = parse_exposition(await asyncio.to_thread(metrics.scrape, s))
    assert series(samples, P + "supervisor_up") == 0
    for ex in ("binance", "okx"):
        assert series(samples, P + "up", exchange=ex) == 0
        assert series(samples, P + "status", exchange=ex, status="stopped") == 1
        assert series(samples, P + "status", exchange=ex, status="running") == 0


async def test_endpoint_serves_live_records_on_loopback(sim, redis_db, procs, tmp_path):
    """GET /metrics on a free loopback port returns parseable text read from Redis at each request."""
    cfg = write_config(tmp_path / "c.toml", sim, {"okx": {"symbols": sim.symbols("okx")}})
    s = settings(cfg)
    port = free_port()
    server = asyncio.create_task(metrics.serve(s, "127.0.0.1", port))
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession() as http:
            async def get():
                try:
                    async with http.get(url) as r:
                        return r.status, r.headers["Content-Type"], await r.text()
                except aiohttp.ClientConnectionError:
                    return None

            code, ctype, text = await eventually(get, 10, 0.05, "the endpoint listening")
            assert code == 200 and ctype == metrics.CONTENT_TYPE
            _, samples = parse_exposition(text)
            assert series(samples, P + "supervisor_up") == 0  # nothing runs yet
            assert not [k for k in samples if k[0] == P + "up"]

            procs("up", "-c", str(cfg))

            async def okx_up():
                got = await get()
                samples = got and parse_exposition(got[2])[1]
                return samples and series(samples, P + "up", exchange="okx") == 1 and \
                    series(samples, P + "ticks_total", exchange="okx") > 0 and got

            _, _, text = await eventually(okx_up, 40, 0.3, "okx up with ticks in the served metrics")
            _, samples = parse_exposition(text)
            assert series(samples, P + "supervisor_up") == 1 and series(samples, P + "ticks_total", exchange="okx") > 0
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
    with pytest.raises(OSError):  # cleanup closed the listening socket
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()


async def test_redis_unreachable_is_a_gauge_not_an_error(tmp_path):
    """With Redis down the scrape still answers 200: redis_reachable 0, nothing else made up."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[redis]\nhost = "127.0.0.1"\nport = {free_port()}\n')
    runner, port = await metrics.start(settings(cfg), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.status == 200
            types, samples = parse_exposition(await r.text())
    finally:
        await runner.cleanup()
    assert samples == {(P + "redis_reachable", frozenset()): 0}
    assert types == {P + "redis_reachable": "gauge"}


def test_label_values_are_escaped():
    """A rejection reason with quotes, a backslash and a newline stays one valid series."""
    now = 1_763_700_000.0
    rec = {"status": "running", "pid": 7, "started_at": now - 10, "updated_at": now - 0.1, "interval": 5.0,
           "symbols": 1, "ticks": 5, "rejected": {'we"ird\\one\nx': 2}, "last_tick_age_s": 0.2}
    text = metrics.render({"pid": 1, "exchanges": {"ex": {"status": "running", "restarts": 1}}},
                          {"ex": orjson.dumps(rec)}, now, 5.0)
    assert 'reason="we\\"ird\\\\one\\nx"} 2\n' in text
    _, samples = parse_exposition(text)
    assert series(samples, P + "rejected_total", exchange="ex", reason='we\\"ird\\\\one\\nx') == 2
    assert series(samples, P + "restarts_total", exchange="ex") == 1
    assert series(samples, P + "last_tick_age_seconds", exchange="ex") == 0.3


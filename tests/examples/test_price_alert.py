"""examples/price_alert.py as a process: alerts on crossings, re-arms, warns on stale prices."""

from __future__ import annotations

import time

from tests.conftest import eventually
from tests.examples.conftest import VENUE
from tests.examples.helpers import put_tick, run, running, script_env
from tests.worker.helpers import stored


async def test_once_alerts_on_the_live_price_from_a_real_worker(live, redis_db, tmp_path):
    """Thresholds just under / over the price the worker stored fire at once (exit 0); a band
    around it never fires and --timeout ends the watch with exit 1."""
    symbol = live.symbols(VENUE)[0]
    price = (await stored(redis_db, VENUE))[symbol]["price"]
    assert price == live.last_good(VENUE)[symbol].last

    rc, out, _ = await run("price_alert.py", symbol, VENUE, "--above", repr(price * 0.999), "--once", "--timeout", "5",
                           cwd=tmp_path)
    alerts = [line for line in out.splitlines() if " ALERT " in line]
    assert rc == 0, out
    assert len(alerts) == 1 and f"{symbol}@{VENUE} price {price} above {price * 0.999}" in alerts[0]

    rc, out, _ = await run("price_alert.py", symbol, VENUE, "--below", repr(price * 1.001), "--once", "--timeout", "5",
                           cwd=tmp_path)
    assert rc == 0, out
    assert f"price {price} below {price * 1.001}" in out

    t0 = time.monotonic()
    rc, out, _ = await run("price_alert.py", symbol, VENUE, "--above", repr(price * 1.001), "--below",
                           repr(price * 0.999), "--once", "--timeout", "1", "--interval", "0.1", cwd=tmp_path)
    assert rc == 1, out
    assert " ALERT " not in out and " STOP " in out
    assert time.monotonic() - t0 < 5


async def test_alert_fires_when_the_price_crosses_and_rearms(redis_db, tmp_path):
    """Watching before any tick exists: waits, stays quiet below the line, alerts once when the
    price crosses, does not repeat while it stays above, alerts again after falling back."""
    async with running("price_alert.py", "ETH/USDT", "testex", "--above", "105", "--interval", "0.1", "-v",
                       cwd=tmp_path) as p:
        await p.wait_line("WAIT")
        await put_tick(redis_db, "testex", "ETH/USDT", 100.0)
        await eventually(lambda: len([x for x in p.having("PRICE") if " 100.0 " in x]) >= 3, 5, 0.02, "3 reads at 100")
        assert p.having("ALERT") == []
        assert "ETH/USDT@testex is in the cache: price 100.0" in p.having("OK")[0]

        await put_tick(redis_db, "testex", "ETH/USDT", 110.0)
        alert = await p.wait_line("ALERT")
        assert "ETH/USDT@testex price 110.0 above 105.0" in alert
        seen = len(p.having("PRICE"))
        await eventually(lambda: len(p.having("PRICE")) >= seen + 3, 5, 0.02, "3 more reads at 110")
        assert len(p.having("ALERT")) == 1  # edge-triggered: no repeat while above

        await put_tick(redis_db, "testex", "ETH/USDT", 100.0)
        seen = len(p.having("PRICE"))
        await eventually(lambda: any(" 100.0 " in x for x in p.having("PRICE")[seen:]), 5, 0.02, "a read back at 100")
        await put_tick(redis_db, "testex", "ETH/USDT", 111.0)
        await eventually(lambda: len(p.having("ALERT")) == 2, 5, 0.02, "the second alert")
        assert "price 111.0 above 105.0" in p.having("ALERT")[1]
        assert p.proc.returncode is None  # without --once it keeps watching


async def test_timeout_after_an_alert_exits_0(redis_db, tmp_path):
    """Without --once the watch goes on; --timeout ends it with exit 0 when something alerted."""
    await put_tick(redis_db, "testex", "BTC/USDT", 110.0)
    rc, out, _ = await run("price_alert.py", "BTC/USDT", "testex", "--above", "105", "--interval", "0.1",
                           "--timeout", "0.5", cwd=tmp_path)
    assert rc == 0, out
    assert len([x for x in out.splitlines() if " ALERT " in x]) == 1, out
    assert "1 alert(s)" in out.splitlines()[-1]


async def test_stale_price_warns_and_never_alerts(redis_db, tmp_path):
    """A price beyond the threshold but 60 s old: one stale warning, no alert, exit 1 at --timeout."""
    await put_tick(redis_db, "testex", "BTC/USDT", 200.0, when=time.time() - 60)
    rc, out, _ = await run("price_alert.py", "BTC/USDT", "testex", "--above", "100", "--once", "--stale-after", "5",
                           "--interval", "0.1", "--timeout", "1", cwd=tmp_path)
    assert rc == 1, out
    assert len([x for x in out.splitlines() if " WARN " in x and "stale" in x]) == 1, out
    assert " ALERT " not in out


async def test_stale_then_fresh_alerts(redis_db, tmp_path):
    """Once the stale ticker updates again the watch reports it and the crossing alerts (--once: exit 0)."""
    await put_tick(redis_db, "testex", "BTC/USDT", 200.0, when=time.time() - 60)
    async with running("price_alert.py", "BTC/USDT", "testex", "--above", "100", "--once", "--stale-after", "5",
                       "--interval", "0.1", "--timeout", "10", cwd=tmp_path) as p:
        await p.wait_line("WARN")
        assert p.having("ALERT") == []
        await put_tick(redis_db, "testex", "BTC/USDT", 201.0)
        assert "price 201.0 above 100.0" in await p.wait_line("ALERT")
        assert await p.exit_code() == 0
        assert [x for x in p.having("OK") if "BTC/USDT@testex is updating again: price 201.0" in x]


async def test_redis_unreachable_is_reported_not_fatal(tmp_path):
    """Nothing listens on port 1: one error line, the loop keeps polling, --timeout exits 1."""
    rc, out, err = await run("price_alert.py", "BTC/USDT", "binance", "--above", "1", "--interval", "0.1",
                             "--timeout", "1", cwd=tmp_path, env=script_env(REDIS_PORT="1"))
    assert rc == 1, (out, err)
    assert len([x for x in out.splitlines() if " ERROR " in x and "cannot read Redis" in x]) == 1, out
    assert "Traceback" not in err


async def test_bad_arguments_and_config_exit_2(tmp_path):
    rc, _, err = await run("price_alert.py", "BTC/USDT", "binance", cwd=tmp_path)
    assert rc == 2 and "give --above and/or --below" in err
    rc, _, err = await run("price_alert.py", "BTC/USDT", "binance", "--above", "1", "-c", str(tmp_path / "none.toml"),
                           cwd=tmp_path)
    assert rc == 2 and "configuration error" in err and "none.toml" in err

"""install(): the hook on ccxt's real ws Client objects, offline (frames fed to the client method
ccxt calls for every text frame; no socket)."""

from __future__ import annotations

from typing import Any

import ccxt.pro as ccxtpro
import orjson
import pytest

from fullon_ticker_service.native import BinanceDecoder, build_decoder, install
from tests.native import frames as F

URL = F.BINANCE_SPOT_URL


@pytest.fixture
async def binance():
    ex = ccxtpro.binance()
    ex.set_markets(F.EDGE_MARKETS["binance"])
    yield ex
    await ex.close()


class Spy:
    def __init__(self, client: Any) -> None:
        self.calls: list[Any] = []
        self.orig = client.on_message_callback
        client.on_message_callback = self

    def __call__(self, client: Any, msg: Any) -> Any:
        self.calls.append(msg)
        return self.orig(client, msg)


async def test_decoded_frames_go_to_on_tick_not_ccxt(binance):
    ticks = []
    inst = install(binance, build_decoder(binance), lambda *a: ticks.append(a))
    client = binance.client(URL)
    assert "handle_text_or_binary_message" in client.__dict__
    spy = Spy(client)
    book = F.edge("binance", "book")
    client.handle_text_or_binary_message(book)
    assert spy.calls == []
    [(stream, symbol, t)] = ticks
    assert (stream, symbol, t["bid"], t["ask"]) == ("bidask", "ETH/USDT", 28621.74, 28621.75)
    assert binance.bidsasks["ETH/USDT"] is t  # stored where ccxt would store it
    assert inst.stats.decoded == 1 and inst.stats.ticks == 1 and inst.stats.passed == 0


async def test_declined_frames_reach_ccxt_parsed_once(binance):
    ticks = []
    inst = install(binance, build_decoder(binance), lambda *a: ticks.append(a))
    client = binance.client(URL)
    spy = Spy(client)
    ack = '{"result":null,"id":1}'
    client.handle_text_or_binary_message(ack)
    client.handle_text_or_binary_message("not json")  # ccxt's own method: a plain string
    client.handle_text_or_binary_message(F.edge("binance", "ticker unknown symbol"))
    assert spy.calls[0] == {"result": None, "id": 1}
    assert spy.calls[1] == "not json"
    assert spy.calls[2]["s"] == "NOPEUSDT" and "NOPEUSDT" in binance.tickers  # ccxt stored it, as always
    assert ticks == [] and inst.stats.passed == 2  # (the non-JSON text never reached the decoder)


async def test_clients_created_before_install_are_hooked_and_uninstall_restores(binance):
    early = binance.client(URL)
    ticks = []
    inst = install(binance, build_decoder(binance), lambda *a: ticks.append(a))
    late = binance.client("wss://fstream.binance.com/ws")
    for c in (early, late):
        c.handle_text_or_binary_message(F.edge("binance", "book futures"))
    assert len(ticks) == 2
    inst.uninstall()
    assert "client" not in binance.__dict__
    assert "handle_text_or_binary_message" not in early.__dict__
    spy = Spy(early)
    early.handle_text_or_binary_message(F.edge("binance", "book"))
    assert len(ticks) == 2 and len(spy.calls) == 1 and binance.bidsasks["ETH/USDT"]["bid"] == 28621.74
    install(binance, build_decoder(binance), lambda *a: None)  # can be installed again


async def test_markets_reloaded_rebuild_the_decoder(binance):
    ticks = []
    install(binance, build_decoder(binance), lambda *a: ticks.append(a))
    client = binance.client(URL)
    frame = F.dumps({**orjson.loads(F.edge("binance", "book")), "s": "ADAUSDT"})
    client.handle_text_or_binary_message(frame)  # unknown market: ccxt's
    assert ticks == []
    binance.set_markets([*F.EDGE_MARKETS["binance"], F._m("ADAUSDT", "ADA/USDT", "spot")])
    client.handle_text_or_binary_message(frame)
    assert ticks[0][1] == "ADA/USDT"


async def test_shadow_compares_with_ccxt_and_reports_differences(binance):
    class Wrong(BinanceDecoder):
        def _decode(self, msg, client):
            out = super()._decode(msg, client)
            if out:
                out[0][2]["bid"] = 1.0
            return out

    mismatches, ticks = [], []
    inst = install(binance, Wrong.from_exchange(binance), lambda *a: ticks.append(a), shadow_every=2,
                   on_mismatch=mismatches.append)
    client = binance.client(URL)
    spy = Spy(client)
    for _ in range(6):
        client.handle_text_or_binary_message(F.edge("binance", "book"))
    assert inst.stats.decoded == 6 and inst.stats.shadowed == 3 and len(spy.calls) == 3
    assert len(mismatches) == 3
    m = mismatches[0]
    assert (m.stream, m.symbol, m.fields, m.error) == ("bidask", "ETH/USDT", [("bid", 1.0, 28621.74)], None)
    assert binance.bidsasks["ETH/USDT"] is ticks[-1][2]  # ours is what stays stored


async def test_shadow_of_a_correct_decoder_finds_nothing(binance):
    mismatches = []
    inst = install(binance, build_decoder(binance), lambda *a: None, shadow_every=1,
                   on_mismatch=mismatches.append)
    client = binance.client(URL)
    for _label, url, text in F.binance_edges():
        c = binance.client(url)
        try:
            c.handle_text_or_binary_message(text)
        except Exception:
            pass
    assert client is binance.client(URL)
    assert inst.stats.shadowed == inst.stats.decoded > 50
    assert mismatches == []
    assert inst.stats.omitted == {"datetime"}


async def test_bybit_state_is_shared_with_ccxt():
    """A delta left to ccxt merges into what the decoder stored, and vice versa."""
    ex = ccxtpro.bybit()
    ex.set_markets(F.EDGE_MARKETS["bybit"])
    try:
        ticks = []
        install(ex, build_decoder(ex), lambda *a: ticks.append(a), shadow_every=1,
                on_mismatch=lambda m: pytest.fail(str(m)))
        client = ex.client(F.BYBIT_LINEAR_URL)
        client.handle_text_or_binary_message(F.edge("bybit", "snapshot linear (shared id)"))
        with pytest.raises(ValueError):  # ccxt raises on it: not decoded, ccxt's (unguarded) as before
            client.handle_text_or_binary_message(F.edge("bybit", "delta NaN last"))
        assert len(ticks) == 1
        client.handle_text_or_binary_message(F.edge("bybit", "delta after NaN"))
        assert ticks[-1][2]["last"] == 28562.0 and ticks[-1][2]["info"]["openInterestValue"] == "1506861070.82"
    finally:
        await ex.close()


async def test_on_tick_errors_and_guard(binance):
    errors = []

    def on_tick(*a):
        raise RuntimeError("consumer bug")

    inst = install(binance, build_decoder(binance), on_tick, on_error=errors.append, guard=True)
    client = binance.client(URL)
    client.handle_text_or_binary_message(F.edge("binance", "book"))
    client.handle_text_or_binary_message(F.edge("binance", "ticker NaN last"))  # ccxt raises ValueError
    assert inst.stats.tick_errors == 1 and inst.stats.ccxt_errors == 1
    assert [type(e) for e in errors] == [RuntimeError, ValueError]


async def test_without_guard_ccxt_raises_as_before(binance):
    install(binance, build_decoder(binance), lambda *a: None)
    client = binance.client(URL)
    with pytest.raises(ValueError):
        client.handle_text_or_binary_message(F.edge("binance", "ticker NaN last"))
    with pytest.raises(orjson.JSONDecodeError):
        client.handle_text_or_binary_message('{"e":"24hrTicker","s":')  # ccxt's own parse error


async def test_install_twice_is_refused(binance):
    install(binance, build_decoder(binance), lambda *a: None)
    with pytest.raises(RuntimeError):
        install(binance, build_decoder(binance), lambda *a: None)

"""A client that vanishes in the middle of the websocket handshake (the demo stopped while a worker was
connecting) costs one quiet response, never a traceback: a fresh-machine run of the demo's Ctrl-C test
printed aiohttp's "Call .prepare() first" when the simulator returned the half-prepared websocket.

The fault sits between two writes inside aiohttp's handshake, which no real client can time; aiohttp's
own mocked request stands in, with a writer whose header write finds the connection closed."""

from __future__ import annotations

import base64
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from fullon_ticker_service.sim import SimExchange, Simulator

UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(), "Host": "127.0.0.1"}


async def test_a_handshake_cut_short_ends_quietly_and_drops_the_connection():
    sim = Simulator([SimExchange("binance", symbols=2, rate=0)])
    transport = mock.Mock()
    transport.is_closing.return_value = False
    writer = mock.Mock()

    async def closed(*_: object) -> None:
        raise ConnectionResetError("Cannot write to closing transport")

    writer.write_headers = closed
    request = make_mocked_request("GET", "/binance/ws", headers=UPGRADE, writer=writer, transport=transport,
                                  match_info={"venue": "binance", "tail": "/ws"})
    resp = await sim._http_venue(request)
    transport.abort.assert_called_once()
    assert not sim.exchanges["binance"].conns
    # what aiohttp's finish_response does with the returned response: a ConnectionError (ignored there
    # as a premature disconnection) is the only acceptable failure
    with pytest.raises(ConnectionError):
        await resp.prepare(request)
        await resp.write_eof()

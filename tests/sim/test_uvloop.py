"""The simulator on uvloop, the loop the benchmark runs it on. uvloop's transports are not
`asyncio.WriteTransport` instances: the simulator's send fast path and its abort must not depend on
that (they did: on uvloop every send took the timer path, and a client cut off stayed connected)."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from fullon_ticker_service.sim import SimExchange, Simulator
from tests.conftest import eventually
from tests.sim.test_faults import VENUE, _silent_client, state


def _read_to_end(s: socket.socket, within: float) -> str:
    """Drain what the socket holds: "eof" or "reset" once the peer cut it, "open" if it still is."""
    s.settimeout(within)
    try:
        while s.recv(1 << 16):
            pass
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "open"
    return "eof"


def test_on_uvloop_a_client_that_stops_reading_is_cut_off():
    async def scenario() -> str:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        async with Simulator([SimExchange(VENUE, symbols=1, rate=0)]) as sim:
            silent = await asyncio.to_thread(_silent_client, sim, sim.markets(VENUE)[0]["id"].lower())
            try:
                await eventually(lambda: state(sim)["subscriptions"] == 1, 3, what="the silent client subscribed")
                sim.set_rate(VENUE, 4000)  # its socket buffers fill in seconds
                await eventually(lambda: state(sim)["connections"] == 0, 30, 0.05, "the silent client dropped")
                sim.set_rate(VENUE, 0)
                return await asyncio.to_thread(_read_to_end, silent, 5)
            finally:
                silent.close()

    assert uvloop.run(scenario()) in ("eof", "reset")

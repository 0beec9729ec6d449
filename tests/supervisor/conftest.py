"""Fixtures shared by the supervisor tests."""

from __future__ import annotations

import os
import signal

import pytest

from tests.supervisor.helpers import tickerctl, worker_pids


@pytest.fixture
def procs(tmp_path):
    """Start `tickerctl ...` processes (output in tmp_path); stop them and any worker left afterwards."""
    started = []

    def start(*args):
        log = tmp_path / f"tickerctl-{len(started)}.log"
        p = tickerctl(*args, log=log)
        p.log = log
        started.append(p)
        return p

    yield start
    for p in started:
        workers = worker_pids(p.pid)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except Exception:
                p.kill()
                p.wait(5)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

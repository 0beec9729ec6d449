"""Restart policy for worker processes (pure): what to do when a worker exits.

- clean exit (0) while wanted -> restart soon (base delay), it is not a crash;
- configuration error (exit 3) -> park as `failed` at once: restarting cannot help;
- crash (anything else, incl. killed by a signal) -> `backoff` with capped, jittered
  exponential delay; the attempt count resets once a worker stayed up `stable_after` seconds;
- more than `max_crashes` crashes inside `window` seconds -> park as `failed`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from fullon_ticker_service.backoff import delay
from fullon_ticker_service.launch import EXIT_CONFIG


@dataclass(frozen=True)
class RestartPolicy:
    base: float = 1.0  # first restart delay (s)
    cap: float = 60.0  # longest restart delay (s)
    stable_after: float = 60.0  # uptime after which the attempt count resets
    max_crashes: int = 5  # crashes inside `window` before the exchange is parked `failed`
    window: float = 300.0
    heartbeat_timeout: float = 30.0  # a running worker whose health is older than this is killed
    start_grace: float = 60.0  # time a new worker has to write its first heartbeat


@dataclass
class RestartState:
    attempt: int = 0
    crashes: list[float] = field(default_factory=list)  # monotonic times of recent crashes


@dataclass(frozen=True)
class Decision:
    status: str  # "backoff" (restart at `start_at`) or "failed" (parked)
    start_at: float | None
    reason: str


def after_exit(state: RestartState, policy: RestartPolicy, exit_code: int | None, uptime: float,
               now: float, rng: random.Random | None = None) -> Decision:
    """Update `state` for a worker that exited with `exit_code` after `uptime` s; decide."""
    if exit_code == EXIT_CONFIG:
        return Decision("failed", None, "configuration error (see last_error); not restarted")
    if uptime >= policy.stable_after:
        state.attempt = 0
    if exit_code == 0:
        return Decision("backoff", now + policy.base, "exited cleanly; restarting")
    state.crashes = [t for t in state.crashes if now - t < policy.window] + [now]
    if len(state.crashes) > policy.max_crashes:
        return Decision("failed", None, f"{len(state.crashes)} crashes in {policy.window:g}s; parked")
    state.attempt += 1
    wait = delay(state.attempt, policy.base, policy.cap, rng)
    signalled = exit_code is not None and exit_code < 0
    what = f"killed by signal {-exit_code}" if signalled else f"exit code {exit_code}"  # type: ignore[operator]
    return Decision("backoff", now + wait, f"crashed ({what}); restart {state.attempt} in {wait:.1f}s")

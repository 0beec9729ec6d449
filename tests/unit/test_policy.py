"""policy.after_exit: what the supervisor does when a worker process exits."""

from __future__ import annotations

import random

import pytest

from fullon_ticker_service.policy import Decision, RestartPolicy, RestartState, after_exit

POLICY = RestartPolicy(base=1.0, cap=60.0, stable_after=60.0, max_crashes=5, window=300.0)
NOW = 10_000.0


def _rng() -> random.Random:
    return random.Random(3)


def test_config_error_fails_at_once() -> None:
    """Exit code 3 (configuration error) parks the exchange as failed, with no restart time."""
    state = RestartState()
    d = after_exit(state, POLICY, 3, uptime=0.5, now=NOW, rng=_rng())
    assert d.status == "failed" and d.start_at is None
    assert "configuration" in d.reason
    assert state.crashes == [] and state.attempt == 0


@pytest.mark.parametrize(("exit_code", "what"), [(1, "exit code 1"), (137, "exit code 137"),
                                                 (None, "exit code None")])
def test_crash_backs_off(exit_code: int | None, what: str) -> None:
    """A crash schedules a restart after the first backoff delay and records the crash."""
    state = RestartState()
    d = after_exit(state, POLICY, exit_code, uptime=5.0, now=NOW, rng=_rng())
    assert d.status == "backoff"
    assert d.start_at is not None and NOW + 0.5 <= d.start_at <= NOW + 1.0
    assert state.attempt == 1 and state.crashes == [NOW]
    assert what in d.reason and "restart 1" in d.reason


def test_consecutive_crashes_grow_the_delay_range() -> None:
    """The n-th crash in a row waits within [base/2, base*2**(n-1)] and counts its attempt."""
    state = RestartState()
    policy = RestartPolicy(base=1.0, cap=60.0, max_crashes=10, window=300.0)
    for n in range(1, 6):
        now = NOW + n
        d = after_exit(state, policy, 1, uptime=1.0, now=now, rng=_rng())
        assert d.status == "backoff" and state.attempt == n
        assert now + 0.5 <= d.start_at <= now + 2 ** (n - 1), (n, d)


def test_delay_is_capped() -> None:
    """However many attempts, the restart is never later than `cap` seconds."""
    state = RestartState(attempt=40)
    d = after_exit(state, RestartPolicy(base=1.0, cap=8.0), 1, uptime=1.0, now=NOW, rng=_rng())
    assert d.status == "backoff" and NOW + 0.5 <= d.start_at <= NOW + 8.0


def test_attempt_resets_after_stable_uptime() -> None:
    """A worker that stayed up `stable_after` seconds restarts with the first-attempt delay."""
    state = RestartState(attempt=6)
    d = after_exit(state, POLICY, 1, uptime=60.0, now=NOW, rng=_rng())
    assert state.attempt == 1
    assert NOW + 0.5 <= d.start_at <= NOW + 1.0


def test_attempt_kept_when_uptime_short() -> None:
    """A worker that crashed before `stable_after` keeps counting attempts."""
    state = RestartState(attempt=6)
    after_exit(state, POLICY, 1, uptime=59.9, now=NOW, rng=_rng())
    assert state.attempt == 7


def test_too_many_crashes_in_window_fails() -> None:
    """The crash after `max_crashes` inside the window parks the exchange as failed."""
    state = RestartState()
    decisions: list[Decision] = [after_exit(state, POLICY, 1, uptime=1.0, now=NOW + 10 * i, rng=_rng())
                                 for i in range(POLICY.max_crashes + 1)]
    assert [d.status for d in decisions] == ["backoff"] * POLICY.max_crashes + ["failed"]
    assert decisions[-1].start_at is None
    assert "6 crashes in 300s" in decisions[-1].reason


def test_crashes_outside_window_are_forgotten() -> None:
    """Crashes older than `window` no longer count toward `max_crashes`."""
    state = RestartState(crashes=[NOW - 400.0, NOW - 350.0, NOW - 300.0, NOW - 299.0, NOW - 10.0])
    d = after_exit(state, POLICY, 1, uptime=1.0, now=NOW, rng=_rng())
    assert d.status == "backoff"
    assert state.crashes == [NOW - 299.0, NOW - 10.0, NOW]


def test_clean_exit_restarts_at_base_delay_without_counting() -> None:
    """Exit code 0 restarts after exactly `base` seconds and is not counted as a crash."""
    state = RestartState(attempt=2, crashes=[NOW - 5.0])
    d = after_exit(state, RestartPolicy(base=2.5), 0, uptime=1.0, now=NOW, rng=_rng())
    assert d == Decision("backoff", NOW + 2.5, "exited cleanly; restarting")
    assert state.crashes == [NOW - 5.0] and state.attempt == 2


def test_clean_exit_after_stable_uptime_resets_attempt() -> None:
    """A clean exit after a stable run also resets the attempt count."""
    state = RestartState(attempt=4)
    after_exit(state, POLICY, 0, uptime=120.0, now=NOW, rng=_rng())
    assert state.attempt == 0


@pytest.mark.parametrize(("exit_code", "signal"), [(-9, "9"), (-15, "15"), (-11, "11")])
def test_signal_exit_is_a_crash_naming_the_signal(exit_code: int, signal: str) -> None:
    """A negative exit code (killed by a signal) is a crash whose reason names the signal."""
    state = RestartState()
    d = after_exit(state, POLICY, exit_code, uptime=1.0, now=NOW, rng=_rng())
    assert d.status == "backoff"
    assert f"killed by signal {signal}" in d.reason
    assert state.crashes == [NOW]


def test_decision_deterministic_with_seed() -> None:
    """The same state, inputs and seed give the same restart time."""
    a = after_exit(RestartState(attempt=3), POLICY, 1, uptime=1.0, now=NOW, rng=random.Random(9))
    b = after_exit(RestartState(attempt=3), POLICY, 1, uptime=1.0, now=NOW, rng=random.Random(9))
    assert a == b and NOW + 0.5 <= a.start_at <= NOW + 8.0

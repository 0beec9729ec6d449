"""outage.Outage: one line when a failure starts, summaries while it lasts, one when it has ended."""

from __future__ import annotations

from fullon_ticker_service.outage import Outage


def run(o: Outage, events: list[tuple[float, str | None]]) -> list[tuple[float, str]]:
    """events: (time, kind or None for a success) -> the lines logged, with their times."""
    out = []
    for t, kind in events:
        line = o.succeeded(t) if kind is None else o.failed(kind, f"detail {kind}", t)
        if line:
            out.append((t, line))
    return out


def test_a_flapping_failure_is_one_line_then_summaries_then_one_end_line() -> None:
    """Failures and successes alternating every second for two minutes (OOM at the memory limit):
    one start line, one summary a minute, no end line until 5 s pass without a failure."""
    o = Outage("Redis writes")
    events: list[tuple[float, str | None]] = []
    for i in range(120):
        events.append((float(i), "OOM" if i % 2 == 0 else None))
    events += [(121.0, None), (125.0, None), (126.5, None)]
    lines = run(o, events)
    assert [t for t, _ in lines] == [0.0, 60.0, 125.0], lines
    assert lines[0] == (0.0, "Redis writes failing (OOM: detail OOM)")
    assert "still failing (OOM) after 60s: 30 more failures in the last 60s" in lines[1][1]
    assert lines[2][1] == "Redis writes working again after 119.0s (60 failed attempts, OOM)"
    assert not o.active


def test_a_change_of_kind_is_said_once() -> None:
    o = Outage("Redis")
    lines = run(o, [(0, "connection"), (1, "connection"), (2, "OOM"), (3, "OOM")])
    assert [line for _, line in lines] == ["Redis failing (connection: detail connection)",
                                           "Redis still failing, now OOM: detail OOM"]


def test_success_without_an_outage_says_nothing_and_a_short_blip_is_one_outage() -> None:
    o = Outage("Redis", settle=5.0)
    assert run(o, [(0, None), (1, None)]) == []
    lines = run(o, [(10, "timeout"), (11, None), (14, "timeout"), (15, None), (21, None)])
    assert len(lines) == 2 and lines[1] == (21, "Redis working again after 5.0s (2 failed attempts, timeout)")

"""health.decode, process_record and iso: how every reader sees a worker's health record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fullon_ticker_service import health

NOW = 1_763_700_000.0


def _record(**fields: Any) -> bytes:
    doc = {"status": "running", "pid": 4242, "host": "box1", "started_at": NOW - 100.0, "updated_at": NOW - 1.0,
           "symbols": 20, "ticks": 5000, "ticks_per_s": 12.5, "rejected": {"crossed": 2}, "reconnects": 1,
           "last_tick_age_s": 0.25, "stalest": [["BTC/USDT", 3.5], ["ETH/USDT", 2.0]], "redis": "redis://h:6379/0",
           "last_error": ""}
    doc.update(fields)
    return orjson.dumps(doc)


def test_none_is_absent() -> None:
    """No record at all decodes as `absent` with no error and no tick age."""
    h = health.decode("binance", None, NOW)
    assert (h.exchange, h.status, h.last_error, h.last_tick_age_s, h.pid) == ("binance", "absent", "", None, None)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{not json", b"[1, 2]", b"null", b'"running"', b"42", b""],
                         ids=["binary", "truncated", "array", "null", "string", "number", "empty"])
def test_corrupt_record_is_absent_with_error(raw: bytes) -> None:
    """Bytes that are not a JSON object decode as `absent` with last_error explaining why."""
    h = health.decode("okx", raw, NOW)
    assert h.status == "absent"
    assert h.last_error == "corrupt health record"


def test_fresh_record_fields() -> None:
    """A fresh record keeps its status and every field, with the tick age grown by the record's age."""
    h = health.decode("binance", _record(), NOW, interval=5.0)
    assert h.status == "running"
    assert (h.pid, h.host, h.symbols, h.ticks, h.ticks_per_s, h.reconnects) == (4242, "box1", 20, 5000, 12.5, 1)
    assert h.started_at == NOW - 100.0 and h.updated_at == NOW - 1.0
    assert h.uptime_s == 99.0
    assert h.rejected == {"crossed": 2}
    assert h.stalest == [("BTC/USDT", 3.5), ("ETH/USDT", 2.0)]
    assert h.redis == "redis://h:6379/0"
    assert h.last_tick_age_s == pytest.approx(1.25)
    assert h.raw is not None and h.raw["pid"] == 4242


def test_str_record_is_accepted() -> None:
    """A record given as str (decoded Redis reply) decodes like bytes."""
    assert health.decode("binance", _record().decode(), NOW).status == "running"


@pytest.mark.parametrize(("status", "age", "interval", "expected"), [
    ("running", 14.9, 5.0, "running"),
    ("running", 15.0, 5.0, "running"),
    ("running", 15.1, 5.0, "stale"),
    ("starting", 60.0, 5.0, "stale"),
    ("error", 16.0, 5.0, "stale"),
    ("stopping", 100.0, 5.0, "stale"),
    ("stopped", 10_000.0, 5.0, "stopped"),
    ("running", 4.0, 1.0, "stale"),  # 3 intervals of 1 s
    ("running", 59.0, 20.0, "running"),
], ids=["fresh", "at-limit", "just-stale", "starting-stale", "error-stale", "stopping-stale", "stopped-stays",
        "short-interval", "long-interval"])
def test_staleness(status: str, age: float, interval: float, expected: str) -> None:
    """A record not refreshed for more than 3 intervals is `stale`, except a `stopped` record."""
    h = health.decode("kraken", _record(status=status, updated_at=NOW - age), NOW, interval=interval)
    assert h.status == expected


def test_record_interval_wins_over_reader_default() -> None:
    """The record's own `interval` field decides staleness, not the reader's default."""
    raw = _record(updated_at=NOW - 10.0, interval=2.0)
    assert health.decode("kraken", raw, NOW, interval=5.0).status == "stale"
    raw = _record(updated_at=NOW - 20.0, interval=10.0)
    assert health.decode("kraken", raw, NOW, interval=5.0).status == "running"


@pytest.mark.parametrize(("status", "record_age", "tick_age", "expected"), [
    ("running", 0.0, 1.5, 1.5),
    ("running", 4.0, 1.5, 5.5),
    ("running", 30.0, 0.0, 30.0),
    ("running", -2.0, 1.5, 1.5),  # record from a clock ahead of ours: never shrinks
    ("stopped", 50.0, 1.5, 1.5),  # a stopped worker's last age is frozen
    ("running", 3.0, None, None),
], ids=["fresh", "aged", "stale-record", "future-record", "stopped", "no-tick-yet"])
def test_last_tick_age_grows_with_record_age(status: str, record_age: float, tick_age: float | None,
                                             expected: float | None) -> None:
    """last_tick_age_s adds the time since the record was written (not for a stopped worker)."""
    h = health.decode("bybit", _record(status=status, updated_at=NOW - record_age, last_tick_age_s=tick_age), NOW)
    assert h.last_tick_age_s == (None if expected is None else pytest.approx(expected))


def test_minimal_record_defaults() -> None:
    """A record with only status and updated_at decodes with zero counters and empty strings."""
    h = health.decode("okx", orjson.dumps({"status": "starting", "updated_at": NOW}), NOW)
    assert (h.status, h.pid, h.symbols, h.ticks, h.ticks_per_s, h.reconnects) == ("starting", None, 0, 0, 0.0, 0)
    assert (h.rejected, h.stalest, h.host, h.last_error, h.uptime_s) == ({}, [], "", "", 0.0)


@pytest.mark.parametrize("fields", [{"updated_at": "yesterday"}, {"ticks": "many"}, {"stalest": [["BTC/USDT"]]}],
                         ids=["updated_at", "ticks", "stalest"])
def test_wrongly_typed_record_is_corrupt(fields: dict[str, Any]) -> None:
    """A JSON object whose fields have the wrong types decodes as absent/corrupt instead of raising."""
    h = health.decode("okx", _record(**fields), NOW)
    assert h.status == "absent" and h.last_error == "corrupt health record"


# --- fullon ProcessCache record --------------------------------------------------------------

@pytest.mark.parametrize(("ts", "text"), [
    (0.0, "1970-01-01T00:00:00+00:00"),
    (1.5, "1970-01-01T00:00:01.500000+00:00"),
    (1_763_700_000.0, "2025-11-21T04:40:00+00:00"),
])
def test_iso(ts: float, text: str) -> None:
    """iso renders epoch seconds as ISO-8601 in UTC with an explicit +00:00 offset."""
    assert health.iso(ts) == text


def test_process_id() -> None:
    """The fullon process id combines the process type, the exchange and the start time."""
    assert health.process_id("binance", 1_763_700_000.5) == "tick:binance:1763700000.5"


@pytest.mark.parametrize(("status", "fullon"), [
    ("starting", "starting"), ("running", "running"), ("error", "error"), ("stopping", "running"),
    ("stopped", "stopped"), ("degraded", "running"), ("redis-error", "error"), ("clock-skew", "error"),
    ("no-data", "error"),
])
def test_process_record(status: str, fullon: str) -> None:
    """process_record has fullon's ProcessCache fields, its status words and UTC ISO times."""
    rec = health.process_record("tick:okx:1.0", "okx", status, "collecting 20 symbols", 1_763_699_000.0, NOW,
                                {"symbols": 20})
    assert rec == {
        "process_id": "tick:okx:1.0", "process_type": "tick", "component": "okx", "params": {"symbols": 20},
        "status": fullon, "message": "collecting 20 symbols",
        "created_at": "2025-11-21T04:23:20+00:00", "updated_at": "2025-11-21T04:40:00+00:00",
        "heartbeat": "2025-11-21T04:40:00+00:00", "last_seen": NOW,
    }


def test_process_record_rejects_reader_only_status() -> None:
    """Reader-side words (stale, absent) are not worker statuses and cannot be written to fullon."""
    with pytest.raises(KeyError):
        health.process_record("p", "okx", "stale", "", NOW, NOW, {})


# --- judge: running means fresh values are reaching Redis -----------------------------------------
def _f(**kw: Any) -> health.Freshness:
    base = {"wanted": 14, "fresh": 14, "missing_past_grace": 0, "written_ever": 14, "in_grace": False}
    return health.Freshness(**{**base, **kw})


@pytest.mark.parametrize(("phase", "f", "want"), [
    ("running", _f(), ("running", "14/14 symbols")),
    ("starting", _f(fresh=0, written_ever=0), ("starting", "")),
    ("stopping", _f(), ("stopping", "")),
    # coverage: one symbol not written for symbol_stale_after, or never
    ("running", _f(fresh=13, missing_past_grace=1), ("degraded", "13/14 symbols")),
    ("running", _f(fresh=13, in_grace=True), ("starting", "13/14 symbols")),  # the newest still in grace
    # nothing written at all, past the grace: no data (a never-ticked worker)
    ("running", _f(fresh=0, written_ever=0, missing_past_grace=14), ("no-data", "no value written yet")),
    ("running", _f(fresh=0, written_ever=0, in_grace=True), ("starting", "0/14 symbols")),
    # Redis refuses writes: before everything else
    ("running", _f(fresh=0, missing_past_grace=14, write_error="OOM"), ("redis-error", "OOM")),
    ("running", _f(write_error="READONLY"), ("redis-error", "READONLY")),
    # the exchange's clock: ahead beyond max_skew (its ticks are rejected), behind beyond max_behind
    ("running", _f(fresh=0, written_ever=0, missing_past_grace=14, clock_offset=3600.0),
     ("clock-skew", "+3600s")),  # the cause, not the symptom
    ("running", _f(fresh=0, missing_past_grace=14, clock_offset=3600.0), ("clock-skew", "+3600s")),
    ("running", _f(clock_offset=-3600.0), ("clock-skew", "-3600s")),
    ("running", _f(clock_offset=9.0), ("running", "14/14 symbols")),
    ("running", _f(clock_offset=-59.0), ("running", "14/14 symbols")),
    # reconnects failing
    ("running", _f(failing="3 failed reconnects: NetworkError"), ("error", "3 failed reconnects: NetworkError")),
])
def test_judge(phase: str, f: health.Freshness, want: tuple[str, str]) -> None:
    assert health.judge(phase, f, max_skew=10.0, max_behind=60.0) == want

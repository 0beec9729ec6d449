"""status.rows / problems / table_text: what `tickerctl ps` and `tickerctl health` report."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fullon_ticker_service import status

NOW = 1_763_700_000.0
INTERVAL = 5.0
REQUIRED_KEYS = {"exchange", "pid", "status", "restarts", "uptime_s", "symbols", "ticks", "ticks_per_s",
                 "last_tick_age_s", "last_error", "cover", "write_age_s", "detail", "last_error_age_s"}


def _health(**fields: Any) -> bytes:
    doc = {"status": "running", "status_detail": "20/20 symbols", "pid": 111, "host": "w1", "started_at": NOW - 600.0,
           "updated_at": NOW - 2.0, "symbols": 20, "ticks": 9000, "ticks_per_s": 15.0, "last_tick_age_s": 0.5,
           "last_write_age_s": 0.5, "coverage": [20, 20], "last_error": ""}
    doc.update(fields)
    return orjson.dumps(doc)


def _sup(exchanges: dict[str, dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"host": "sup-host", "pid": 1, "exchanges": exchanges, **fields}


def _row(supervisor: dict[str, Any] | None, records: dict[str, bytes | None], name: str) -> dict[str, Any]:
    table = status.rows(supervisor, records, NOW, INTERVAL)
    return next(r for r in table if r["exchange"] == name)


def test_running_row_merges_supervisor_and_health() -> None:
    """A running worker's row takes counters from its health record and restarts from the supervisor."""
    row = _row(_sup({"binance": {"status": "running", "pid": 111, "restarts": 2}}),
               {"binance": _health(last_tick_age_s=0.50049)}, "binance")
    assert status.public([row])[0] == {
        "exchange": "binance", "pid": 111, "status": "running", "detail": "20/20 symbols", "restarts": 2,
        "uptime_s": 600.0, "symbols": 20, "cover": [20, 20], "write_age_s": 2.5, "ticks": 9000, "ticks_per_s": 15.0,
        "last_tick_age_s": 2.5, "last_error": "", "last_error_age_s": None, "host": "w1", "token": None,
        "standby": "",
    }


def test_row_keys() -> None:
    """Every row has exactly the documented columns, including all fields the JSON output promises."""
    table = status.public(status.rows(_sup({"okx": {"status": "backoff"}}), {"binance": _health(), "okx": None},
                                      NOW, INTERVAL))
    for row in table:
        assert set(row) == set(status.COLUMNS)
        assert REQUIRED_KEYS <= set(row)
    assert orjson.loads(orjson.dumps(table)) == table


@pytest.mark.parametrize("sup_status", ["backoff", "failed", "stopping", "stopped"])
def test_supervisor_state_overrides_worker_status(sup_status: str) -> None:
    """backoff/failed/stopping/stopped from the supervisor win over the worker's own `running`."""
    sup = _sup({"okx": {"status": sup_status, "restarts": 4, "last_error": "exit code 1"}})
    row = _row(sup, {"okx": _health()}, "okx")
    assert row["status"] == sup_status
    assert row["restarts"] == 4
    assert row["last_error"] == "exit code 1"


@pytest.mark.parametrize(("word", "detail"), [("error", "3 failed reconnects"), ("degraded", "13/14 symbols"),
                                              ("redis-error", "OOM"), ("clock-skew", "+3600s"), ("no-data", "")])
def test_the_workers_judgement_is_the_row_status(word: str, detail: str) -> None:
    """The worker's judged status and its detail are shown as they are (a failing worker used to be
    shown as `stale`, hiding why)."""
    row = _row(_sup({"kraken": {"status": "running"}}),
               {"kraken": _health(status=word, status_detail=detail, last_error="boom", last_error_at=NOW - 30)},
               "kraken")
    assert (row["status"], row["detail"], row["last_error"], row["last_error_age_s"]) == (word, detail, "boom", 30.0)


def test_old_record_shows_as_stale() -> None:
    """A health record older than 3 intervals shows `stale` even though the supervisor says running."""
    row = _row(_sup({"bybit": {"status": "running"}}), {"bybit": _health(updated_at=NOW - 16.0)}, "bybit")
    assert row["status"] == "stale"


@pytest.mark.parametrize(("sv", "expected"), [
    ({"status": "starting", "pid": 77}, "starting"),
    ({"status": "running", "pid": 77}, "running"),
    ({"pid": 77}, "stopped"),
], ids=["starting", "running", "no-status"])
def test_absent_health_with_live_supervisor(sv: dict[str, Any], expected: str) -> None:
    """Without a health record the row shows the live supervisor's status and pid."""
    row = _row(_sup({"hyperliquid": sv}), {}, "hyperliquid")
    assert row["status"] == expected
    assert row["pid"] == 77
    assert (row["ticks"], row["uptime_s"], row["last_tick_age_s"]) == (0, 0.0, None)
    assert row["host"] == "sup-host"


@pytest.mark.parametrize("supervisor", [None, {}, _sup({"okx": {"status": "running"}}, stopped=True)],
                         ids=["none", "empty", "stopped-supervisor"])
def test_without_supervisor_absent_workers_are_stopped(supervisor: dict[str, Any] | None) -> None:
    """With no live supervisor, every worker without a health record is `stopped`."""
    table = status.rows(supervisor, {"binance": None, "okx": None}, NOW, INTERVAL)
    assert [(r["exchange"], r["status"]) for r in table] == [("binance", "stopped"), ("okx", "stopped")]


def test_without_supervisor_live_worker_keeps_its_status() -> None:
    """A worker that still writes health while the supervisor is down shows its own status."""
    row = _row(None, {"coinbase": _health()}, "coinbase")
    assert (row["status"], row["restarts"], row["pid"]) == ("running", 0, 111)


def test_rows_sorted_union_of_supervisor_and_records() -> None:
    """Rows cover exchanges known to the supervisor or to Redis, sorted by name."""
    table = status.rows(_sup({"okx": {"status": "running"}, "binance": {"status": "failed"}}),
                        {"kraken": _health(), "binance": None}, NOW, INTERVAL)
    assert [r["exchange"] for r in table] == ["binance", "kraken", "okx"]


def test_symbols_fall_back_to_supervisor() -> None:
    """Before the worker reports, the symbol count comes from the supervisor's view."""
    row = _row(_sup({"okx": {"status": "starting", "symbols": 12}}), {}, "okx")
    assert row["symbols"] == 12


def test_stopped_record_pid_comes_from_supervisor() -> None:
    """A `stopped` health record does not supply the pid; the supervisor's pid (or None) is shown."""
    row = _row(_sup({"okx": {"status": "stopped"}}), {"okx": _health(status="stopped", pid=999)}, "okx")
    assert row["pid"] is None and row["status"] == "stopped"


# --- problems --------------------------------------------------------------------------------

def _healthy_table() -> list[dict[str, Any]]:
    return status.rows(_sup({"binance": {"status": "running"}, "okx": {"status": "running"}}),
                       {"binance": _health(), "okx": _health(last_write_age_s=1.0)}, NOW, INTERVAL)


def test_problems_empty_when_healthy() -> None:
    """A live supervisor with every exchange running and writing recently has no problems."""
    table = _healthy_table()
    assert status.problems(table, _sup({}), max_age=30.0) == []


@pytest.mark.parametrize("supervisor", [None, _sup({}, stopped=True)], ids=["none", "stopped"])
def test_problems_no_supervisor(supervisor: dict[str, Any] | None) -> None:
    """A missing or stopped supervisor is reported even when every worker is fine."""
    assert status.problems(_healthy_table(), supervisor, max_age=30.0) == [
        "no supervisor is running for this namespace"]


def test_problems_nothing_collected() -> None:
    """An empty table is reported as no exchange being collected."""
    assert status.problems([], _sup({}), max_age=30.0) == ["no exchange is being collected"]


def test_problems_non_running_and_old_writes() -> None:
    """Each non-running exchange and each running one whose last write is too old is listed, in order."""
    sup = _sup({"binance": {"status": "backoff", "last_error": "exit code 1"}, "bybit": {"status": "failed"},
                "kraken": {"status": "running"}, "coinbase": {"status": "running"}})
    records = {"binance": _health(), "bybit": None, "kraken": _health(last_write_age_s=40.0),
               "coinbase": _health(last_write_age_s=1.0)}
    table = status.rows(sup, records, NOW, INTERVAL)
    assert status.problems(table, sup, max_age=30.0) == [
        "binance: backoff: exit code 1",
        "bybit: failed",
        "kraken: last value written 42.0s ago (limit 30s)",
    ]


def test_problems_no_write_yet_is_said_in_words() -> None:
    """A running exchange that has not written anything yet is a problem, said in words."""
    table = status.rows(_sup({}), {"okx": _health(last_write_age_s=None)}, NOW, INTERVAL)
    (issue,) = status.problems(table, _sup({}), max_age=30.0)
    assert issue == "okx: no value written yet"


def test_problems_age_limit_is_exclusive() -> None:
    """A last write exactly max_age old is still healthy; a bit older is a problem."""
    table = status.rows(_sup({}), {"okx": _health(last_write_age_s=28.0)}, NOW, INTERVAL)  # +2 s record age
    assert status.problems(table, _sup({}), max_age=30.0) == []
    table = status.rows(_sup({}), {"okx": _health(last_write_age_s=28.001)}, NOW, INTERVAL)
    assert status.problems(table, _sup({}), max_age=30.0) == ["okx: last value written 30.0s ago (limit 30s)"]


@pytest.mark.parametrize(("fields", "line"), [
    ({"status": "degraded", "status_detail": "13/14 symbols", "coverage": [13, 14], "symbol_stale_after": 300,
      "stale_symbols": [["ETH/USDT", 312.4]], "stale_count": 1},
     "okx: degraded, 13/14 symbols fresh; not written for more than 300s: ETH/USDT"),
    ({"status": "degraded", "status_detail": "7/14 symbols", "coverage": [7, 14], "never_written_count": 7,
      "never_written": ["A/USDT", "B/USDT", "C/USDT", "D/USDT", "E/USDT", "F/USDT", "G/USDT"]},
     "okx: degraded, 7/14 symbols fresh; never written: A/USDT, B/USDT, C/USDT, D/USDT, E/USDT (+2 more)"),
    ({"status": "redis-error", "status_detail": "OOM", "redis_write_error": "OOM command not allowed",
      "last_write_age_s": 40.0},
     "okx: Redis refuses our writes (OOM: OOM command not allowed); values in Redis are 42s old"),
    ({"status": "clock-skew", "status_detail": "+3600s", "clock_offset_s": 3600.2},
     "okx: clock-skew +3600s: the exchange's timestamps run 3600s ahead of this host, so its ticks are rejected "
     "as from the future (max_skew); check this host's clock (NTP)"),
    ({"status": "no-data", "last_tick_age_s": None, "last_write_age_s": None},
     "okx: no-data: nothing written since the start 600s ago (no tick received yet)"),
])
def test_problems_name_the_symbols_and_the_cause(fields: dict[str, Any], line: str) -> None:
    table = status.rows(_sup({}), {"okx": _health(**fields)}, NOW, INTERVAL)
    assert status.problems(table, _sup({}), max_age=60.0) == [line]


def test_coverage_threshold() -> None:
    """--min-coverage: a degraded exchange above the threshold passes."""
    table = status.rows(_sup({}), {"okx": _health(status="degraded", coverage=[19, 20], stale_count=1,
                                                  stale_symbols=[["X/USDT", 400.0]])}, NOW, INTERVAL)
    assert status.problems(table, _sup({}), 60.0, min_coverage=0.9) == []
    assert len(status.problems(table, _sup({}), 60.0, min_coverage=1.0)) == 1


def test_a_redis_refusing_writes_is_named_instead_of_a_missing_supervisor() -> None:
    issues = status.problems([], None, 60.0, redis_problem="OOM: used_memory 1.0 MiB >= maxmemory 1.0 MiB")
    assert issues[:2] == ["Redis refuses writes: OOM: used_memory 1.0 MiB >= maxmemory 1.0 MiB",
                          "no supervisor state in Redis (it cannot be written: see above)"]


def test_frozen_symbols_are_named_with_the_time_redis_holds() -> None:
    future = NOW + 3600
    table = status.rows(_sup({}), {"okx": _health(frozen=[["BTC/USDT", future]], frozen_count=1)}, NOW, INTERVAL)
    (line,) = status.problems(table, _sup({}), 60.0)
    assert line.startswith("okx: BTC/USDT frozen: Redis holds a ticker_time ") and f"({future})" in line


# --- table_text ------------------------------------------------------------------------------

def test_table_text_header_and_rows() -> None:
    """table_text prints a header and one aligned line per row: status (with its detail where the
    coverage column does not say it), coverage, write age, the last error with its age."""
    table = [
        {"exchange": "binance", "pid": 111, "status": "running", "detail": "20/20 symbols", "restarts": 0,
         "uptime_s": 3725.0, "cover": [20, 20], "write_age_s": 0.25, "ticks_per_s": 15.04, "last_error": "",
         "last_error_age_s": None, "host": "h", "token": 7},
        {"exchange": "okx", "pid": 5, "status": "redis-error", "detail": "OOM", "restarts": 0, "uptime_s": 59.0,
         "cover": [0, 14], "write_age_s": 31.0, "ticks_per_s": 50.0, "last_error": "x" * 80,
         "last_error_age_s": 95.0, "host": "h2", "token": None},
    ]
    lines = status.table_text(table).splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["EXCHANGE", "HOST", "TOKEN", "PID", "STATUS", "COVER", "WRITE", "AGE", "RESTARTS",
                                "UPTIME", "TICKS/S", "LAST", "ERROR"]
    assert lines[1].split() == ["binance", "h", "7", "111", "running", "20/20", "0.2s", "0", "1h02m", "15.0"]
    assert lines[2].split() == ["okx", "h2", "-", "5", "redis-error", "OOM", "0/14", "31.0s", "0", "0m59s", "50.0",
                                "(1m35s", "ago)", "x" * 60]
    assert lines[1].index("running") == lines[0].index("STATUS") == lines[2].index("redis-error")


def test_table_text_empty() -> None:
    """With no rows, only the header line is printed."""
    text = status.table_text([])
    assert len(text.splitlines()) == 1


# --- merge: every host's supervisor state into one view ------------------------------------------

def _host_state(host_id: str, exchanges: dict[str, dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"host": "m", "host_id": host_id, "pid": 1, "updated_at": NOW, "exchanges": exchanges, **fields}


def test_merge_prefers_the_lease_holder_and_lists_standbys() -> None:
    """Two hosts report the same exchange (owner and standby during a handover): the row is the
    lease holder's, the standby is named, and host/token come from the lease."""
    a = _host_state("a", {"okx": {"status": "running", "pid": 10, "token": 4}})
    b = _host_state("b", {"okx": {"status": "standby", "pid": 20, "token": None},
                          "kraken": {"status": "running", "pid": 21, "token": 9}})
    merged = status.merge([b, a], {"okx": "4:a:1", "kraken": "9:b:2"})
    assert merged is not None and merged["hosts"] == ["a", "b"]
    assert merged["exchanges"]["okx"]["pid"] == 10 and merged["exchanges"]["okx"]["standby"] == ["b"]
    rows = {r["exchange"]: r for r in status.rows(merged, {}, NOW, INTERVAL)}
    assert (rows["okx"]["host"], rows["okx"]["token"], rows["okx"]["standby"]) == ("a", 4, "b")
    assert (rows["kraken"]["host"], rows["kraken"]["token"]) == ("b", 9)


def test_merge_without_a_lease_shows_the_standby_waiting() -> None:
    """The owner was killed and its lease has not expired yet... then expired: the exchange shows
    as `standby` (not written) until the standby gets the lease."""
    b = _host_state("b", {"okx": {"status": "standby", "pid": 20}})
    rows = status.rows(status.merge([b], {}), {}, NOW, INTERVAL)
    assert rows[0]["status"] == "standby" and rows[0]["host"] == "b"


def test_merge_of_stopped_hosts_only_is_the_latest_stopped_state() -> None:
    old = _host_state("a", {}, stopped=True, updated_at=NOW - 50)
    new = _host_state("b", {}, stopped=True, updated_at=NOW - 5)
    assert status.merge([old, new], {}) is new
    assert status.merge([], {}) is None


def test_unplaced_exchange_is_a_row_and_a_problem() -> None:
    """Two hosts of capacity 1, three exchanges: the one no host has room for is listed as
    `unplaced` with the reason, and `health` names it (nobody collects it)."""
    a = _host_state("a", {"okx": {"status": "running", "pid": 10, "token": 1}}, unplaced=["kraken"])
    b = _host_state("b", {"bybit": {"status": "running", "pid": 20, "token": 1}}, unplaced=["kraken"])
    merged = status.merge([a, b], {"okx": "1:a:1", "bybit": "1:b:2"})
    records = {"okx": _health(pid=10), "bybit": _health(pid=20),
               "kraken": _health(status="stopped", pid=30)}  # its last owner's final record
    rows = {r["exchange"]: r for r in status.rows(merged, records, NOW, INTERVAL)}
    assert sorted(rows) == ["bybit", "kraken", "okx"]
    assert rows["kraken"]["status"] == "unplaced" and "no host has a free worker slot" in rows["kraken"]["last_error"]
    assert "2 live hosts" in rows["kraken"]["last_error"]
    assert (rows["okx"]["status"], rows["bybit"]["status"]) == ("running", "running")
    assert [p for p in status.problems(list(rows.values()), merged, 60) if p.startswith("kraken")] == [
        f"kraken: unplaced: {rows['kraken']['last_error']}"]
    assert "unplaced" in status.table_text(list(rows.values()))


def test_unplaced_is_not_shown_once_a_worker_reports() -> None:
    """The supervisors' `unplaced` lags a tick behind a placement: a live worker's record wins."""
    a = _host_state("a", {"kraken": {"status": "running", "pid": 10, "token": 2}}, unplaced=["kraken"])
    rows = status.rows(status.merge([a], {"kraken": "2:a:1"}), {"kraken": _health(pid=10)}, NOW, INTERVAL)
    assert rows[0]["status"] == "running"

"""End-to-end fault matrix (issue #5): the real supervisor (`tickerctl up`), real worker processes,
real ccxt.pro against the in-process simulator, a private redis-server per test and, for the
PostgreSQL rows, a private PostgreSQL cluster (tests/servers.py). One test per row:

| fault | test |
|---|---|
| one worker `kill -9` | test_processes::test_kill9_worker_restarts_after_backoff_others_keep_advancing |
| crash at start, forever | test_processes::test_crash_loop_backs_off_capped_jittered_then_parks |
| unknown exchange id / unlisted symbol | test_processes::test_unknown_exchange_and_unlisted_symbols_... |
| exchange closes every socket | test_exchange::test_exchange_closes_every_socket_reconnect_within_backoff |
| exchange stalls | test_exchange::test_exchange_stalls_watchdog_reconnects_within_twice_threshold |
| malformed / NaN / negative / crossed / older | test_exchange::test_bad_frames_rejected_counted_last_good_kept |
| exchange refuses connections | test_exchange::test_exchange_refuses_connections_jittered_bounded_retries |
| Redis killed, restarted empty | test_stores::test_redis_killed_then_restarted_empty |
| PostgreSQL stopped during the run | test_stores::test_postgres_stopped_during_run_keeps_catalog_then_applies_changes |
| PostgreSQL down at `up` | test_stores::test_postgres_down_at_up_retries_then_starts |
| SIGTERM to the supervisor under load | test_lifecycle::test_sigterm_under_load_flushes_and_exits_zero |
| SIGKILL to the supervisor | test_lifecycle::test_sigkill_supervisor_orphans_gone_in_2s_new_up_clean |
| two `up` at once | test_lifecycle::test_two_ups_at_once_second_refuses_first_unaffected (+ other_runtime_dir) |

Environment: FAULT_OUTAGE_S (default 8) is the length of the refuse and Redis outages; the issue's
30 s is `FAULT_OUTAGE_S=30 pytest tests/faults` (about 45 s longer). Every other duration follows
from the short settings in the test config (restart_base 0.2-0.3 s, reconnect 0.2 s doubling to
1 s, stale_after 2 s where measured). Each row's measured times are printed at the end of the run
and merged into FAULT_TIMINGS_FILE (default $TEST_RUNTIME_DIR/fault-timings.json).
"""

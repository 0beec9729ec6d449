"""Prints what the replay tests saw per venue (symbols, calls with -v, what ccxt could not parse)."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from tests.replay.test_ccxt_replay import REPORT

    if not REPORT:
        return
    tr = terminalreporter
    verbose = tr.verbosity > 0
    tr.section("ccxt replay of captured frames (symbols parsed per plan; -v lists the calls)")
    for venue, rep in REPORT.items():
        for name, plan in rep["plans"].items():
            line = f"{venue:16} {name:26} ticker {len(plan['ticker']):3}  bidask {len(plan['bidask']):3}"
            if plan["newest_differs"]:
                line += f"  last!=newest: {', '.join(plan['newest_differs'])}"
            if plan["unparsed"] or plan["rejected"]:
                line += f"  unparsed {plan['unparsed']} rejected {plan['rejected']}"
            tr.write_line(line)
            if verbose:
                for call in plan["calls"]:
                    tr.write_line(f"{'':19}{call}")
        if rep["unserved"]:
            tr.write_line(f"{venue:16} not served, no ccxt subscription/handler: {'; '.join(rep['unserved'])}")

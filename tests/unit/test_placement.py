"""placement.place: balanced, capacity-bound, sticky, and a fixed point every host agrees on."""

from __future__ import annotations

import math
import random
import string
from collections import Counter

from fullon_ticker_service.placement import place, weight

NINE = [f"ex{i}" for i in range(9)]


def _loads(assignment: dict[str, str | None]) -> Counter[str | None]:
    return Counter(assignment.values())


def _moves(a: dict[str, str | None], b: dict[str, str | None]) -> int:
    return sum(a[e] != b[e] for e in a)


def test_one_host_owns_everything() -> None:
    """Single-host use is unchanged: the only live host gets every exchange."""
    assert place(NINE, {"solo": 0}) == dict.fromkeys(NINE, "solo")


def test_no_host_places_nothing() -> None:
    assert place(NINE, {}) == dict.fromkeys(NINE)


def test_three_hosts_nine_exchanges_balanced() -> None:
    """Each exchange has exactly one host, three each."""
    got = place(NINE, {"a": 0, "b": 0, "c": 0})
    assert set(got) == set(NINE)
    assert _loads(got) == {"a": 3, "b": 3, "c": 3}


def test_capacity_caps_and_overflow_spills_to_hosts_with_room() -> None:
    """A host never gets more than its capacity; what the balance cap leaves over goes where there is room."""
    got = place(NINE, {"small": 1, "big": 10, "mid": 10})
    loads = _loads(got)
    assert loads["small"] <= 1
    assert sum(loads.values()) == 9 and None not in loads
    assert got == place(NINE, {"small": 1, "big": 10, "mid": 10}, got)  # a fixed point


def test_not_enough_capacity_leaves_exchanges_unplaced() -> None:
    got = place(NINE, {"a": 2, "b": 3})
    assert _loads(got) == {"a": 2, "b": 3, None: 4}


def test_same_inputs_same_answer_whatever_the_order() -> None:
    """Every supervisor computes placement on its own: input order must not matter."""
    a = place(NINE, {"a": 0, "b": 2, "c": 0}, {"ex1": "b", "ex2": "c"})
    b = place(list(reversed(NINE)), {"c": 0, "b": 2, "a": 0}, {"ex2": "c", "ex1": "b"})
    assert a == b


def test_sticky_current_owner_kept_when_within_cap() -> None:
    """An exchange stays with a live owner that has room, whatever its rendezvous rank."""
    current = {"ex0": "c", "ex1": "c", "ex2": "c"}
    got = place(NINE, {"a": 0, "b": 0, "c": 0}, current)
    assert all(got[e] == "c" for e in current)


def test_dead_owner_is_ignored() -> None:
    got = place(NINE, {"a": 0, "b": 0}, dict.fromkeys(NINE, "gone"))
    assert set(got.values()) == {"a", "b"}


def test_overloaded_host_sheds_the_exchanges_it_ranks_lowest() -> None:
    """A host that held everything keeps the ones whose weight for it is highest."""
    got = place(NINE, {"a": 0, "b": 0, "c": 0}, dict.fromkeys(NINE, "a"))
    kept = {e for e, h in got.items() if h == "a"}
    assert len(kept) == 3
    assert kept == set(sorted(NINE, key=lambda e: weight(e, "a"), reverse=True)[:3])


def test_weight_is_stable_across_processes() -> None:
    """Rendezvous weights must agree between hosts: no per-process hash seed."""
    assert weight("binance", "host-1") == 1121323159397132633


def test_join_and_leave_move_only_their_share_over_many_random_clusters() -> None:
    """A joining host moves at most ceil(E/H)+1 exchanges (H counting it), a leaving host only its
    own, loads stay within one of each other, and every result is a fixed point (hosts converge)."""
    rng = random.Random(20261121)
    for _ in range(1500):
        names = ["".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(rng.randint(1, 40))]
        e = len(set(names))
        hosts = {f"h{rng.randrange(10**6)}": 0 for _ in range(rng.randint(1, 8))}
        before = place(names, hosts)
        assert place(names, hosts, before) == before
        joined = {**hosts, f"new{rng.randrange(10**6)}": 0}
        after = place(names, joined, before)
        assert _moves(before, after) <= math.ceil(e / len(joined)) + 1
        assert place(names, joined, after) == after
        loads = [list(after.values()).count(h) for h in joined]
        assert max(loads) - min(loads) <= 1
        gone = rng.choice(sorted(joined))
        left = {h: 0 for h in joined if h != gone}
        if left:
            final = place(names, left, after)
            owned = list(after.values()).count(gone)
            moved = [x for x in after if after[x] != final[x]]
            assert len(moved) <= owned + math.ceil(e / len(left))  # its own, plus rebalancing
            assert all(final[x] in left for x in after)  # nothing left unplaced

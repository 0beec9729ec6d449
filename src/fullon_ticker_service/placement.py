"""Which host collects which exchange: a pure function every supervisor computes the same way.

Inputs are what every host can read from Redis: the exchanges to collect, the live hosts with
their capacity (worker slots; 0 = unlimited), and the current owner of each exchange (its lease
holder). The result is sticky and balanced:

1. keep every exchange with its current owner while that host is live and within its cap
   (`min(capacity, ceil(E/H))`); an overloaded host sheds the exchanges it ranks lowest;
2. every exchange without a host goes to the live host that ranks it highest (rendezvous
   hashing: the weight of (exchange, host) is a hash) and has room, first within the balance
   cap, then within plain capacity;
3. a host below its fair share (`min(capacity, floor(E/H))`) takes the exchanges it ranks highest
   from hosts above the fair share, one at a time (a joining host takes exactly its share).

So a joining host takes about E/H exchanges and nothing else moves; a leaving host's exchanges are
spread by rendezvous weight; a cold start is plain capped rendezvous hashing. Applying the result
again gives the same result (a fixed point), so hosts converge instead of trading exchanges.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping


def weight(exchange: str, host: str) -> int:
    """Rendezvous weight: stable across processes, Python versions and machines."""
    return int.from_bytes(hashlib.blake2b(f"{exchange}\0{host}".encode(), digest_size=8).digest(), "big")


def place(exchanges: Iterable[str], hosts: Mapping[str, int],
          current: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """exchange -> host id (None when every live host is full). `hosts`: host id -> capacity."""
    names = sorted(set(exchanges))
    out: dict[str, str | None] = dict.fromkeys(names)
    if not hosts or not names:
        return out
    limit = {h: c if c > 0 else len(names) for h, c in hosts.items()}
    e, n = len(names), len(hosts)
    cap = {h: min(limit[h], math.ceil(e / n)) for h in hosts}
    fair = {h: min(limit[h], e // n) for h in hosts}
    held: dict[str, list[str]] = {h: [] for h in hosts}
    for ex in names:  # 1. sticky
        owner = (current or {}).get(ex)
        if owner in held:
            held[owner].append(ex)
    for h, mine in held.items():
        mine.sort(key=lambda ex: (weight(ex, h), ex), reverse=True)
        del mine[cap[h]:]  # shed the ones it ranks lowest
        for ex in mine:
            out[ex] = h
    for room in (cap, limit):  # 2. the rest by rendezvous weight, balanced first
        for ex in names:
            if out[ex] is None:
                for h in sorted(hosts, key=lambda h: (weight(ex, h), h), reverse=True):
                    if len(held[h]) < room[h]:
                        held[h].append(ex)
                        out[ex] = h
                        break
    for h in sorted(hosts):  # 3. under-loaded hosts take their share from over-loaded ones
        while len(held[h]) < fair[h]:
            donors = [d for d in hosts if len(held[d]) > fair[d]]
            pool = [(weight(ex, h), ex, d) for d in donors for ex in held[d]]
            if not pool:
                break
            _, ex, d = max(pool)
            held[d].remove(ex)
            held[h].append(ex)
            out[ex] = h
    return out

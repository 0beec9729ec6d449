"""How a repeated failure is told to the operator (pure): once when it starts, a summary while it
lasts, once when it has really ended.

A Redis that refuses writes (OOM) or a flapping link fails and succeeds many times a minute; a
line per change buries the log (14 "unreachable / reachable again" pairs in 21 s were seen). So:
the first failure of an outage is one line naming its kind; a change of kind is one line; while it
lasts, one summary line every `summary_every` seconds; it ends only after `settle` seconds without
a failure, with one line saying how long it lasted and how many attempts failed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outage:
    what: str  # e.g. "Redis writes"
    settle: float = 5.0  # seconds of success before an outage is declared over
    summary_every: float = 60.0
    kind: str = ""  # the current outage's kind ("" = no outage)
    detail: str = ""
    since: float = 0.0
    failures: int = 0
    _ok_since: float | None = None
    _summary_at: float = 0.0
    _summary_failures: int = 0

    @property
    def active(self) -> bool:
        return bool(self.kind)

    def failed(self, kind: str, detail: str, now: float) -> str | None:
        """A failure; returns the line to log, if any."""
        self._ok_since = None
        if not self.kind:
            self.kind, self.detail, self.since, self.failures = kind, detail, now, 1
            self._summary_at, self._summary_failures = now, 0
            return f"{self.what} failing ({kind}: {detail})"
        self.failures += 1
        self._summary_failures += 1
        if kind != self.kind:
            self.kind, self.detail = kind, detail
            return f"{self.what} still failing, now {kind}: {detail}"
        self.detail = detail
        if now - self._summary_at >= self.summary_every:
            line = (f"{self.what} still failing ({kind}) after {now - self.since:.0f}s: "
                    f"{self._summary_failures} more failures in the last {now - self._summary_at:.0f}s")
            self._summary_at, self._summary_failures = now, 0
            return line
        return None

    def succeeded(self, now: float) -> str | None:
        """A success; returns the line to log when it ends an outage (after `settle` s of success)."""
        if not self.kind:
            return None
        if self._ok_since is None:
            self._ok_since = now
        if now - self._ok_since < self.settle:
            return None
        line = (f"{self.what} working again after {self._ok_since - self.since:.1f}s "
                f"({self.failures} failed attempts, {self.kind})")
        self.kind, self.detail, self.failures, self._ok_since = "", "", 0, None
        return line

"""The settler lease of one cycle (``settler.cycle`` takes it): one settler at a time writes
to a buffer's destination; a dead one keeps the others out for at most the lease's TTL."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from buffer.port import SettlingBuffer
from runtime.errors import LeaseHeld, TransientError


class Lease:
    """The settler lease of one cycle: taken for ``ttl`` seconds as of the cycle's ``now`` and
    renewed before a destination transaction once a third of it has passed (the cycle's clock is
    ``now`` plus the time elapsed since it started). A renewal that fails means another settler
    took an expired lease: this cycle stops writing (``TransientError``; the destination's
    checkpoint compare-and-set keeps the replica exact meanwhile)."""

    def __init__(
        self,
        buffer: SettlingBuffer,
        owner: str,
        ttl: float,
        now: datetime,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buffer, self.owner, self.ttl, self.now, self.clock = buffer, owner, ttl, now, clock
        self.started = self.renewed = clock()

    def acquire(self) -> None:
        if not self.buffer.acquire_lease(self.owner, self.ttl, self.now):
            held = self.buffer.lease()
            if held is None:  # released between the two reads: say so, the next cycle takes it
                raise LeaseHeld("another settler held the lease of the buffer a moment ago")
            raise LeaseHeld(
                f"another settler ({held.owner}) holds the lease of the buffer until "
                f"{held.expires_at.isoformat(timespec='seconds')}",
                holder=held.owner,
                until=held.expires_at,
            )

    def renew(self) -> None:
        t = self.clock()
        if t - self.renewed < self.ttl / 3:
            return
        at = self.now + timedelta(seconds=t - self.started)
        if not self.buffer.acquire_lease(self.owner, self.ttl, at):
            held = self.buffer.lease()
            raise TransientError(
                f"the settler lease ran out and {held.owner if held else 'another settler'} took "
                "it: this cycle stopped before its next destination transaction (run it again)"
            )
        self.renewed = t

"""The cyclic garbage collector during a settle cycle (issue 14): ``collector_tuned()``.

A cycle allocates many short-lived containers per block (decoded revisions, parse trees, Ion
values, hash inputs), almost none of them in reference cycles. Under CPython's default
thresholds (a young collection every 700 allocations) the collector ran about 150 young, 13
middle and 2 full collections per 1,000 replayed blocks, and each full one walked the whole heap
the process had before the cycle (amazon.ion, the PartiQL grammar, lark's tables, the caches):
about a tenth of a statements cycle.

For the duration of the cycle, ``collector_tuned`` therefore

- moves the objects alive before the cycle out of the collector's sight (``gc.freeze()``; put
  back with ``gc.unfreeze()`` when the cycle ends, so a follow loop of cycles collects them as
  before between cycles). Not done when something else in the process froze objects already
  (a pre-fork server): those stay as their owner left them;
- raises the young generation's threshold to ``YOUNG_THRESHOLD`` allocations (the older
  generations' thresholds unchanged).

The collector still runs during the cycle: garbage in reference cycles is found after at most
``YOUNG_THRESHOLD`` container allocations (and promoted, older garbage by the usual rules), so
what a cycle holds stays bounded by its group, not by the backlog it faces (``bench backlog``
measures peak RSS at 1,001,000 against 11,000 buffered blocks). Nothing is disabled and no
collection is skipped at the end. The settings are process-wide: nested or concurrent cycles
(threads) share one tuning, set by the first to enter and restored by the last to leave.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000


class _Tuning:
    """The process's one tuning: how many cycles are inside it, and what to restore."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: tuple[tuple[int, ...], bool] | None = None  # (thresholds, whether we froze)

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                thresholds = gc.get_threshold()
                froze = gc.get_freeze_count() == 0
                if froze:
                    gc.freeze()
                gc.set_threshold(max(YOUNG_THRESHOLD, thresholds[0]), *thresholds[1:])
                self.saved = (thresholds, froze)
            self.depth += 1

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.saved is not None:
                thresholds, froze = self.saved
                self.saved = None
                gc.set_threshold(*thresholds)
                if froze:
                    gc.unfreeze()


_tuning = _Tuning()


@contextmanager
def collector_tuned() -> Iterator[None]:
    """Run the body with the collector tuned for a settle cycle (see the module docstring)."""
    _tuning.enter()
    try:
        yield
    finally:
        _tuning.leave()


__all__ = ["YOUNG_THRESHOLD", "collector_tuned"]

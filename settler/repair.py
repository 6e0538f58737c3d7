"""Where a strand stands before its blocks are released: the buffer's marks mended from the
destination's checkpoint, and the quarantined block that stops the strand's line.

The destination's checkpoint is the truth (DESIGN.md rule 3). ``repair_marks`` makes the buffer
agree with it: a crash between a destination commit and the marks is mended; a pending block at or
below the checkpoint that lies in a gap the settler passed is marked late, not replayed; blocks
marked replayed beyond a checkpoint that is behind them (a replica restored from a backup, a new
replica on an old buffer) go back to pending and are replayed again. ``stop_of`` finds the lowest
quarantined block after the checkpoint: the line cannot pass it, and its reason says what to do.

Kept apart from ``settler.cycle`` because it changes with the buffer's marks and the recovery
rules, not with how blocks are released, grouped and applied.
"""

from __future__ import annotations

import logging
from datetime import datetime

from buffer.port import BlockRow, Mark, SettlingBuffer
from destination.port import Checkpoint
from journal.errors import SettleError
from settler.cycle_report import late_blocks_hint

log = logging.getLogger(__name__)


def applied_through(cp: Checkpoint | None) -> int:
    """The highest sequence number the checkpoint says is fully applied (-1: none)."""
    if cp is None:
        return -1
    return cp.sequence_no if cp.part is None else cp.sequence_no - 1


def repair_marks(
    buffer: SettlingBuffer,
    ledger: str,
    strand_id: str,
    cp: Checkpoint | None,
    *,
    now: datetime,
    owner: str,
    page_size: int,
) -> int:
    """Make the strand's marks agree with the destination's checkpoint ``cp``; how many block
    marks were repaired (those sent back to pending when the destination is behind not counted)."""
    through = applied_through(cp)
    mark = buffer.replayed_through(ledger, strand_id)
    if mark is not None and mark > through:
        _behind(buffer, ledger, strand_id, through, mark, now=now, owner=owner)
        return 0
    if through < 0 or (mark is not None and mark >= through):
        return 0
    gaps = [g for g in buffer.gaps() if (g.ledger, g.strand_id) == (ledger, strand_id)]
    gaps = [g for g in gaps if g.last > (mark if mark is not None else -1)]
    if gaps:
        # Blocks that arrived inside a gap the settler passed before its marks were written
        # are late: the checkpoint went past them without them.
        late: list[Mark] = []
        after = mark if mark is not None else -1
        while after < through:
            page = buffer.pending(ledger, strand_id, after, page_size)
            if not page:
                break
            for b in page:
                seq = b.summary.address.sequence_no
                if seq > through:
                    break
                if any(g.first <= seq <= g.last for g in gaps):
                    late.append(
                        Mark(
                            block_id=b.block_id,
                            state="late",
                            at=now,
                            reason="arrived inside a gap the settler had passed",
                            actor=owner,
                        )
                    )
            after = page[-1].summary.address.sequence_no
        if late:
            buffer.mark(late)
    changed = buffer.repair(ledger, strand_id, through, now)
    if changed:
        log.info(
            "%s/%s: %d block marks repaired from the destination checkpoint %d",
            ledger, strand_id, changed, through,
        )  # fmt: skip
    return changed


def _behind(
    buffer: SettlingBuffer,
    ledger: str,
    strand_id: str,
    through: int,
    mark: int,
    *,
    now: datetime,
    owner: str,
) -> None:
    """The destination is behind the buffer's marks (restored from a backup, or a new
    replica on an old buffer): the blocks it does not have are replayed again."""
    again = [
        Mark(
            block_id=r.block_id,
            state="pending",
            at=now,
            reason=f"the destination's checkpoint ({through}) is behind it: replayed again",
            actor=owner,
        )
        for r in buffer.blocks("replayed")
        if (r.ledger, r.strand_id) == (ledger, strand_id) and r.sequence_no > through
    ]
    log.warning(
        "%s/%s: the destination's checkpoint %d is behind the buffer's replayed mark %d: "
        "%d blocks go back to pending", ledger, strand_id, through, mark, len(again),
    )  # fmt: skip
    if again:
        buffer.mark(again)
    buffer.repair(ledger, strand_id, through, now)


def stop_of(
    buffer: SettlingBuffer, ledger: str, strand_id: str, through: int
) -> tuple[int, str] | None:
    """The lowest quarantined block of the strand after ``through`` (its sequence number, where
    the line stops, and the halt reason), or None."""
    rows = [
        r
        for r in buffer.blocks("quarantined")
        if (r.ledger, r.strand_id) == (ledger, strand_id) and r.sequence_no > through
    ]
    if not rows:
        return None
    first = min(rows, key=lambda r: r.sequence_no)
    late = late_before(buffer, ledger, strand_id, first.sequence_no, first.reason or "")
    return first.sequence_no, (
        f"block {first.block_id} is quarantined ({first.reason or 'no reason recorded'}):"
        + (
            f" {late_blocks_hint(strand_id, first.sequence_no, late)}"
            if late
            else " resolve it (qldb-settle resolve --retry|--skip)"
        )
    )


def late_before(
    buffer: SettlingBuffer, ledger: str, strand_id: str, seq: int, reason: str
) -> list[BlockRow]:
    """The late blocks of the strand before block ``seq`` when its replay failed (the replica
    lacks them; the block may need one): only for the halt reason, so a buffer that cannot
    be read here leaves the reason without them."""
    if not reason.startswith("replay failed"):
        return []
    try:
        rows = buffer.blocks("late")
    except SettleError as exc:
        log.warning("late blocks not read for the halt reason: %s", exc)
        return []
    return [
        r for r in rows if (r.ledger, r.strand_id) == (ledger, strand_id) and r.sequence_no < seq
    ]

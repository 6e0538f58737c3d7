"""What an operator decides about a block the settler could not take (DESIGN.md rule 5):
``resolve`` retries, skips or applies late, recording who decided what, when and why in the
block's mark; ``set_start`` gives an empty replica a starting checkpoint.

- ``retry``: a quarantined block goes back to pending; the next cycle verifies and replays it.
  For a conflicted block, retrying keeps the first copy: its conflicts are acknowledged.
- ``skip``: the block will never be replayed. At the head of the line (the next block after the
  destination's checkpoint, or the one partly applied) the destination's checkpoint moves past
  it, with any missing sequence numbers before it recorded as a gap; a late block is only marked.
- ``apply-late``: a late block is applied out of order from its revisions, in one destination
  transaction that leaves the checkpoint where it is (never moves it back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from buffer.port import BufferedBlock, Gap, Mark, SettlingBuffer
from destination.port import BlockReplay, Checkpoint, Destination
from journal.errors import InputError, SettleError
from journal.records import BlockAddress, block_id, revision_id
from runtime.errors import LeaseHeld
from settler.block_checks import verify_block
from settler.plan import plan_block
from settler.repair import applied_through

Action = Literal["retry", "skip", "apply-late"]
ACTIONS: tuple[Action, ...] = ("retry", "skip", "apply-late")
LEASE_SECONDS = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """What ``resolve`` did."""

    block_id: str
    action: Action
    previous_state: str
    state: str
    actor: str
    reason: str
    at: datetime
    checkpoint: Checkpoint | None
    detail: str


def find_block(buffer: SettlingBuffer, ref: str) -> BufferedBlock:
    """The buffered block named ``SEQUENCE``, ``STRAND/SEQUENCE`` or its full block id."""
    parts = ref.strip().split("/")
    try:
        seq = int(parts[-1])
    except ValueError:
        raise InputError(f"BLOCK must be SEQUENCE or STRAND/SEQUENCE, not {ref!r}") from None
    if len(parts) >= 3:
        found = buffer.get_block(ref.strip())
        if found is None:
            raise InputError(f"block {ref} is not in the buffer")
        return found
    strand = parts[0] if len(parts) == 2 else None
    candidates = [
        block_id(ledger, BlockAddress(strand_id, seq))
        for ledger, strand_id in buffer.strands()
        if strand is None or strand_id == strand
    ]
    blocks = [b for b in (buffer.get_block(c) for c in candidates) if b is not None]
    if not blocks:
        raise InputError(f"no block {ref} in the buffer")
    if len(blocks) > 1:
        ids = ", ".join(b.block_id for b in blocks)
        raise InputError(f"{ref} names several blocks ({ids}): give STRAND/SEQUENCE")
    return blocks[0]


def _empty_replay(
    ledger: str, address: BlockAddress, block_hash: bytes, *, part: int | None = None
) -> BlockReplay:
    """A replay with no operations: applied, it only writes its checkpoint (the block's, or that
    of part ``part`` of it)."""
    return BlockReplay(
        block_id=block_id(ledger, address),
        ledger=ledger,
        address=address,
        block_hash=block_hash,
        mode="statements",
        ops=(),
        part=part,
        parts=None if part is None else part + 2,
    )


def _hold_checkpoint(cp: Checkpoint) -> BlockReplay:
    """An empty replay whose checkpoint is ``cp`` itself: appended to an out-of-order apply so
    the destination's checkpoint stays where it is."""
    address = BlockAddress(cp.strand_id, cp.sequence_no)
    return _empty_replay(cp.ledger, address, cp.block_hash, part=cp.part)


def resolve(
    buffer: SettlingBuffer,
    destination: Destination,
    block: BufferedBlock,
    action: Action,
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> Resolution:
    """Carry out the operator's decision about ``block`` (see the module docstring) under the
    settler's lease, and record it in the block's mark."""
    if not reason.strip():
        raise InputError("--reason must say why")
    owner = f"resolve:{actor}"
    if not buffer.acquire_lease(owner, LEASE_SECONDS, now):
        raise LeaseHeld("a settler holds the buffer's lease; resolve when its cycle is over")
    try:
        return _resolve(buffer, destination, block, action, reason=reason, actor=actor, now=now)
    finally:
        buffer.release_lease(owner)


def _resolve(
    buffer: SettlingBuffer,
    destination: Destination,
    block: BufferedBlock,
    action: Action,
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> Resolution:
    s = block.summary
    bid = block.block_id
    seq = s.address.sequence_no
    cp = destination.checkpoint(s.ledger, s.address.strand_id)
    state = block.state
    note = f"{action}: {reason}"
    detail = ""

    if action == "retry":
        if state != "quarantined":
            raise InputError(f"block {bid} is {state}: only a quarantined block can be retried")
        if block.conflicted:
            ids = {bid, *(revision_id(s.ledger, d, r.version) for d, r in block.revisions.items())}
            conflicts = [
                r.rejection_id
                for r in buffer.rejected()
                if r.kind == "conflict" and r.record_id in ids and r.resolved_at is None
            ]
            n = buffer.acknowledge_rejections(conflicts, note, actor, now)
            detail = f"kept the first copy: {n} conflicting copies acknowledged; "
        buffer.mark([Mark(block_id=bid, state="pending", at=now, reason=note, actor=actor)])
        return Resolution(
            block_id=bid, action=action, previous_state=state, state="pending", actor=actor,
            reason=reason, at=now, checkpoint=cp,
            detail=detail + "the next settle cycle verifies and replays it",
        )  # fmt: skip

    if action == "skip":
        if state in ("replayed", "skipped"):
            raise InputError(f"block {bid} is already {state}")
        if state == "late":
            buffer.mark([Mark(block_id=bid, state="skipped", at=now, reason=note, actor=actor)])
            return Resolution(
                block_id=bid, action=action, previous_state=state, state="skipped", actor=actor,
                reason=reason, at=now, checkpoint=cp,
                detail="late block marked skipped; the checkpoint did not move",
            )  # fmt: skip
        through = applied_through(cp)
        if seq <= through:
            raise InputError(f"block {bid} is behind the destination's checkpoint ({through})")
        ahead = buffer.pending(s.ledger, s.address.strand_id, through, 1)
        if ahead and ahead[0].summary.address.sequence_no < seq:
            raise InputError(
                f"block {bid} is not at the head of the line: block "
                f"{ahead[0].summary.address.sequence_no} comes first"
            )
        if cp is not None and through + 1 < seq:
            buffer.record_gaps(
                [
                    Gap(
                        ledger=s.ledger,
                        strand_id=s.address.strand_id,
                        first=through + 1,
                        last=seq - 1,
                        passed_at=now,
                    )
                ]
            )
            detail = f"sequence numbers {through + 1}..{seq - 1} recorded as a gap; "
        skip = _empty_replay(s.ledger, s.address, s.block_hash)
        destination.apply([skip], cp)
        buffer.mark([Mark(block_id=bid, state="skipped", at=now, reason=note, actor=actor)])
        return Resolution(
            block_id=bid, action=action, previous_state=state, state="skipped", actor=actor,
            reason=reason, at=now, checkpoint=skip.checkpoint(),
            detail=detail + f"the destination's checkpoint moved past block {seq}",
        )  # fmt: skip

    # apply-late
    if state != "late":
        raise InputError(f"block {bid} is {state}: only a late block can be applied late")
    if cp is None:
        raise InputError(f"block {bid} is late but the destination has no checkpoint")
    if not block.complete:
        raise InputError(
            f"block {bid} is missing revisions of {', '.join(block.missing_revisions)}"
        )
    result = verify_block(block, None)
    if not result.ok:
        raise SettleError(f"block {bid} fails verification: {result.failure}")
    plan = plan_block(block, destination.limits, force_revisions=True)
    if plan.quarantine is not None:
        raise SettleError(plan.quarantine)
    if plan.split:
        raise SettleError(
            f"block {bid} is over the destination's transaction limit: it cannot be applied late "
            "in one transaction"
        )
    destination.apply([*plan.replays, _hold_checkpoint(cp)], cp)
    buffer.mark([Mark(block_id=bid, state="replayed", at=now, reason=note, actor=actor)])
    return Resolution(
        block_id=bid, action=action, previous_state=state, state="replayed", actor=actor,
        reason=reason, at=now, checkpoint=cp,
        detail=f"applied out of order from {plan.revisions} revisions; the checkpoint stays at "
        f"{cp.sequence_no}",
    )  # fmt: skip


def set_start(destination: Destination, start: Checkpoint) -> Checkpoint:
    """Make an empty replica start after ``start`` (a block whose state the replica already has,
    e.g. restored from a snapshot): its checkpoint is written by an empty transaction, only when
    the strand has none (compare-and-set against None: ``CheckpointMismatch`` otherwise)."""
    address = BlockAddress(start.strand_id, start.sequence_no)
    replay = _empty_replay(start.ledger, address, start.block_hash)
    destination.apply([replay], None)
    return replay.checkpoint()

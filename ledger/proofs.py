"""Digests and proofs of the embedded ledger's journal, as QLDB's verification API returns them.

QLDB's verification (Developer Guide, "Data verification"): a digest is a hash covering the whole
journal up to a tip block; a proof is a list of hashes which, folded onto a revision hash or a
block hash with ``dot`` (sorted-pair SHA-256, ``journal.hashes.dot``), gives the digest. The
embedded ledger's journal is a hash chain, so here:

- the **digest** at tip block ``t`` is ``blockHash(t)``, which commits to every earlier block
  (``blockHash = dot(entriesHash, previousBlockHash)``);
- a **block proof** from block ``k`` to tip ``t`` is ``[entriesHash(k+1), ..., entriesHash(t)]``
  (each step rebuilds the next block's hash from the one before);
- a **revision proof** is the revision's Merkle path inside its block's ``entriesHashList`` (up to
  ``entriesHash``), then ``previousBlockHash`` (giving ``blockHash``), then the block proof.

``verify(leaf, proof, digest)`` is the tutorial's check (fold ``dot`` over the proof). Proofs
are linear in the distance to the tip (QLDB's are logarithmic); the algorithm that checks them is
the same. ``ion_text`` renders values as the ``IonText`` the API carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import TYPE_CHECKING, Any

from journal.hashes import dot
from ledger.blocks import CommittedBlock, ion_struct

if TYPE_CHECKING:
    from ledger.engine import EmbeddedLedger


class ProofError(Exception):
    """A digest, block or revision that cannot be given (the message says why)."""


def verify(leaf: bytes, proof: Sequence[bytes], digest: bytes) -> bool:
    """True when folding ``proof`` onto ``leaf`` with ``dot`` gives ``digest``."""
    return reduce(dot, proof, leaf) == digest


def digest(led: EmbeddedLedger) -> tuple[bytes, dict[str, Any]]:
    """The digest of the journal and its tip address (``ProofError`` for an empty journal)."""
    tip = led.tip()
    if tip < 0:
        raise ProofError("the ledger's journal has no block yet")
    block = _block(led, tip)
    return block.block_hash, address(led, tip)


def address(led: EmbeddedLedger, seq: int) -> dict[str, Any]:
    return ion_struct(strandId=led.strand_id, sequenceNo=seq)


def block_proof(led: EmbeddedLedger, seq: int, tip: int) -> list[bytes]:
    """The hashes that take ``blockHash(seq)`` to the digest at ``tip``."""
    _check(led, seq, tip)
    return [b.entries_hash for b in _range(led, seq, tip)]


def revision_proof(led: EmbeddedLedger, seq: int, doc_id: str, tip: int) -> list[bytes]:
    """The hashes that take the revision of ``doc_id`` in block ``seq`` to the digest at
    ``tip``."""
    _check(led, seq, tip)
    block = _block(led, seq)
    rev = next((r for r in block.revisions if r.document_id == doc_id), None)
    if rev is None:
        raise ProofError(f"block {seq} holds no revision of document {doc_id}")
    entries = [bytes(h) for h in block.payload["entriesHashList"]]
    path = merkle_path(entries, entries.index(rev.hash))
    return [*path, block.previous_block_hash, *block_proof(led, seq, tip)]


def merkle_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The siblings of leaf ``index`` up to the root of ``journal.hashes.merkle_root`` (an odd
    last node is carried up without a sibling)."""
    level, i, path = list(leaves), index, []
    while len(level) > 1:
        sibling = i + 1 if i % 2 == 0 else i - 1
        if sibling < len(level):
            path.append(level[sibling])
        nxt = [dot(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, i = nxt, i // 2
    return path


def block_value(led: EmbeddedLedger, seq: int) -> dict[str, Any]:
    """The block as GetBlock shows it: its BLOCK_SUMMARY payload and its revisions."""
    block = _block(led, seq)
    value = dict(block.payload)
    records = block.stream_records(led.stream_arn())[1:]
    if records:
        value["revisions"] = [r["payload"]["revision"] for r in records]
    return value


def revision_value(led: EmbeddedLedger, seq: int, doc_id: str) -> dict[str, Any]:
    """The revision as GetRevision shows it: ``{blockAddress, hash, data | dataHash,
    metadata}``."""
    block = _block(led, seq)
    for record in block.stream_records(led.stream_arn())[1:]:
        revision = record["payload"]["revision"]
        if revision["metadata"]["id"] == doc_id:
            return dict(revision)
    raise ProofError(f"block {seq} holds no revision of document {doc_id}")


def ion_text(value: Any) -> str:
    from amazon.ion import simpleion

    return str(simpleion.dumps(value, binary=False, omit_version_marker=True))


def _check(led: EmbeddedLedger, seq: int, tip: int) -> None:
    last = led.tip()
    if not 0 <= tip <= last:
        raise ProofError(f"the digest tip address {tip} is not a block of the journal (tip {last})")
    if not 0 <= seq <= tip:
        raise ProofError(f"block {seq} is not covered by the digest at {tip}")


def _block(led: EmbeddedLedger, seq: int) -> CommittedBlock:
    block = led.block(seq)
    if block is None:
        raise ProofError(f"no block {seq} in the journal")
    return block


def _range(led: EmbeddedLedger, seq: int, tip: int) -> list[CommittedBlock]:
    out = []
    for b in led.blocks(seq):
        if b.sequence_no > tip:
            break
        out.append(b)
    return out

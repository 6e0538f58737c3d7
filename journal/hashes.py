"""QLDB hash arithmetic, hashlib only (RECORDS.md, DESIGN.md "Facts that shape it").

``dot(a, b)`` orders the two 32-byte digests by a signed-byte comparison starting from the last
byte, concatenates them (smaller first) and takes SHA-256. The entries hash of a block is the
pairwise Merkle root of its ``entriesHashList`` under ``dot``; the block hash is
``dot(entriesHash, previousBlockHash)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32


def _signed(b: int) -> int:
    return b - 256 if b > 127 else b


def _compare(a: bytes, b: bytes) -> int:
    """QLDB's ordering: signed bytes, compared from the last byte towards the first."""
    for x, y in zip(reversed(a), reversed(b), strict=True):
        sx, sy = _signed(x), _signed(y)
        if sx != sy:
            return -1 if sx < sy else 1
    return 0


def dot(a: bytes, b: bytes) -> bytes:
    """Combine two digests the way QLDB does. An empty side returns the other unchanged."""
    if not a:
        return b
    if not b:
        return a
    if len(a) != HASH_SIZE or len(b) != HASH_SIZE:
        raise ValueError(f"dot needs two {HASH_SIZE}-byte digests, got {len(a)} and {len(b)}")
    first, second = (a, b) if _compare(a, b) < 0 else (b, a)
    return hashlib.sha256(first + second).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Pairwise Merkle root under ``dot``; an odd last node is carried up unchanged."""
    level = list(leaves)
    if not level:
        return b""
    while len(level) > 1:
        nxt = [dot(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def block_hash(entries_hash: bytes, previous_block_hash: bytes) -> bytes:
    return dot(entries_hash, previous_block_hash)


def adjacent(previous_block_hash_of_next: bytes, block_hash_of_previous: bytes) -> bool:
    """True when the later block's ``previousBlockHash`` names the earlier block's hash."""
    return previous_block_hash_of_next == block_hash_of_previous

"""The QLDB tutorial's verification algorithm (amazon-qldb-dmv-sample-python, verifier.py),
written out here independently of the project's ``journal.hashes``: fold the proof's hashes onto
a leaf hash, each step SHA-256 of the two hashes concatenated in the order of a signed-byte
comparison from the last byte."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import reduce


def _compare(h1: bytes, h2: bytes) -> int:
    for a, b in zip(reversed(h1), reversed(h2), strict=True):
        sa, sb = (a - 256 if a > 127 else a), (b - 256 if b > 127 else b)
        if sa != sb:
            return sa - sb
    return 0


def join_hash_pairwise(h1: bytes, h2: bytes) -> bytes:
    if not h1:
        return h2
    if not h2:
        return h1
    joined = h1 + h2 if _compare(h1, h2) < 0 else h2 + h1
    return hashlib.sha256(joined).digest()


def verify(leaf: bytes, digest: bytes, proof: Sequence[bytes]) -> bool:
    return reduce(join_hash_pairwise, proof, leaf) == digest

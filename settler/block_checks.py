"""Verify a buffered block before it is replayed (DESIGN.md rule 6). Pure: no I/O, no clock.

What is checked, in this order (the first mismatch is the failure, naming the block and what
mismatched):

- ``entriesHash`` is the pairwise Merkle root (``dot``) of ``entriesHashList``;
- ``blockHash`` is ``dot(entriesHash, previousBlockHash)``;
- the chain link: when the block is the very next one after ``previous`` (``sequenceNo`` =
  previous + 1, same strand, previous applied whole and its hash known), its
  ``previousBlockHash`` is the previous block's ``blockHash``;
- every buffered revision: its table is the one the block's ``documents`` map names for it
  (``tableInfo`` is outside the revision hash); its hash equals the ``revisionSummaries`` entry
  of its document, the hash appears in ``entriesHashList``, its ``txId`` is the block's
  transaction, and, where it carries ``data``, the hash is ``dot(IonHash(data),
  IonHash(metadata))`` (the revision content is what the source committed); a redacted revision
  (``dataHash`` kept, ``data`` gone) is verified by its kept hash: ``dot(dataHash,
  IonHash(metadata))``;
- a revision from a JSON Lines export (``ingest.export.origin.down_converted``: QLDB
  down-converted its data to JSON, so its Ion types are gone) whose data does not hash to its
  revision hash is not a failure: that check is not possible for it, and it is counted as
  unverified with the reason ``REVISION_DOWN_CONVERTED`` (one whose data still hashes right,
  such as data of strings and integers only, is verified). Every other check runs for it as for
  any block: the chain, ``entriesHash`` and ``blockHash`` (recomputed at ingest too,
  ``ingest.export.blocks``), the revision hash against ``revisionSummaries`` and
  ``entriesHashList``, its metadata; and a redacted one is verified by its kept hash, which JSON
  keeps exactly;
- the ``statementDigest`` of every statement without parameters is the Ion hash (SHA-256) of its
  text. A statement with parameters cannot be checked (QLDB does not stream parameter values):
  it is counted as unverified with that reason; so is every statement when ionhash cannot be
  imported. Statement texts are strings, which JSON keeps exactly: the digests of a block from a
  JSON Lines export are verified like any other.

``Verification.unverified`` lists what could not be checked, statements (``index``) and
revisions (``document_id``), each with its reason; the settle report counts them all in its
``digests.unverified`` figure and its reasons.

ionhash is imported here only, lazily: the ingest path never imports it. The hashes themselves
are computed by ``ledger.hashing`` (its own Ion Hash, checked against ionhash in the ledger and
settler tests, about twice as fast on revisions); whether ionhash imports still decides, as
before, whether digests and content are checked at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from buffer.port import BufferedBlock
from destination.port import Checkpoint
from ingest.export.origin import down_converted
from journal.hashes import block_hash, dot, merkle_root
from journal.records import RevisionMetadata
from ledger.hashing import ion_hash, metadata_hash, text_hash

log = logging.getLogger(__name__)

PARAMETERS_NOT_STREAMED = "parameters not streamed"
IONHASH_UNAVAILABLE = "ionhash unavailable"
REVISION_DOWN_CONVERTED = "revision hash: data down-converted to JSON (JSON Lines export)"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnverifiedDigest:
    """A statement whose digest (``index``), or a revision whose hash (``document_id``), could not
    be checked, and why."""

    index: int | None
    reason: str
    document_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """The outcome of verifying one block. ``failure`` is None when every check passed."""

    block_id: str
    failure: str | None
    digests_verified: int
    unverified: tuple[UnverifiedDigest, ...]
    revisions_checked: int
    chain_checked: bool
    # document id -> (Ion hash of its data, its metadata struct) of each revision whose content
    # was checked: computed once here, carried to the replay (``plan_block``) and the destination.
    hashed: Mapping[str, tuple[bytes, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def digests_unverified(self) -> int:
        return len(self.unverified)

    @classmethod
    def failed(cls, block_id: str, reason: str) -> Verification:
        return cls(
            block_id=block_id,
            failure=reason,
            digests_verified=0,
            unverified=(),
            revisions_checked=0,
            chain_checked=False,
        )


# --- ionhash, lazily -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _ion_hasher() -> Callable[[Any], bytes] | None:
    """``value -> SHA-256 Ion hash``, or None when ionhash does not import here."""
    try:
        import ionhash  # noqa: F401  (adds ``ion_hash`` to amazon.ion's simple types)
        from amazon.ion import simpleion
        from amazon.ion.simple_types import _IonNature
    except Exception as exc:  # ImportError, or ionhash failing against a newer amazon.ion
        log.warning("ionhash unavailable, statement digests are not verified: %s", exc)
        return None

    def hash_value(value: Any) -> bytes:
        if isinstance(value, _IonNature):
            try:
                return bytes(value.ion_hash("SHA256"))
            except AttributeError:  # a plain Python value nested inside
                pass
        # Plain Python values get their Ion types by a round trip through Ion binary.
        return bytes(simpleion.loads(simpleion.dumps(value)).ion_hash("SHA256"))

    return hash_value


def ionhash_available() -> bool:
    return _ion_hasher() is not None


def statement_hash(text: str) -> bytes | None:
    """The Ion hash (SHA-256) of a statement's text, or None when ionhash is unavailable."""
    if _ion_hasher() is None:
        return None
    return text_hash(text)


def revision_hash(data: Any, metadata: Any) -> bytes | None:
    """``dot(IonHash(data), IonHash(metadata))``, or None when ionhash is unavailable."""
    if _ion_hasher() is None:
        return None
    return dot(ion_hash(data), ion_hash(metadata))


# --- parameters ----------------------------------------------------------------------------------


# One token per match, left to right: a placeholder, or a string literal, quoted identifier,
# backtick Ion literal or comment (each to its end, or to the end of the text when unterminated),
# in which a "?" is text. '' and "" escape a quote; a backtick literal has no escape.
_PLACEHOLDER_SCAN = re.compile(
    r"\?|'(?:[^']|'')*(?:'|\Z)|\"(?:[^\"]|\"\")*(?:\"|\Z)|`[^`]*(?:`|\Z)|--[^\n]*"
    r"|/\*.*?(?:\*/|\Z)",
    re.DOTALL,
)


def has_parameters(text: str) -> bool:
    """True when the PartiQL text holds a ``?`` placeholder outside string literals, quoted
    identifiers, backtick Ion literals and comments."""
    if "?" not in text:
        return False
    return any(m.group() == "?" for m in _PLACEHOLDER_SCAN.finditer(text))


# --- the checks ----------------------------------------------------------------------------------


def _ion_timestamp(value: Any) -> Any:
    """``value`` as an Ion timestamp: kept when it already carries its Ion precision, else with
    millisecond precision (QLDB writes ``txTime`` to the millisecond) when that loses nothing."""
    from amazon.ion.core import Timestamp, TimestampPrecision

    if getattr(value, "precision", None) is not None:
        return value
    return Timestamp(
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond, tzinfo=value.tzinfo, precision=TimestampPrecision.SECOND,
        fractional_precision=3 if value.microsecond % 1000 == 0 else 6,
    )  # fmt: skip


def metadata_struct(meta: RevisionMetadata) -> dict[str, Any]:
    """The REVISION_DETAILS ``metadata`` struct as QLDB hashed it (field order does not matter
    to the Ion hash; field types and timestamp precision do): a plain ``dict`` whose values have
    their Ion types already (str, int, an Ion timestamp, str), so that ``ion_hash`` and
    ``journal.ion_binary.encode`` give what they give for the typed simpleion struct."""
    return {
        "id": meta.id,
        "version": meta.version,
        "txTime": _ion_timestamp(meta.tx_time),
        "txId": meta.tx_id,
    }


def verify_block(
    block: BufferedBlock, previous: Checkpoint | None = None, *, check_content: bool = True
) -> Verification:
    """Verify ``block``; ``previous`` is the position it follows (the destination's checkpoint,
    or the block before it in the same group). See the module docstring for what is checked."""
    s = block.summary
    bid = s.block_id
    entries = merkle_root(s.entries_hash_list)
    if entries != s.entries_hash:
        return Verification.failed(
            bid,
            f"block {bid}: entriesHash {s.entries_hash.hex()} is not the Merkle root of "
            f"entriesHashList ({entries.hex()})",
        )
    expected_block_hash = block_hash(s.entries_hash, s.previous_block_hash)
    if expected_block_hash != s.block_hash:
        return Verification.failed(
            bid,
            f"block {bid}: blockHash {s.block_hash.hex()} is not dot(entriesHash, "
            f"previousBlockHash) ({expected_block_hash.hex()})",
        )

    chain_checked = False
    if (
        previous is not None
        and previous.ledger == s.ledger
        and previous.strand_id == s.address.strand_id
        and previous.part is None
        and previous.block_hash
        and s.address.sequence_no == previous.sequence_no + 1
    ):
        chain_checked = True
        if s.previous_block_hash != previous.block_hash:
            return Verification.failed(
                bid,
                f"block {bid}: previousBlockHash {s.previous_block_hash.hex()} does not link to "
                f"block {previous.sequence_no} ({previous.block_hash.hex()})",
            )

    summaries = {r.document_id: r.hash for r in s.user_revisions}
    tables = {d.document_id: (d.table_name, d.table_id) for d in s.documents}
    listed = set(s.entries_hash_list)
    check = check_content and _ion_hasher() is not None
    checked = 0
    hashed: dict[str, tuple[bytes, Any]] = {}
    unverified_revisions: list[UnverifiedDigest] = []
    for doc_id, rev in sorted(block.revisions.items()):
        where = f"block {bid}: revision {doc_id} version {rev.version}"
        if doc_id not in summaries:
            return Verification.failed(bid, f"{where} is not in revisionSummaries")
        if rev.hash != summaries[doc_id]:
            return Verification.failed(
                bid,
                f"{where}: hash {rev.hash.hex()} differs from revisionSummaries "
                f"({summaries[doc_id].hex()})",
            )
        if rev.hash not in listed:
            return Verification.failed(
                bid, f"{where}: hash {rev.hash.hex()} not in entriesHashList"
            )
        # tableInfo is outside the revision hash: the block's documents map vouches for it.
        expected_table = tables.get(doc_id)
        if expected_table is not None and (rev.table_name, rev.table_id) != expected_table:
            return Verification.failed(
                bid,
                f"{where}: tableInfo {rev.table_name} ({rev.table_id}) is not the block's "
                f"{expected_table[0]} ({expected_table[1]}) for this document",
            )
        if rev.metadata.tx_id != s.transaction_id:
            return Verification.failed(
                bid, f"{where}: txId {rev.metadata.tx_id} is not the block's {s.transaction_id}"
            )
        if check and (rev.data is not None or rev.data_hash is not None):
            # A redacted revision is verified by the data hash it kept.
            data_hash = ion_hash(rev.data) if rev.data is not None else rev.data_hash
            assert data_hash is not None
            meta = metadata_struct(rev.metadata)
            content = dot(
                data_hash, metadata_hash(meta["id"], meta["version"], meta["txTime"], meta["txId"])
            )
            if content != rev.hash:
                if rev.data is not None and down_converted(rev.stream):
                    unverified_revisions.append(
                        UnverifiedDigest(
                            index=None, document_id=doc_id, reason=REVISION_DOWN_CONVERTED
                        )
                    )
                    continue
                what = "data" if rev.data is not None else "dataHash (redacted)"
                return Verification.failed(
                    bid,
                    f"{where}: {what} and metadata hash to {content.hex()}, not the revision "
                    f"hash {rev.hash.hex()}",
                )
            checked += 1
            hashed[doc_id] = (data_hash, meta)

    verified = 0
    unverified: list[UnverifiedDigest] = []
    for st in s.statements:
        if has_parameters(st.text):
            text_hash = statement_hash(st.text)
            if text_hash is not None and text_hash == st.digest:
                verified += 1  # a '?' the scanner misread: the digest proves the text anyway
            else:
                unverified.append(UnverifiedDigest(index=st.index, reason=PARAMETERS_NOT_STREAMED))
            continue
        text_hash = statement_hash(st.text)
        if text_hash is None:
            unverified.append(UnverifiedDigest(index=st.index, reason=IONHASH_UNAVAILABLE))
        elif text_hash != st.digest:
            return Verification.failed(
                bid,
                f"block {bid}: statement {st.index} text does not match its statementDigest "
                f"({st.digest.hex()} expected, text hashes to {text_hash.hex()}): "
                f"{st.text[:80]!r}",
            )
        else:
            verified += 1

    return Verification(
        block_id=bid,
        failure=None,
        digests_verified=verified,
        unverified=(*unverified, *unverified_revisions),
        revisions_checked=checked,
        chain_checked=chain_checked,
        hashed=hashed,
    )

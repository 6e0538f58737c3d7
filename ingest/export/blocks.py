"""One exported journal block: checked as a whole, then turned into the records the stream sends.

An exported block (QLDB Developer Guide, "Journal export output"; the AWS DMV sample's
``JournalBlock``) carries ``blockAddress``, ``transactionId``, ``blockTimestamp``, ``blockHash``,
``entriesHash``, ``previousBlockHash``, ``entriesHashList``, ``transactionInfo`` (statements and
the documents touched, by table), ``revisions`` (user revisions with ``hash``, ``data`` or
``dataHash``, ``metadata``; system revisions with a ``hash`` only) and, on a block that redacts,
``redactionInfo``. What the stream lacks, and an export allows, is checked here with hashlib only:

- ``entriesHash`` is the pairwise Merkle root (with dot) of ``entriesHashList``;
- ``blockHash`` is ``dot(entriesHash, previousBlockHash)``;
- the revisions are committed by the entries: the Merkle root of the revision hashes is one of
  ``entriesHashList`` (QLDB's layout, as the DMV sample verifies it) or, flat, every revision
  hash is (the embedded ledger's layout);
- every user revision names a document of ``transactionInfo.documents`` (its table) and the block.

Each revision's own hash (``dot(IonHash(data), IonHash(metadata))``) and each statement digest
need the Ion hash, which the ingest path does not import: the settler checks them, as for stream
records. A JSON Lines export was down-converted (hashes and blobs as base64 strings, timestamps
as strings): ``from_json`` restores the journal's own fields (hashes, timestamps); the documents'
own Ion types are lost and stay as JSON gave them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from journal.hashes import block_hash, merkle_root

_BLOB_FIELDS = ("blockHash", "entriesHash", "previousBlockHash")


class BlockProblem(Exception):
    """The block fails a whole-block check or lacks what a block needs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportedBlock:
    """A checked block: its address and hashes, and the stream records it stands for."""

    strand_id: str
    sequence_no: int
    block_hash: bytes
    previous_block_hash: bytes
    records: tuple[dict[str, Any], ...]

    @property
    def address(self) -> str:
        return f"{self.strand_id}/{self.sequence_no}"


def address_of(value: Any) -> str:
    """``strandId/sequenceNo`` of a block value as far as it can be read, else ``?``."""
    try:
        a = value["blockAddress"]
        return f"{a['strandId']}/{int(a['sequenceNo'])}"
    except (KeyError, TypeError, ValueError):
        return "?"


def _b64(value: Any, path: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        raise BlockProblem(f"{path} is not a base64 string ({type(value).__name__})")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BlockProblem(f"{path} is not valid base64") from None


def _timestamp(value: Any, path: str) -> Any:
    from amazon.ion import simpleion

    if not isinstance(value, str):
        return value
    try:
        parsed = simpleion.loads(value)
    except Exception:
        raise BlockProblem(f"{path} is not an Ion timestamp ({value[:40]!r})") from None
    if getattr(parsed, "ion_type", None) is None or parsed.ion_type.name != "TIMESTAMP":
        raise BlockProblem(f"{path} is not an Ion timestamp ({value[:40]!r})")
    return parsed


def from_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """Undo the down-conversion of the journal's own fields of a JSON Lines block: hashes and
    digests from base64, commit and start times from their Ion text. Document data is left as
    JSON gave it (its Ion types cannot be recovered)."""
    block = dict(value)
    for name in _BLOB_FIELDS:
        if name in block and block[name] is not None:
            block[name] = _b64(block[name], name)
    if isinstance(block.get("entriesHashList"), list):
        block["entriesHashList"] = [
            _b64(h, f"entriesHashList[{i}]") for i, h in enumerate(block["entriesHashList"])
        ]
    if "blockTimestamp" in block:
        block["blockTimestamp"] = _timestamp(block["blockTimestamp"], "blockTimestamp")
    info = block.get("transactionInfo")
    if isinstance(info, Mapping):
        info = dict(info)
        statements = []
        for i, given in enumerate(info.get("statements") or []):
            s = dict(given)
            path = f"transactionInfo.statements[{i}]"
            if "statementDigest" in s:
                s["statementDigest"] = _b64(s["statementDigest"], f"{path}.statementDigest")
            if "startTime" in s:
                s["startTime"] = _timestamp(s["startTime"], f"{path}.startTime")
            statements.append(s)
        info["statements"] = statements
        block["transactionInfo"] = info
    revisions = []
    for i, given_revision in enumerate(block.get("revisions") or []):
        r = dict(given_revision)
        path = f"revisions[{i}]"
        for name in ("hash", "dataHash"):
            if name in r and r[name] is not None:
                r[name] = _b64(r[name], f"{path}.{name}")
        if isinstance(r.get("metadata"), Mapping):
            meta = dict(r["metadata"])
            if "txTime" in meta:
                meta["txTime"] = _timestamp(meta["txTime"], f"{path}.metadata.txTime")
            r["metadata"] = meta
        revisions.append(r)
    if "revisions" in block:
        block["revisions"] = revisions
    return block


def _field(struct: Any, name: str, path: str) -> Any:
    if not isinstance(struct, Mapping) or name not in struct or struct[name] is None:
        raise BlockProblem(f"{path}{name} is missing")
    return struct[name]


def _hash(value: Any, path: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise BlockProblem(f"{path} is not a 32-byte hash")
    return bytes(value)


def check_block(value: Any, stream_arn: str) -> ExportedBlock:
    """Check one exported block (Ion values; a JSON block after ``from_json``) and build its
    stream records; ``BlockProblem`` says what is wrong."""
    if not isinstance(value, Mapping):
        raise BlockProblem("the block is not a struct")
    address = _field(value, "blockAddress", "")
    strand = _field(address, "strandId", "blockAddress.")
    seq = _field(address, "sequenceNo", "blockAddress.")
    if not isinstance(strand, str) or isinstance(seq, bool) or not isinstance(seq, int):
        raise BlockProblem("blockAddress is not {strandId: string, sequenceNo: int}")
    entries = [
        _hash(h, f"entriesHashList[{i}]")
        for i, h in enumerate(_field(value, "entriesHashList", ""))
    ]
    entries_hash = _hash(_field(value, "entriesHash", ""), "entriesHash")
    previous = value.get("previousBlockHash")
    previous = b"" if previous is None else _hash(previous, "previousBlockHash")
    the_hash = _hash(_field(value, "blockHash", ""), "blockHash")
    computed = merkle_root(entries)
    if computed != entries_hash:
        raise BlockProblem(
            f"entriesHash {entries_hash.hex()[:16]}… is not the Merkle root of entriesHashList "
            f"({computed.hex()[:16]}…)"
        )
    if block_hash(entries_hash, previous) != the_hash:
        raise BlockProblem(
            f"blockHash {the_hash.hex()[:16]}… is not dot(entriesHash, previousBlockHash)"
        )
    info = _field(value, "transactionInfo", "")
    documents = info.get("documents") or {} if isinstance(info, Mapping) else {}
    revisions = value.get("revisions") or []
    hashes = [_hash(_field(r, "hash", f"revisions[{i}]."), f"revisions[{i}].hash")
              for i, r in enumerate(revisions)]  # fmt: skip
    if hashes and merkle_root(hashes) not in entries and not set(hashes) <= set(entries):
        raise BlockProblem("the revisions are not committed by entriesHashList")

    arn_struct = {"strandId": strand, "sequenceNo": seq}
    summaries: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for i, r in enumerate(revisions):
        meta = r.get("metadata")
        if meta is None:  # a system revision: only its hash is exported, as in the stream
            summaries.append({"hash": hashes[i]})
            continue
        doc_id = _field(meta, "id", f"revisions[{i}].metadata.")
        own = r.get("blockAddress")
        if own is not None and address_of({"blockAddress": own}) != f"{strand}/{seq}":
            raise BlockProblem(f"revisions[{i}].blockAddress is not the block's")
        doc = documents.get(doc_id) if isinstance(documents, Mapping) else None
        if not isinstance(doc, Mapping):
            raise BlockProblem(f"revisions[{i}] document {doc_id} is not in transactionInfo")
        summaries.append({"hash": hashes[i], "documentId": doc_id})
        revision: dict[str, Any] = {"blockAddress": arn_struct, "hash": hashes[i]}
        if r.get("data") is not None:
            revision["data"] = r["data"]
        if r.get("dataHash") is not None:
            revision["dataHash"] = r["dataHash"]
        revision["metadata"] = meta
        details.append(
            {
                "qldbStreamArn": stream_arn,
                "recordType": "REVISION_DETAILS",
                "payload": {
                    "tableInfo": {"tableName": doc.get("tableName"), "tableId": doc.get("tableId")},
                    "revision": revision,
                },
            }
        )
    payload: dict[str, Any] = {
        "blockAddress": arn_struct,
        "transactionId": _field(value, "transactionId", ""),
        "blockTimestamp": _field(value, "blockTimestamp", ""),
        "blockHash": the_hash,
        "entriesHash": entries_hash,
        "previousBlockHash": previous,
        "entriesHashList": entries,
        "transactionInfo": info,
    }
    if summaries:
        payload["revisionSummaries"] = summaries
    if value.get("redactionInfo") is not None:
        payload["redactionInfo"] = value["redactionInfo"]
    summary = {"qldbStreamArn": stream_arn, "recordType": "BLOCK_SUMMARY", "payload": payload}
    return ExportedBlock(
        strand_id=strand,
        sequence_no=int(seq),
        block_hash=the_hash,
        previous_block_hash=previous,
        records=(summary, *details),
    )

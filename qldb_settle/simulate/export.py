"""The simulated ledger's journal written as a QLDB journal export (``ExportJournalToS3``).

``write_export(ledger, folder, ...)`` writes what an export job writes under its prefix
(QLDB Developer Guide, "Journal export output"): ``EXPORTID.started.manifest`` (the request),
the data objects ``yyyy/mm/dd/hh/STRANDID.FIRST-LAST.EXT`` holding the blocks committed in
``[start, end)`` in order, and ``EXPORTID.STRANDID.completed.manifest`` listing their full bucket
keys in order. Formats: ``ION_TEXT``, ``ION_BINARY`` and ``JSON`` (JSON Lines, down-converted as
``journal.ion_json`` does); the manifests are written in the same format. Each block carries
``revisions``: the user revisions (``blockAddress``, ``hash``, ``data`` unless deleted,
``metadata``) and a hash-only entry per system revision, in ``revisionSummaries`` order.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from journal.ion_json import json_text

FORMATS = ("ION_TEXT", "ION_BINARY", "JSON")
FORMAT_NAMES = {"ion": "ION_TEXT", "ion-binary": "ION_BINARY", "jsonl": "JSON"}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def export_id_for(seed: str) -> str:
    """A 22-character base62 export id derived from ``seed`` (reproducible)."""
    n = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:17], "big")
    return "".join(_BASE62[(n >> (6 * i)) % 62] for i in range(22))


def export_block(block: Any) -> dict[str, Any]:
    """The exported form of a ``ledger.CommittedBlock``."""
    p = block.payload
    by_doc = {r.document_id: r for r in block.revisions}
    address = {"strandId": block.strand_id, "sequenceNo": block.sequence_no}
    revisions: list[dict[str, Any]] = []
    for s in p.get("revisionSummaries", []):
        r = by_doc.get(s.get("documentId")) if s.get("documentId") else None
        if r is None:
            revisions.append({"hash": s["hash"]})
            continue
        rev: dict[str, Any] = {"blockAddress": address, "hash": r.hash}
        if r.data is not None:
            rev["data"] = r.data
        rev["metadata"] = r.metadata()
        revisions.append(rev)
    out = {k: p[k] for k in (
        "blockAddress", "transactionId", "blockTimestamp", "blockHash", "entriesHash",
        "previousBlockHash", "entriesHashList", "transactionInfo",
    )}  # fmt: skip
    if revisions:
        out["revisions"] = revisions
    if "redactionInfo" in p:
        out["redactionInfo"] = p["redactionInfo"]
    return out


def _dump(values: list[Any], fmt: str) -> bytes:
    if fmt == "ION_BINARY":
        return bytes(simpleion.dumps(values, binary=True, sequence_as_stream=True))
    if fmt == "JSON":
        return "".join(json_text(v) + "\n" for v in values).encode("utf-8")
    return (
        "\n".join(
            str(simpleion.dumps(v, binary=False, omit_version_marker=True)) for v in values
        ).encode("utf-8")
        + b"\n"
    )


def _manifest(value: dict[str, Any], fmt: str) -> bytes:
    if fmt == "JSON":
        plain = {k: v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v
                 for k, v in value.items()}  # fmt: skip
        return json.dumps(plain).encode("utf-8")
    if fmt == "ION_BINARY":
        return bytes(simpleion.dumps(value, binary=True))
    return str(simpleion.dumps(value, binary=False, omit_version_marker=True)).encode("utf-8")


def write_export(
    ledger: Any,
    folder: Path,
    *,
    fmt: str = "ION_TEXT",
    start: datetime,
    end: datetime,
    export_id: str,
    bucket: str = "qldb-settle-simulated-exports",
    prefix: str = "journalExport",
    blocks_per_object: int = 50,
) -> dict[str, Any]:
    """Write the export of the blocks committed in ``[start, end)``; return what it holds
    (``export_id``, ``objects``, ``blocks``, ``first`` and ``last`` sequence numbers)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    folder.mkdir(parents=True, exist_ok=True)
    ext = "json" if fmt == "JSON" else "ion"
    started = {
        "ledgerName": ledger.ledger_name,
        "exportId": export_id,
        "inclusiveStartTime": start,
        "exclusiveEndTime": end,
        "bucket": bucket,
        "prefix": prefix,
        "objectEncryptionType": "NO_ENCRYPTION",
        "outputFormat": fmt,
    }
    (folder / f"{export_id}.started.manifest").write_bytes(_manifest(started, fmt))
    keys: list[str] = []
    chunk: list[Any] = []
    first = last = None
    count = 0
    lo, hi = start.timestamp() * 1000, end.timestamp() * 1000

    def flush() -> None:
        if not chunk:
            return
        a, b = chunk[0].sequence_no, chunk[-1].sequence_no
        when = datetime.fromtimestamp(chunk[0].timestamp_ms / 1000, tz=UTC)
        key = f"{when:%Y/%m/%d/%H}/{chunk[0].strand_id}.{a}-{b}.{ext}"
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(_dump([export_block(c) for c in chunk], fmt))
        keys.append(f"{prefix}/{key}" if prefix else key)
        chunk.clear()

    strand = None
    for block in ledger.blocks():
        if not lo <= block.timestamp_ms < hi:
            continue
        strand = block.strand_id
        first = block.sequence_no if first is None else first
        last = block.sequence_no
        count += 1
        chunk.append(block)
        if len(chunk) >= blocks_per_object:
            flush()
    flush()
    strand = strand or ledger.strand_id
    completed = folder / f"{export_id}.{strand}.completed.manifest"
    completed.write_bytes(_manifest({"keys": keys}, fmt))
    return {"export_id": export_id, "objects": len(keys), "blocks": count,
            "first": first, "last": last, "strand_id": strand}  # fmt: skip

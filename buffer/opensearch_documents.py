"""The documents a put writes for each record kind, and the stored fields the put policy reads.

``header_source``, ``revision_source`` and ``control_source`` give a new copy's document (its
``provenance`` with it: raw bytes, origin, arrival, the ``write_id`` of the put that wrote it);
``stored_copy`` and ``policy_header`` read a stored document back as ``buffer.put_policy``
compares it. The mappings of these fields: ``buffer.opensearch_schema``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from buffer import _common as c
from buffer import put_policy as policy
from buffer.opensearch_requests import b64, date_field
from buffer.port import BlockState, Incoming
from journal.records import BlockSummary, ControlRecord, RevisionDetails


def provenance(item: Incoming, arn: str, write_id: str) -> dict[str, Any]:
    arrived = c.opt_us(item.arrived_at)
    return {
        "fingerprint": item.fingerprint,
        "raw": b64(item.raw),
        "raw_sha256": c.sha256_hex(item.raw),
        "arn": arn,
        "origin": item.origin,
        "arrived_us": arrived,
        "arrived_at": date_field(arrived),
        "write_id": write_id,
    }


def header_source(
    item: Incoming, summary: BlockSummary, state: BlockState, write_id: str
) -> dict[str, Any]:
    commit = c.to_us(summary.commit_time)
    address = summary.address
    return {
        **provenance(item, summary.stream.arn, write_id),
        "block_id": summary.block_id,
        "ledger": summary.ledger,
        "strand_id": address.strand_id,
        "sequence_no": address.sequence_no,
        "state": state,
        "commit_us": commit,
        "commit_time": date_field(commit),
        "transaction_id": summary.transaction_id,
        "block_hash": summary.block_hash.hex(),
        "statements": len(summary.statements),
        "revisions_expected": len(summary.user_revisions),
        "statement_kinds": list(item.statement_kinds),
        "summary": c.summary_body(summary),
        "delay_ms": c.delay_ms(item.arrived_at, summary.commit_time),
        "reason": None,
        "updated_us": None,
        "actor": None,
        "purged": False,
    }


def revision_source(
    item: Incoming, rev: RevisionDetails, late: bool, write_id: str
) -> dict[str, Any]:
    parts = c.RevisionParts.of(rev)
    return {
        **provenance(item, rev.stream.arn, write_id),
        "revision_id": rev.record_id,
        "block_id": rev.block_id,
        "ledger": rev.ledger,
        "strand_id": parts.strand_id,
        "sequence_no": parts.sequence_no,
        "document_id": parts.document_id,
        "version": parts.version,
        "table_name": parts.table_name,
        "table_id": parts.table_id,
        "revision": {
            "hash": parts.hash.hex(),
            "data": None if parts.data is None else b64(parts.data),
            "data_hash": None if parts.data_hash is None else parts.data_hash.hex(),
            "tx_time_us": parts.tx_time_us,
            "tx_id": parts.tx_id,
        },
        "late": late,
    }


def control_source(item: Incoming, control: ControlRecord, write_id: str) -> dict[str, Any]:
    return {
        **provenance(item, control.stream.arn, write_id),
        "kind": "control",
        "record_id": control.record_id,
        "control_type": control.control_type,
    }


def stored_copy(current: Mapping[str, Any], raw: Callable[[], bytes]) -> policy.StoredCopy:
    """A stored (or planned) record document as the put policy compares it; ``raw`` fetches its
    bytes (reads skip ``raw``)."""
    return policy.StoredCopy(
        fingerprint=current["fingerprint"],
        key=c.stored_copy_key(
            current.get("arrived_us"), current["origin"], current["fingerprint"],
            current["raw_sha256"],
        ),
        origin=current["origin"],
        arrived_us=current.get("arrived_us"),
        raw=raw,
    )  # fmt: skip


def policy_header(h: Mapping[str, Any] | None) -> policy.Header | None:
    """A block header document as the put policy reads it."""
    if h is None:
        return None
    return policy.Header(
        state=h["state"],
        purged=bool(h.get("purged")),
        body=h.get("summary") or {},
        arn=h.get("arn") or "",
    )

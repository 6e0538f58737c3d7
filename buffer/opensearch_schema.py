"""Indices, index templates and mappings of ``OpenSearchBuffer``, created idempotently.

Five indices share a prefix (``QLDB_SETTLE_INDEX_PREFIX``, default ``qldb-settle``):

- ``{prefix}-blocks``: one document per block header (``_id`` = block id): state, commit time,
  transaction id, hashes, counts, the statement classifications, the summary as a JSON body that
  rebuilds it without parsing Ion (``summary``, stored, never indexed), and the provenance of the
  copy kept (raw Ion binary as received, ARN, origin, arrival). Headers are never deleted.
- ``{prefix}-statements``: one document per statement (``_id`` = statement id), keyed by
  ``start_time``, with block address, commit time, transaction id, text, digest, classification
  and a copy of its block's state. Retention deletes them once their block is replayed and old.
- ``{prefix}-revisions``: one document per revision (``_id`` = revision id) with its block address
  and its document data as Ion binary (``revision.data``, base64, stored, never indexed).
- ``{prefix}-rejected``: rejected input and conflicting copies, raw bytes, reason, resolution.
- ``{prefix}-meta``: small documents: each strand's replayed mark and passed gaps
  (``strand/{ledger}/{strand}``), control records (their record id), the settler lease
  (``lease/settler``) and the schema version (``schema``).

Times are integer microseconds since the epoch (``*_us``, ``long``: exact, as the shared policy
counts them), with a ``date`` twin where an operator searches by time (``commit_time``,
``start_time``, ``arrived_at``). Every mapping is ``dynamic: strict``, so a field typo fails
loudly. Each index has a composable index template whose pattern is its exact name, so an index
deleted and recreated by a stray write still gets its mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.errors import ConfigError

SCHEMA_VERSION = 1

_DATE = {"type": "date", "format": "strict_date_optional_time||epoch_millis"}
_KW = {"type": "keyword"}
_KW_STORED = {"type": "keyword", "index": False, "doc_values": False}
_LONG = {"type": "long"}
# Numbers nobody searches, sorts or aggregates on: kept in _source only (no index, no doc values).
_LONG_STORED = {"type": "long", "index": False, "doc_values": False}
_BOOL = {"type": "boolean"}
_DOUBLE = {"type": "double"}
_BLOB = {"type": "binary"}  # base64; binary fields are neither indexed nor doc-valued
_OPAQUE = {"type": "object", "enabled": False}  # kept in _source, never parsed or indexed

# The copy of a record that is kept: what identifies its content, and where it came from.
_PROVENANCE = {
    "fingerprint": _KW,
    "raw": _BLOB,
    "raw_sha256": _KW,
    "arn": _KW,
    "origin": _KW,
    "arrived_us": _LONG_STORED,
    "arrived_at": _DATE,
    "write_id": _KW,  # the put call that wrote it: a retried write recognises its own copy
}

MAPPINGS: Mapping[str, Mapping[str, Any]] = {
    "blocks": {
        **_PROVENANCE,
        "arrived_us": _LONG,  # sorted on: the latest arrivals are the ingest-delay sample
        "block_id": _KW,
        "ledger": _KW,
        "strand_id": _KW,
        "sequence_no": _LONG,
        "state": _KW,
        "commit_us": _LONG,
        "commit_time": _DATE,
        "transaction_id": _KW,
        "block_hash": _KW,
        "statements": _LONG_STORED,
        "revisions_expected": _LONG_STORED,
        "statement_kinds": _KW,
        "summary": _OPAQUE,
        "delay_ms": _DOUBLE,
        "reason": _KW_STORED,
        "updated_us": _LONG_STORED,
        "actor": _KW,
        "purged": _BOOL,
    },
    "statements": {
        "statement_id": _KW,
        "block_id": _KW,
        "index": _LONG_STORED,
        "ledger": _KW,
        "strand_id": _KW,
        "sequence_no": _LONG_STORED,
        "start_us": _LONG_STORED,
        "start_time": _DATE,
        "commit_us": _LONG_STORED,
        "commit_time": _DATE,
        "transaction_id": _KW,
        "text": {"type": "text"},
        "digest": _KW,
        "kind": _KW,
        "state": _KW,
    },
    "revisions": {
        **_PROVENANCE,
        "revision_id": _KW,
        "block_id": _KW,
        "ledger": _KW,
        "strand_id": _KW,
        "sequence_no": _LONG,
        "document_id": _KW,
        "version": _LONG_STORED,
        "table_name": _KW,
        "table_id": _KW,
        "revision": _OPAQUE,
        "late": _BOOL,
    },
    "rejected": {
        "rejection_id": _KW,
        "kind": _KW,
        "reason": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
        "raw": _BLOB,
        "raw_sha256": _KW,
        "origin": _KW,
        "arrived_us": _LONG,  # sorted on: rejections are listed oldest first
        "arrived_at": _DATE,
        "record_id": _KW,
        "block_id": _KW,
        "resolved": _BOOL,
        "resolved_us": _LONG_STORED,
        "resolved_by": _KW,
        "resolution": _KW_STORED,
    },
    "meta": {
        **_PROVENANCE,
        "kind": _KW,
        "ledger": _KW,
        "strand_id": _KW,
        "replayed_through": _LONG_STORED,
        "gaps": _OPAQUE,
        "record_id": _KW,
        "control_type": _KW,
        "owner": _KW,
        "expires_us": _LONG_STORED,
        "version": _LONG_STORED,
    },
}

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,200}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexSettings:
    """Index settings that matter for the buffer (docs/opensearch.md): one primary shard is plenty
    for a settling buffer (thousands of documents a second at most); ``replicas`` None keeps the
    domain's default; ``refresh_interval`` bounds how stale a search may be, which the adapter
    removes anyway by refreshing before the settler reads."""

    shards: int = 1
    replicas: int | None = None
    refresh_interval: str = "1s"

    def body(self) -> dict[str, Any]:
        index: dict[str, Any] = {
            "number_of_shards": self.shards,
            "refresh_interval": self.refresh_interval,
        }
        if self.replicas is not None:
            index["number_of_replicas"] = self.replicas
        return {"index": index}


@dataclass(frozen=True, slots=True)
class Indices:
    """The index names of one buffer."""

    prefix: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Indices:
        if not _PREFIX.match(prefix):
            raise ConfigError(
                f"index prefix {prefix!r} is not a valid OpenSearch index name start "
                "(lowercase letters, digits, '-', '_', '.')"
            )
        return cls(prefix)

    def name(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    @property
    def blocks(self) -> str:
        return self.name("blocks")

    @property
    def statements(self) -> str:
        return self.name("statements")

    @property
    def revisions(self) -> str:
        return self.name("revisions")

    @property
    def rejected(self) -> str:
        return self.name("rejected")

    @property
    def meta(self) -> str:
        return self.name("meta")

    def all(self) -> dict[str, str]:
        """Kind → index name."""
        return {kind: self.name(kind) for kind in MAPPINGS}


def template(name: str, kind: str, settings: IndexSettings) -> dict[str, Any]:
    """The composable index template of one index (its pattern is the exact index name)."""
    return {
        "index_patterns": [name],
        "priority": 200,
        "template": {
            "settings": settings.body(),
            "mappings": {"dynamic": "strict", "properties": dict(MAPPINGS[kind])},
        },
        "_meta": {"owner": "qldb-settle", "schema_version": SCHEMA_VERSION},
    }

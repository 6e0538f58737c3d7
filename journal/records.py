"""Typed, frozen QLDB stream records (RECORDS.md), each built by a named constructor.

``record_from_ion`` takes one top-level Ion value as amazon.ion's simpleion returns it and gives a
``ControlRecord``, ``BlockSummary`` or ``RevisionDetails``, or raises ``RecordError`` naming the
missing or mistyped field by its path (``payload.blockAddress.sequenceNo``).

Deterministic ids use the ledger, not the stream (DESIGN.md), so a second or recreated QLDB stream
on the same ledger deduplicates against the first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from amazon.ion.core import IonType

from journal.errors import RecordError

RecordType = Literal["CONTROL", "BLOCK_SUMMARY", "REVISION_DETAILS"]
RECORD_TYPES: tuple[RecordType, ...] = ("CONTROL", "BLOCK_SUMMARY", "REVISION_DETAILS")
MAX_STATEMENT_CHARS = 100_000

_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:qldb:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"stream/(?P<ledger>[A-Za-z0-9_-]{1,32})/(?P<stream>[A-Za-z0-9]+)$"
)


# --- Ion access helpers -------------------------------------------------------------------------


def _ion_type(value: Any) -> IonType | None:
    return getattr(value, "ion_type", None)


# Exact types that are never an Ion null: the plain values of ``journal.ion_binary.one_pass``,
# checked first because most fields of a record are one of them.
_PLAIN = frozenset({str, int, bytes, dict, list})


def _is_null(value: Any) -> bool:
    return value is None or _ion_type(value) is IonType.NULL or getattr(value, "is_null", False)


def _get(struct: Any, name: str, path: str, *, required: bool = True) -> Any:
    if type(struct) is dict:
        value = struct.get(name)  # a plain dict holds a null as None
    elif isinstance(struct, Mapping):
        value = struct.get(name)
    else:
        raise RecordError(path or "record", "is not a struct")
    if type(value) in _PLAIN:
        return value
    if value is None or _is_null(value):
        if required:
            raise RecordError(f"{path}.{name}" if path else name, "is missing")
        return None
    return value


def _str(struct: Any, name: str, path: str, *, required: bool = True) -> str | None:
    value = _get(struct, name, path, required=required)
    if value is None or type(value) is str:
        return value
    if not isinstance(value, str) or _ion_type(value) not in (None, IonType.STRING, IonType.SYMBOL):
        raise RecordError(f"{path}.{name}" if path else name, f"is not a string ({_kind(value)})")
    return str(value)


def _req_str(struct: Any, name: str, path: str) -> str:
    value = _str(struct, name, path)
    assert value is not None
    return value


def _int(struct: Any, name: str, path: str) -> int:
    value = _get(struct, name, path)
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{path}.{name}", f"is not an int ({_kind(value)})")
    return int(value)


def _blob(struct: Any, name: str, path: str, *, required: bool = True) -> bytes | None:
    value = _get(struct, name, path, required=required)
    if value is None or type(value) is bytes:
        return value
    if not isinstance(value, bytes | bytearray) or _ion_type(value) not in (
        None,
        IonType.BLOB,
        IonType.CLOB,
    ):
        raise RecordError(f"{path}.{name}", f"is not a blob ({_kind(value)})")
    return bytes(value)


def _req_blob(struct: Any, name: str, path: str) -> bytes:
    value = _blob(struct, name, path)
    assert value is not None
    return value


def _timestamp(struct: Any, name: str, path: str) -> datetime:
    value = _get(struct, name, path)
    if not isinstance(value, datetime):
        raise RecordError(f"{path}.{name}", f"is not a timestamp ({_kind(value)})")
    if value.tzinfo is None:
        raise RecordError(f"{path}.{name}", "has no UTC offset")
    return value


def _list(struct: Any, name: str, path: str, *, required: bool = True) -> list[Any]:
    value = _get(struct, name, path, required=required)
    if value is None:
        return []
    if type(value) is not list and not isinstance(value, list):
        raise RecordError(f"{path}.{name}", f"is not a list ({_kind(value)})")
    return value


def _struct(struct: Any, name: str, path: str, *, required: bool = True) -> Mapping[str, Any]:
    value = _get(struct, name, path, required=required)
    if value is None:
        return {}
    if type(value) is not dict and not isinstance(value, Mapping):
        raise RecordError(f"{path}.{name}", f"is not a struct ({_kind(value)})")
    return value


def _kind(value: Any) -> str:
    t = _ion_type(value)
    return t.name.lower() if t is not None else type(value).__name__


def utc_millis(value: datetime) -> datetime:
    """A plain UTC datetime truncated to milliseconds (for ordering and reports)."""
    v = value.astimezone(UTC)
    return datetime(
        v.year, v.month, v.day, v.hour, v.minute, v.second,
        v.microsecond - v.microsecond % 1000, tzinfo=UTC,
    )  # fmt: skip


# --- Value objects ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRef:
    """Where a record comes from: the ledger (region, account, name) and the QLDB stream id."""

    arn: str
    region: str
    account: str
    ledger_name: str
    stream_id: str
    ledger: str = field(init=False, repr=False, compare=False)
    """The ledger key of every deterministic id: ``region:account:name``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ledger", f"{self.region}:{self.account}:{self.ledger_name}")

    @classmethod
    def from_arn(cls, arn: str, path: str = "qldbStreamArn") -> StreamRef:
        """The stream of an ARN (one object per ARN: a stream's records share it), or
        ``RecordError`` at ``path``."""
        if type(arn) is str:  # a str subclass (IonPyText) is read afresh, never cached
            known = _STREAMS.get(arn)
            if known is not None:
                return known
        m = _ARN.match(arn)
        if not m:
            raise RecordError(path, f"is not a QLDB stream ARN: {arn[:120]!r}")
        ref = cls(
            arn=arn,
            region=m["region"],
            account=m["account"],
            ledger_name=m["ledger"],
            stream_id=m["stream"],
        )
        if type(arn) is str and len(_STREAMS) < _MAX_STREAMS:
            _STREAMS[arn] = ref
        return ref


_MAX_STREAMS = 1024
_STREAMS: dict[str, StreamRef] = {}
"""``StreamRef.from_arn``'s answers by ARN (a ledger has a few streams; bounded all the same)."""


@dataclass(frozen=True, slots=True, order=True)
class BlockAddress:
    strand_id: str
    sequence_no: int

    @classmethod
    def from_ion(cls, value: Any, path: str) -> BlockAddress:
        if not isinstance(value, Mapping):
            raise RecordError(path, f"is not a struct ({_kind(value)})")
        seq = _int(value, "sequenceNo", path)
        if seq < 0:
            raise RecordError(f"{path}.sequenceNo", f"is negative ({seq})")
        return cls(strand_id=_req_str(value, "strandId", path), sequence_no=seq)

    def __str__(self) -> str:
        return f"{self.strand_id}/{self.sequence_no}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementInfo:
    index: int
    text: str
    start_time: datetime
    digest: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentInfo:
    document_id: str
    table_name: str
    table_id: str
    statements: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RevisionSummary:
    hash: bytes
    document_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RedactedRevision:
    address: BlockAddress
    table_id: str
    document_id: str
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlRecord:
    stream: StreamRef
    control_type: str

    record_type: RecordType = "CONTROL"

    @property
    def record_id(self) -> str:
        return f"{self.stream.ledger}/control/{self.stream.stream_id}/{self.control_type}"

    @classmethod
    def from_ion(cls, value: Any) -> ControlRecord:
        stream = StreamRef.from_arn(_req_str(value, "qldbStreamArn", ""))
        payload = _struct(value, "payload", "")
        return cls(stream=stream, control_type=_req_str(payload, "controlRecordType", "payload"))


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockSummary:
    stream: StreamRef
    address: BlockAddress
    transaction_id: str
    block_timestamp: datetime
    block_hash: bytes
    entries_hash: bytes
    previous_block_hash: bytes
    entries_hash_list: tuple[bytes, ...]
    statements: tuple[StatementInfo, ...]
    documents: tuple[DocumentInfo, ...]
    revision_summaries: tuple[RevisionSummary, ...]
    redactions: tuple[RedactedRevision, ...]

    record_type: RecordType = "BLOCK_SUMMARY"

    @property
    def ledger(self) -> str:
        return self.stream.ledger

    @property
    def block_id(self) -> str:
        return block_id(self.ledger, self.address)

    @property
    def record_id(self) -> str:
        return self.block_id

    def statement_id(self, index: int) -> str:
        return f"{self.block_id}/{index}"

    @property
    def commit_time(self) -> datetime:
        return self.block_timestamp

    @property
    def user_revisions(self) -> tuple[RevisionSummary, ...]:
        """Revision summaries with a document id: the ones streamed as REVISION_DETAILS."""
        return tuple(r for r in self.revision_summaries if r.document_id is not None)

    @classmethod
    def from_ion(cls, value: Any) -> BlockSummary:
        stream = StreamRef.from_arn(_req_str(value, "qldbStreamArn", ""))
        p = _struct(value, "payload", "")
        address = BlockAddress.from_ion(_get(p, "blockAddress", "payload"), "payload.blockAddress")
        info = _struct(p, "transactionInfo", "payload")
        statements = []
        for i, s in enumerate(_list(info, "statements", "payload.transactionInfo")):
            path = f"payload.transactionInfo.statements[{i}]"
            text = _req_str(s, "statement", path)
            if len(text) > MAX_STATEMENT_CHARS:
                raise RecordError(
                    f"{path}.statement",
                    f"is {len(text)} characters, over QLDB's limit of {MAX_STATEMENT_CHARS}",
                )
            statements.append(
                StatementInfo(
                    index=i,
                    text=text,
                    start_time=_timestamp(s, "startTime", path),
                    digest=_req_blob(s, "statementDigest", path),
                )
            )
        documents = []
        docs = _struct(info, "documents", "payload.transactionInfo", required=False)
        for doc_id, d in docs.items():
            path = f"payload.transactionInfo.documents.{doc_id}"
            idx = _list(d, "statements", path)
            for j, n in enumerate(idx):
                if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < len(statements):
                    raise RecordError(
                        f"{path}.statements[{j}]", f"is not a statement index ({n!r})"
                    )
            documents.append(
                DocumentInfo(
                    document_id=str(doc_id),
                    table_name=_req_str(d, "tableName", path),
                    table_id=_req_str(d, "tableId", path),
                    statements=tuple(int(n) for n in idx),
                )
            )
        summaries = []
        for i, r in enumerate(_list(p, "revisionSummaries", "payload", required=False)):
            path = f"payload.revisionSummaries[{i}]"
            summaries.append(
                RevisionSummary(
                    hash=_req_blob(r, "hash", path),
                    document_id=_str(r, "documentId", path, required=False),
                )
            )
        redactions = []
        red = _struct(p, "redactionInfo", "payload", required=False)
        for i, r in enumerate(_list(red, "revisions", "payload.redactionInfo", required=False)):
            path = f"payload.redactionInfo.revisions[{i}]"
            redactions.append(
                RedactedRevision(
                    address=BlockAddress.from_ion(_get(r, "blockAddress", path), path),
                    table_id=_req_str(r, "tableId", path),
                    document_id=_req_str(r, "documentId", path),
                    version=_int(r, "version", path),
                )
            )
        return cls(
            stream=stream,
            address=address,
            transaction_id=_req_str(p, "transactionId", "payload"),
            block_timestamp=_timestamp(p, "blockTimestamp", "payload"),
            block_hash=_req_blob(p, "blockHash", "payload"),
            entries_hash=_req_blob(p, "entriesHash", "payload"),
            previous_block_hash=_blob(p, "previousBlockHash", "payload", required=False) or b"",
            entries_hash_list=tuple(
                _blob_item(h, f"payload.entriesHashList[{i}]")
                for i, h in enumerate(_list(p, "entriesHashList", "payload", required=False))
            ),
            statements=tuple(statements),
            documents=tuple(documents),
            revision_summaries=tuple(summaries),
            redactions=tuple(redactions),
        )


def _blob_item(value: Any, path: str) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise RecordError(path, f"is not a blob ({_kind(value)})")
    return bytes(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class RevisionMetadata:
    id: str
    version: int
    tx_time: datetime
    tx_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RevisionDetails:
    """One committed document revision. ``data`` is the Ion value as loaded (None: deletion or
    redacted); ``data_hash`` is set instead of ``data`` on a redacted revision. ``data_ion`` is
    ``data`` as a self-contained Ion binary stream when the reader had its bytes in hand (the
    ingest's one pass: ``journal.ion_binary.one_pass.read_record``), so that storing it does not
    write it again; None otherwise. It is not part of the record's value (equality, repr)."""

    stream: StreamRef
    table_name: str
    table_id: str
    address: BlockAddress
    hash: bytes
    data: Any
    data_hash: bytes | None
    metadata: RevisionMetadata
    data_ion: bytes | None = field(default=None, compare=False, repr=False)

    record_type: RecordType = "REVISION_DETAILS"

    @property
    def ledger(self) -> str:
        return self.stream.ledger

    @property
    def document_id(self) -> str:
        return self.metadata.id

    @property
    def version(self) -> int:
        return self.metadata.version

    @property
    def record_id(self) -> str:
        return revision_id(self.ledger, self.metadata.id, self.metadata.version)

    @property
    def block_id(self) -> str:
        return block_id(self.ledger, self.address)

    @property
    def is_deletion(self) -> bool:
        return self.data is None and self.data_hash is None

    @property
    def is_redacted(self) -> bool:
        return self.data_hash is not None

    @classmethod
    def from_ion(cls, value: Any, *, data_ion: bytes | None = None) -> RevisionDetails:
        """The revision of a stream record's value; ``data_ion``: its ``data`` as Ion binary
        (kept only when ``data`` is a document)."""
        stream = StreamRef.from_arn(_req_str(value, "qldbStreamArn", ""))
        p = _struct(value, "payload", "")
        table = _struct(p, "tableInfo", "payload")
        rev = _struct(p, "revision", "payload")
        meta = _struct(rev, "metadata", "payload.revision")
        data = _get(rev, "data", "payload.revision", required=False)
        if data is not None and not isinstance(data, Mapping):
            raise RecordError("payload.revision.data", f"is not a struct ({_kind(data)})")
        version = _int(meta, "version", "payload.revision.metadata")
        if version < 0:
            raise RecordError("payload.revision.metadata.version", f"is negative ({version})")
        return cls(
            stream=stream,
            table_name=_req_str(table, "tableName", "payload.tableInfo"),
            table_id=_req_str(table, "tableId", "payload.tableInfo"),
            address=BlockAddress.from_ion(
                _get(rev, "blockAddress", "payload.revision"), "payload.revision.blockAddress"
            ),
            hash=_req_blob(rev, "hash", "payload.revision"),
            data=data,
            data_hash=_blob(rev, "dataHash", "payload.revision", required=False),
            data_ion=None if data is None else data_ion,
            metadata=RevisionMetadata(
                id=_req_str(meta, "id", "payload.revision.metadata"),
                version=version,
                tx_time=_timestamp(meta, "txTime", "payload.revision.metadata"),
                tx_id=_req_str(meta, "txId", "payload.revision.metadata"),
            ),
        )


StreamRecord = ControlRecord | BlockSummary | RevisionDetails


def record_from_ion(value: Any, *, data_ion: bytes | None = None) -> StreamRecord:
    """Build the typed record for one top-level stream record, or raise ``RecordError``.
    ``data_ion``: a revision's document as Ion binary, when the reader has it
    (``RevisionDetails.data_ion``)."""
    if not isinstance(value, Mapping):
        raise RecordError("record", f"is not a struct ({_kind(value)})")
    record_type = _req_str(value, "recordType", "")
    if record_type == "BLOCK_SUMMARY":
        return BlockSummary.from_ion(value)
    if record_type == "REVISION_DETAILS":
        return RevisionDetails.from_ion(value, data_ion=data_ion)
    if record_type == "CONTROL":
        return ControlRecord.from_ion(value)
    raise RecordError("recordType", f"is not a known record type: {record_type[:60]!r}")


def block_id(ledger: str, address: BlockAddress) -> str:
    return f"{ledger}/{address.strand_id}/{address.sequence_no}"


def revision_id(ledger: str, document_id: str, version: int) -> str:
    return f"{ledger}/{document_id}/{version}"

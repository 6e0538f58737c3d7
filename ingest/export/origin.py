"""Which source delivered a buffered record, read from the stream id its ``qldbStreamArn`` carries.

A stream record carries its QLDB stream id in ``qldbStreamArn``. The records an export stands for
carry, in that place, one of two marks followed by the export id (``LedgerRef.stream_arn``):

- ``export`` + id: an Ion export (``ION_TEXT`` or ``ION_BINARY``), lossless like the stream;
- ``exportjson`` + id: a JSON Lines export (``JSON``), whose documents QLDB down-converted
  (decimals as numbers, timestamps, blobs and symbols as strings, annotations dropped). This is
  the one flag every record of such an export carries into the buffer and on to the settler:
  ``down_converted`` is the only place it is read (``settler.block_checks``, ``settler.plan``).

The stream id is outside every deterministic id and outside the record fingerprint, so the mark
changes no dedupe: a block from an export and the same block from the stream are still
duplicates, and the buffer keeps whichever copy came first, with its mark. Each record keeps its
own: a block summary from the stream with revisions from a JSON Lines export has down-converted
revisions. Pure string work: imported by the ingest path and the settler alike.
"""

from __future__ import annotations

from journal.records import StreamRef

EXPORT_STREAM_PREFIX = "export"
JSON_EXPORT_STREAM_PREFIX = "exportjson"
EXPORT_ID_LENGTH = 22  # QLDB export ids, like stream ids, are 22 base62 characters


def export_stream_id(export_id: str, fmt: str) -> str:
    """The stream id the records of export ``export_id`` in format ``fmt`` carry."""
    prefix = JSON_EXPORT_STREAM_PREFIX if fmt == "JSON" else EXPORT_STREAM_PREFIX
    return f"{prefix}{export_id}"


def from_export(stream: StreamRef | str) -> bool:
    """True when the record came from a journal export (of any format)."""
    stream_id = stream.stream_id if isinstance(stream, StreamRef) else stream
    return stream_id.startswith(EXPORT_STREAM_PREFIX)


def down_converted(stream: StreamRef | str) -> bool:
    """True when the record came from a JSON Lines export: its document data lost its Ion types,
    so the hashes that need them cannot be recomputed from it."""
    stream_id = stream.stream_id if isinstance(stream, StreamRef) else stream
    return (
        stream_id.startswith(JSON_EXPORT_STREAM_PREFIX)
        and len(stream_id) == len(JSON_EXPORT_STREAM_PREFIX) + EXPORT_ID_LENGTH
    )

"""The project's own error hierarchy. Each error carries what it concerns (a field, a record, a
block, a file) and its docstring states what it means. Adapters turn vendor errors into these."""

from __future__ import annotations


class SettleError(Exception):
    """Base of every error qldb-settle raises on purpose."""


class RecordError(SettleError):
    """A stream record was refused: a field is missing, mistyped or out of range."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field} {reason}")


class DecodeError(SettleError):
    """Input could not be decoded (base64, KPL aggregate, gzip, Ion, JSON)."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


class InputError(SettleError):
    """Input is not what the command reads at all (missing file, not JSON or Ion): exit 2."""


class ReplayError(SettleError):
    """A block could not be replayed into the destination; the settler halts at that block."""

    def __init__(self, block: str, reason: str) -> None:
        self.block = block
        self.reason = reason
        super().__init__(f"block {block}: {reason}")


class DownConvertedCopy(ReplayError):
    """A block replayed by its statements writes a document whose replica copy came from a JSON
    Lines export (Ion types down-converted): the statements cannot reproduce the block's
    revisions on it. The settler replays such a block from its revisions instead (they carry the
    source's Ion data, and the copy is exact again)."""

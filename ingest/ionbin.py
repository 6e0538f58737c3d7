"""Find where each Ion binary stream starts in a concatenation of them (a Firehose backup object).

Firehose writes the data of each Kinesis record one after the other, each a complete Ion binary
stream that starts with the binary version marker (BVM ``E0 01 00 EA``). Those four bytes may also
occur inside a value (a blob, a string), so the streams are found by walking the top-level values
by their type descriptors and lengths, not by searching for the marker.
"""

from __future__ import annotations

from dataclasses import dataclass

BVM = b"\xe0\x01\x00\xea"


class IonBinaryError(ValueError):
    """The top level of an Ion binary stream is malformed at ``offset``."""

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(f"offset {offset}: {reason}")


@dataclass(frozen=True, slots=True)
class Segment:
    """``data[start:end]`` is one Ion binary stream (BVM first), or a broken stretch with its
    ``error`` (from the stream's start up to the next marker that could start a stream)."""

    start: int
    end: int
    error: str | None = None


def _varuint(data: bytes, pos: int) -> tuple[int, int]:
    start, value = pos, 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if b & 0x80:
            return value, pos
        if pos - start > 9:
            break
    raise IonBinaryError(start, "truncated or overlong VarUInt length")


def _skip_value(data: bytes, pos: int) -> int:
    """Position after the top-level value (or NOP pad) whose type descriptor is at ``pos``."""
    td = data[pos]
    t, ln = td >> 4, td & 0x0F
    pos += 1
    if t == 0xF:
        raise IonBinaryError(pos - 1, f"reserved type descriptor 0x{td:02x}")
    if t == 0xE and ln in (0, 1, 2, 15):
        raise IonBinaryError(pos - 1, f"invalid annotation wrapper 0x{td:02x}")
    if t == 0x1:
        if ln not in (0, 1, 15):
            raise IonBinaryError(pos - 1, f"invalid bool 0x{td:02x}")
        return pos
    if ln == 15:  # typed null, no payload
        return pos
    if ln == 14 or (t == 0xD and ln == 1):  # length follows (sorted struct: always)
        length, pos = _varuint(data, pos)
    else:
        length = ln
    end = pos + length
    if end > len(data):
        raise IonBinaryError(
            pos, f"value of {length} bytes runs past the end ({len(data) - pos} bytes left)"
        )
    return end


def segments(data: bytes) -> list[Segment]:
    """Split ``data`` (which starts with a BVM) into its Ion binary streams.

    A malformed stretch becomes one error segment reaching to the next BVM after its start (or
    the end), and splitting resumes there, so one broken record does not hide the next ones.
    """
    out: list[Segment] = []
    start = 0
    pos = 0
    n = len(data)
    while start < n:
        if data[start : start + 4] != BVM:
            nxt = data.find(BVM, start + 1)
            end = nxt if nxt >= 0 else n
            out.append(Segment(start, end, f"offset {start}: no Ion binary version marker"))
            start = pos = end
            continue
        pos = start + 4
        try:
            while pos < n and data[pos : pos + 4] != BVM:
                pos = _skip_value(data, pos)
        except IonBinaryError as exc:
            nxt = data.find(BVM, start + 4)
            end = nxt if nxt >= 0 else n
            out.append(Segment(start, end, str(exc)))
            start = pos = end
            continue
        out.append(Segment(start, pos))
        start = pos
    return out

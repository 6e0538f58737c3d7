"""The structure of Ion binary, checked before amazon.ion reads it, and where each stream starts.

``check(data)``: amazon.ion 0.15's C extension can loop forever on malformed binary (a value whose
length runs past its container, seen with a mutated real record): in the Lambda that would stall
the shard until the function times out, again and again. So the ingest path first checks every
record here, in pure Python, for the structure the binary encoding promises (every length inside
its container, valid type descriptors, well-formed VarUInt/VarInt fields, UTF-8 strings); only
then does simpleion (or the fast reader) read it. ``IonBinaryError`` names the offset.

``segments(data)``: Firehose writes the data of each Kinesis record one after the other, each a
complete Ion binary stream that starts with the binary version marker (BVM ``E0 01 00 EA``). Those
four bytes may also occur inside a value (a blob, a string), so the streams are found by walking
the top-level values by their type descriptors and lengths, not by searching for the marker.

It walks the same bytes as the fast reader (``reader``) but does not build values, and answers
differently: the reader hands what it does not take to simpleion, this refuses what is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass

from journal.ion_binary.encoding import BVM, IonBinaryError, read_varuint


@dataclass(frozen=True, slots=True)
class Segment:
    """``data[start:end]`` is one Ion binary stream (BVM first), or a broken stretch with its
    ``error`` (from the stream's start up to the next marker that could start a stream)."""

    start: int
    end: int
    error: str | None = None


# Containers nested deeper than this are refused at the door: everything after ingest (the
# fingerprint, the buffer, the Ion hash, the ledger's codec) walks values recursively, and a few
# hundred levels exhaust Python's recursion limit there. Real QLDB documents nest a handful.
_MAX_DEPTH = 100


def _value(data: bytes, pos: int, end: int) -> tuple[int, tuple[int, int, bool] | None]:
    """Check the value whose type descriptor is at ``pos`` (inside ``end``); return the position
    after it and, for a list, sexp or struct, its content span and whether it is a struct."""
    at = pos
    td = data[pos]
    t, ln = td >> 4, td & 0x0F
    pos += 1
    if t == 0xF:
        raise IonBinaryError(at, f"reserved type descriptor 0x{td:02x}")
    if t == 0x1:
        if ln not in (0, 1, 15):
            raise IonBinaryError(at, f"invalid bool 0x{td:02x}")
        return pos, None
    if ln == 15:
        if t == 0xE:
            raise IonBinaryError(at, "invalid annotation wrapper 0xef")
        return pos, None
    if ln == 14 or (t == 0xD and ln == 1):
        length, pos = read_varuint(data, pos, end, "length")
    else:
        length = ln
    vend = pos + length
    if vend > end:
        raise IonBinaryError(
            at, f"value of {length} bytes runs past the end of its container by {vend - end}"
        )
    if t == 0x0:  # NOP pad
        return vend, None
    if t == 0x3 and length == 0:
        raise IonBinaryError(at, "negative zero int")
    if t == 0x4 and length not in (0, 4, 8):
        raise IonBinaryError(at, f"float of {length} bytes")
    if t in (0x5, 0x6) and length:
        _, p = read_varuint(data, pos, vend, "decimal exponent or timestamp offset")
        if t == 0x6:
            read_varuint(data, p, vend, "timestamp year")
    if t == 0x6 and length == 0:
        raise IonBinaryError(at, "empty timestamp")
    if t == 0x7 and length > 8:
        raise IonBinaryError(at, f"symbol id of {length} bytes")
    if t == 0x8:
        try:
            data[pos:vend].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IonBinaryError(pos + exc.start, "string is not UTF-8") from None
    if t in (0xB, 0xC, 0xD):
        return vend, (pos, vend, t == 0xD)
    if t == 0xE:
        if ln in (0, 1, 2):
            raise IonBinaryError(at, f"invalid annotation wrapper 0x{td:02x}")
        ann_len, p = read_varuint(data, pos, vend, "annotation length")
        if ann_len == 0 or p + ann_len >= vend:
            raise IonBinaryError(at, "annotation wrapper without annotations or value")
        q = p
        while q < p + ann_len:
            _, q = read_varuint(data, q, p + ann_len, "annotation")
        inner = data[q]
        if inner >> 4 == 0xE or (inner >> 4 == 0 and inner & 0x0F != 15):
            raise IonBinaryError(q, "annotation wrapper around an annotation wrapper or pad")
        after, child = _value(data, q, vend)
        if after != vend:
            raise IonBinaryError(q, "annotation wrapper holds more than one value")
        return vend, child
    return vend, None


def check_value(data: bytes, pos: int, end: int) -> int:
    """Check the value at ``pos`` and everything nested in it; return the position after it."""
    after, child = _value(data, pos, end)
    # (position, end, in a struct); iterative, so deep nesting cannot overflow the stack.
    stack: list[tuple[int, int, bool]] = [child] if child is not None else []
    while stack:
        if len(stack) > _MAX_DEPTH:
            raise IonBinaryError(stack[-1][0], f"nested deeper than {_MAX_DEPTH}")
        p, e, in_struct = stack.pop()
        while p < e:
            if in_struct:
                if data[p] & 0x80:  # a one-byte field name, the usual case
                    p += 1
                else:
                    _, p = read_varuint(data, p, e, "field name")
                if p >= e:
                    raise IonBinaryError(p, "struct field name without a value")
            td = data[p]
            if td >> 4 in _PLAIN_SCALARS and td & 0x0F < 14:
                # a string, int or lob with its length in the type descriptor: the checks
                # _value makes of it, inline (the most common values of a record)
                q = p + 1 + (td & 0x0F)
                if q > e:
                    _value(data, p, e)  # raises, naming the value
                if td >> 4 == 8:
                    try:
                        data[p + 1 : q].decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise IonBinaryError(p + 1 + exc.start, "string is not UTF-8") from None
                elif td == 0x30:
                    raise IonBinaryError(p, "negative zero int")
                p = q
                continue
            p, nested = _value(data, p, e)
            if nested is not None:
                stack.append((p, e, in_struct))
                stack.append(nested)
                break
    return after


# Types whose only checks, with a length under 14, are that length and (strings) UTF-8: positive
# and negative ints, strings, clobs and blobs.
_PLAIN_SCALARS = frozenset({0x2, 0x3, 0x8, 0x9, 0xA})


def _stream_end(data: bytes, start: int) -> int:
    """End of the Ion binary stream whose version marker is at ``start``: the next top-level
    version marker, or the end of ``data``."""
    pos, n = start + 4, len(data)
    while pos < n:
        if data[pos] == 0xE0:
            if data[pos : pos + 4] != BVM:
                raise IonBinaryError(pos, "invalid version marker")
            break
        pos = check_value(data, pos, n)
    return pos


def check(data: bytes) -> None:
    """Raise ``IonBinaryError`` unless ``data`` is a well-formed Ion binary stream (version
    markers, values, and every nested value inside its container)."""
    if data[:4] != BVM:
        raise IonBinaryError(0, "no Ion binary version marker")
    pos = 0
    while pos < len(data):
        pos = _stream_end(data, pos)


def segments(data: bytes) -> list[Segment]:
    """Split ``data`` into its Ion binary streams, each checked as ``check`` does.

    A malformed stretch becomes one error segment reaching to the next version marker after its
    start (or the end), and splitting resumes there, so one broken record does not hide the
    records after it. Every byte of ``data`` is in exactly one segment.
    """
    out: list[Segment] = []
    start, n = 0, len(data)
    while start < n:
        try:
            if data[start : start + 4] != BVM:
                raise IonBinaryError(start, "no Ion binary version marker")
            end = _stream_end(data, start)
        except IonBinaryError as exc:
            nxt = data.find(BVM, start + 1)
            end = nxt if nxt >= 0 else n
            out.append(Segment(start, end, str(exc)))
        else:
            out.append(Segment(start, end))
        start = end
    return out

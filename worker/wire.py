"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the body."""

from __future__ import annotations

import struct

from worker.errors import RecordRejectedError
from worker.records import RejectCode

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")


def schema_id_of(raw: bytes | None) -> int | None:
    """The schema id the bytes name, or None when they are not in the wire format."""
    if raw is None or len(raw) < HEADER.size or raw[0] != MAGIC_BYTE:
        return None
    return HEADER.unpack_from(raw)[1]


def split(raw: bytes, what: str) -> tuple[int, memoryview]:
    """The schema id and the Avro body; reject bytes not in the wire format."""
    if len(raw) < HEADER.size:
        raise RecordRejectedError(
            RejectCode.UNDECODABLE,
            f"{what} has {len(raw)} bytes, fewer than the {HEADER.size} of the "
            "Confluent wire-format header",
        )
    if raw[0] != MAGIC_BYTE:
        raise RecordRejectedError(
            RejectCode.UNDECODABLE,
            f"{what} starts with byte 0x{raw[0]:02x}, not the wire format's magic "
            "byte 0x00",
        )
    return HEADER.unpack_from(raw)[1], memoryview(raw)[HEADER.size :]

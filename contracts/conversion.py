"""One column's value, from the JSON an activity carries to the Avro datum and back.

The contract field's Avro type decides everything; JSON has only numbers, strings,
booleans and null, so richer types travel as strings with one accepted spelling
each. Nothing is rounded, truncated or guessed: a value that would change on the
way in is refused with a ``ConversionError`` whose ``code`` names the rule.

Accepted input, by Avro type:

* int, long: a JSON integer in range; ``5.0`` is refused, integers are written
  as integers.
* float, double: any finite JSON number; float must fit float32.
* boolean: ``true`` or ``false``. string: any text PostgreSQL can store (no NUL,
  no unpaired surrogate). enum: one of the symbols, exactly.
* bytes: standard base64 with padding, in its canonical spelling.
* decimal: a string holding a JSON number (``"12.30"``, ``"-1.5e2"``) or a JSON
  integer; never a JSON float, which has already lost digits. The value must fit
  the scale without rounding and the precision once scaled.
* date: ``YYYY-MM-DD``.
* timestamp-millis/micros: ``YYYY-MM-DDTHH:MM[:SS[.fraction]]`` with an optional
  ``Z`` or ``+HH:MM`` offset (a space may replace the ``T``). A timestamp with an
  offset is converted to UTC; one without an offset is read as UTC, since the
  column holds instants and UTC is the only zone a sender can be assumed to mean.
  Digits finer than the field's unit must be zero.
* local-timestamp-millis/micros: the same, but an offset is refused: the column
  holds wall-clock times, and dropping an offset would silently change the value.
* uuid: the 8-4-4-4-12 hexadecimal form, either case.

Canonical JSON, produced by ``to_json``: integers and booleans as themselves,
floats as JSON floats, decimals as strings with exactly ``scale`` fractional digits
and no exponent (``"12.30"``), dates as ``YYYY-MM-DD``, timestamps as
``YYYY-MM-DDTHH:MM:SS.fff+00:00`` (millis) or ``...SS.ffffff+00:00`` (micros),
local timestamps the same without the offset, bytes as padded standard base64 and
UUIDs in lower case.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import math
import re
import struct
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from contracts.errors import ConversionError
from contracts.sqltypes import AvroType, resolve_avro

# What each kind must be, worded to follow "must be".
_DESCRIPTIONS: dict[str, str] = {
    "int": "an int32",
    "long": "an int64",
    "float": "a float32 number",
    "double": "a float64 number",
    "boolean": "a boolean",
    "string": "a string",
    "enum": "one of {symbols}",
    "bytes": "a base64 string",
    "decimal": "a decimal string",
    "date": "an ISO 8601 date",
    "timestamp-millis": "an ISO 8601 timestamp",
    "timestamp-micros": "an ISO 8601 timestamp",
    "local-timestamp-millis": "an ISO 8601 timestamp without offset",
    "local-timestamp-micros": "an ISO 8601 timestamp without offset",
    "uuid": "a UUID",
}

_INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}

# Fractional-second digits each timestamp kind keeps, and the unit's name.
_TIMESTAMP_UNITS: dict[str, tuple[int, str]] = {
    "timestamp-millis": (3, "millisecond"),
    "timestamp-micros": (6, "microsecond"),
    "local-timestamp-millis": (3, "millisecond"),
    "local-timestamp-micros": (6, "microsecond"),
}

_TIMESPECS: dict[int, str] = {3: "milliseconds", 6: "microseconds"}

# A JSON number, as text: the one spelling of a decimal every client can produce.
_DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_TIMESTAMP_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
    r"(?::[0-9]{2}(?:\.(?P<fraction>[0-9]+))?)?"
    r"(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})?"
)

_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)

_UTC = datetime.UTC


def to_datum(avro_type: Any, value: Any) -> Any:
    """Convert a decoded JSON value to the datum fastavro writes for ``avro_type``."""
    resolved = resolve_avro(avro_type)
    if value is None:
        if resolved.nullable:
            return None
        raise ConversionError("null_not_allowed", _describe(resolved), value)

    return _TO_DATUM[resolved.kind](resolved, value)


def to_json(avro_type: Any, datum: Any) -> Any:
    """Convert a datum of ``avro_type`` to its canonical JSON value.

    The datum is trusted: it came from ``to_datum`` or from a record fastavro read.
    """
    if datum is None:
        return None
    resolved = resolve_avro(avro_type)
    return _TO_JSON[resolved.kind](resolved, datum)


def _describe(resolved: AvroType) -> str:
    template = _DESCRIPTIONS[resolved.kind]
    if resolved.kind != "enum":
        return template
    return template.format(symbols=", ".join(resolved.symbols))


def _wrong_type(resolved: AvroType, value: Any) -> ConversionError:
    return ConversionError("wrong_type", _describe(resolved), value)


def _text(resolved: AvroType, value: Any) -> str:
    """The value if it is a JSON string, which every text-borne type needs."""
    if not isinstance(value, str):
        raise _wrong_type(resolved, value)
    return value


# --- numbers and booleans -----------------------------------------------------


def _integer_to_datum(resolved: AvroType, value: Any) -> int:
    if isinstance(value, float):
        expected = f"{_describe(resolved)} written without a fraction or exponent"
        raise ConversionError("not_integral", expected, value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(resolved, value)

    low, high = _INTEGER_RANGES[resolved.kind]
    if not low <= value <= high:
        raise ConversionError("out_of_range", _describe(resolved), value)
    return value


def _double_to_datum(resolved: AvroType, value: Any) -> float:
    """Accept integers too: JSON has one number type and senders drop ``.0``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(resolved, value)

    try:
        number = float(value)
    except OverflowError:
        raise ConversionError("out_of_range", _describe(resolved), value) from None

    # Python's JSON decoder accepts NaN and Infinity, which no column can compare.
    if not math.isfinite(number):
        raise ConversionError("not_finite", "a finite number", value)
    return number


def _float_to_datum(resolved: AvroType, value: Any) -> float:
    """A float32 rounds like any float; only a value that becomes infinite fails."""
    number = _double_to_datum(resolved, value)
    try:
        struct.pack("<f", number)
    except OverflowError:
        raise ConversionError("out_of_range", _describe(resolved), value) from None
    return number


def _boolean_to_datum(resolved: AvroType, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _wrong_type(resolved, value)
    return value


# --- text ---------------------------------------------------------------------


def _string_to_datum(resolved: AvroType, value: Any) -> str:
    """Refuse what PostgreSQL text cannot hold rather than fail in the worker."""
    text = _text(resolved, value)
    if "\x00" in text or not _encodable(text):
        expected = "text without NUL characters or unpaired surrogates"
        raise ConversionError("invalid_text", expected, value)
    return text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _enum_to_datum(resolved: AvroType, value: Any) -> str:
    text = _text(resolved, value)
    if text not in resolved.symbols:
        raise ConversionError("not_a_symbol", _describe(resolved), value)
    return text


def _bytes_to_datum(resolved: AvroType, value: Any) -> bytes:
    """Only the canonical spelling, so that every byte string has exactly one."""
    text = _text(resolved, value)
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        data = None

    if data is None or base64.b64encode(data).decode("ascii") != text:
        raise ConversionError("invalid_base64", _describe(resolved), value)
    return data


def _uuid_to_datum(resolved: AvroType, value: Any) -> str:
    text = _text(resolved, value)
    if not _UUID_TEXT.fullmatch(text):
        raise ConversionError("invalid_uuid", _describe(resolved), value)
    return text.lower()


# --- decimals -----------------------------------------------------------------


def _decimal_to_datum(resolved: AvroType, value: Any) -> Decimal:
    number = _read_decimal(resolved, value)
    sign, digits, exponent = _trimmed(number)

    if -exponent > resolved.scale:
        expected = f"a decimal with at most {resolved.scale} digits after the point"
        raise ConversionError("decimal_scale", expected, value)

    # Digits before the point; 0.05 has none, hence -1 here, which is fine.
    whole = resolved.precision - resolved.scale
    if len(digits) + exponent > whole:
        expected = f"a decimal with at most {whole} digits before the point"
        raise ConversionError("decimal_precision", expected, value)

    padded = digits + (0,) * (exponent + resolved.scale)
    return Decimal((sign, padded or (0,), -resolved.scale))


def _read_decimal(resolved: AvroType, value: Any) -> Decimal:
    """The exact number the sender wrote; a JSON float is already inexact."""
    if isinstance(value, float):
        expected = "a decimal written as a string"
        raise ConversionError("inexact_decimal", expected, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)

    text = _text(resolved, value)
    if not _DECIMAL_TEXT.fullmatch(text):
        raise ConversionError("invalid_decimal", _describe(resolved), value)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ConversionError("invalid_decimal", _describe(resolved), value) from None


def _trimmed(number: Decimal) -> tuple[int, tuple[int, ...], int]:
    """Sign, digits and exponent without trailing zeros; zero has no digits.

    Counting on the digit tuple, never on an int built from it, keeps a hostile
    ``"1e999999999"`` cheap to refuse.
    """
    sign, digits, exponent = number.as_tuple()
    exponent = int(exponent)  # always finite: the grammar admits no NaN or inf

    end = len(digits)
    while end and digits[end - 1] == 0:
        end -= 1
    if end == 0:
        return 0, (), 0
    return sign, tuple(digits[:end]), exponent + len(digits) - end


# --- dates and times ----------------------------------------------------------


def _date_to_datum(resolved: AvroType, value: Any) -> datetime.date:
    """Only ``YYYY-MM-DD``: ``fromisoformat`` alone would take week dates too."""
    text = _text(resolved, value)
    date = _parse_date(text) if _DATE_TEXT.fullmatch(text) else None
    if date is None:
        raise ConversionError("invalid_date", _describe(resolved), value)
    return date


def _parse_date(text: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def _timestamp_to_datum(resolved: AvroType, value: Any) -> datetime.datetime:
    moment = _read_timestamp(resolved, value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_UTC)
    try:
        return moment.astimezone(_UTC)
    except OverflowError:
        raise ConversionError("out_of_range", _describe(resolved), value) from None


def _local_timestamp_to_datum(resolved: AvroType, value: Any) -> datetime.datetime:
    moment = _read_timestamp(resolved, value)
    if moment.tzinfo is not None:
        raise ConversionError("offset_not_allowed", _describe(resolved), value)
    return moment


def _read_timestamp(resolved: AvroType, value: Any) -> datetime.datetime:
    """Parse one of the accepted spellings, refusing digits the unit would drop."""
    text = _text(resolved, value)
    match = _TIMESTAMP_TEXT.fullmatch(text)
    moment = _parse_datetime(text) if match else None
    if moment is None:
        raise ConversionError("invalid_timestamp", _describe(resolved), value)

    digits, unit = _TIMESTAMP_UNITS[resolved.kind]
    if (match["fraction"] or "")[digits:].strip("0"):
        expected = f"a timestamp with at most {unit} precision"
        raise ConversionError("timestamp_precision", expected, value)
    return moment


def _parse_datetime(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


# --- back to JSON -------------------------------------------------------------


def _same(resolved: AvroType, datum: Any) -> Any:
    return datum


def _float_to_json(resolved: AvroType, datum: Any) -> float:
    return float(datum)


def _bytes_to_json(resolved: AvroType, datum: Any) -> str:
    return base64.b64encode(datum).decode("ascii")


def _decimal_to_json(resolved: AvroType, datum: Any) -> str:
    """Fixed-point text with exactly ``scale`` fractional digits; zero unsigned."""
    number = datum if datum else Decimal(0)
    return f"{number:.{resolved.scale}f}"


def _date_to_json(resolved: AvroType, datum: Any) -> str:
    return datum.isoformat()


def _timestamp_to_json(resolved: AvroType, datum: Any) -> str:
    moment = datum.astimezone(_UTC) if datum.tzinfo else datum.replace(tzinfo=_UTC)
    return moment.isoformat(timespec=_timespec(resolved))


def _local_timestamp_to_json(resolved: AvroType, datum: Any) -> str:
    return datum.isoformat(timespec=_timespec(resolved))


def _timespec(resolved: AvroType) -> str:
    digits, _ = _TIMESTAMP_UNITS[resolved.kind]
    return _TIMESPECS[digits]


def _uuid_to_json(resolved: AvroType, datum: Any) -> str:
    """fastavro reads a uuid back as ``uuid.UUID``; ``to_datum`` makes a str."""
    return str(datum).lower()


_Converter = Callable[[AvroType, Any], Any]

_TO_DATUM: dict[str, _Converter] = {
    "int": _integer_to_datum,
    "long": _integer_to_datum,
    "float": _float_to_datum,
    "double": _double_to_datum,
    "boolean": _boolean_to_datum,
    "string": _string_to_datum,
    "enum": _enum_to_datum,
    "bytes": _bytes_to_datum,
    "decimal": _decimal_to_datum,
    "date": _date_to_datum,
    "timestamp-millis": _timestamp_to_datum,
    "timestamp-micros": _timestamp_to_datum,
    "local-timestamp-millis": _local_timestamp_to_datum,
    "local-timestamp-micros": _local_timestamp_to_datum,
    "uuid": _uuid_to_datum,
}

_TO_JSON: dict[str, _Converter] = {
    "int": _same,
    "long": _same,
    "float": _float_to_json,
    "double": _float_to_json,
    "boolean": _same,
    "string": _same,
    "enum": _same,
    "bytes": _bytes_to_json,
    "decimal": _decimal_to_json,
    "date": _date_to_json,
    "timestamp-millis": _timestamp_to_json,
    "timestamp-micros": _timestamp_to_json,
    "local-timestamp-millis": _local_timestamp_to_json,
    "local-timestamp-micros": _local_timestamp_to_json,
    "uuid": _uuid_to_json,
}

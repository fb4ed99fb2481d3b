"""JSON values to Avro datums and back, and what fastavro makes of the datums."""

from __future__ import annotations

import base64
import datetime
import io
import struct
import uuid
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.catalogue import load_catalogue
from contracts.conversion import to_datum, to_json
from contracts.errors import ContractError, ConversionError
from tests.unit.avro_types import (
    DATE,
    DECIMAL_2_2,
    DECIMAL_5_0,
    DECIMAL_12_2,
    ENUM,
    FIXED_DECIMAL,
    LOCAL_MICROS,
    LOCAL_MILLIS,
    TS_MICROS,
    TS_MILLIS,
    UUID,
)

UTC = datetime.UTC
FLOAT32_MAX = 3.4028234663852886e38
AN_ID = "0e8c9a2b-1111-4222-8333-444455556666"

# (Avro type, JSON value, datum expected, canonical JSON expected)
VALID: list[tuple[Any, Any, Any, Any]] = [
    ("int", 101, 101, 101),
    ("int", -(2**31), -(2**31), -(2**31)),
    ("int", 2**31 - 1, 2**31 - 1, 2**31 - 1),
    ("long", 2**63 - 1, 2**63 - 1, 2**63 - 1),
    ("long", -(2**63), -(2**63), -(2**63)),
    (["null", "int"], None, None, None),
    (["int", "null"], 7, 7, 7),
    ("float", 1.5, 1.5, 1.5),
    ("float", 3, 3.0, 3.0),
    ("float", FLOAT32_MAX, FLOAT32_MAX, FLOAT32_MAX),
    ("double", -2.25, -2.25, -2.25),
    ("double", 10**20, 1e20, 1e20),
    ("boolean", True, True, True),
    ("boolean", False, False, False),
    ("string", "", "", ""),
    ("string", "caf\u00e9 \U0001f600", "caf\u00e9 \U0001f600", "caf\u00e9 \U0001f600"),
    (ENUM, "SHUT", "SHUT", "SHUT"),
    ("bytes", "", b"", ""),
    ("bytes", "AAEC/w==", b"\x00\x01\x02\xff", "AAEC/w=="),
    (DECIMAL_12_2, "12.30", Decimal("12.30"), "12.30"),
    (DECIMAL_12_2, "1.2", Decimal("1.20"), "1.20"),
    (DECIMAL_12_2, "1.230", Decimal("1.23"), "1.23"),
    (DECIMAL_12_2, "-0.05", Decimal("-0.05"), "-0.05"),
    (DECIMAL_12_2, "-0.00", Decimal("0.00"), "0.00"),
    (DECIMAL_12_2, "1.5e2", Decimal("150.00"), "150.00"),
    (DECIMAL_12_2, "12345E-2", Decimal("123.45"), "123.45"),
    (DECIMAL_12_2, "9999999999.99", Decimal("9999999999.99"), "9999999999.99"),
    (DECIMAL_12_2, 42, Decimal("42.00"), "42.00"),
    (DECIMAL_5_0, "12300E-2", Decimal("123"), "123"),
    (DECIMAL_2_2, "0.99", Decimal("0.99"), "0.99"),
    (DECIMAL_2_2, "0", Decimal("0.00"), "0.00"),
    (FIXED_DECIMAL, "-12.3456", Decimal("-12.3456"), "-12.3456"),
    (DATE, "2024-02-29", datetime.date(2024, 2, 29), "2024-02-29"),
    (
        TS_MICROS,
        "2024-05-01T12:30:00.123456Z",
        datetime.datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=UTC),
        "2024-05-01T12:30:00.123456+00:00",
    ),
    (
        TS_MICROS,
        "2024-05-01T18:00+05:30",
        datetime.datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        "2024-05-01T12:30:00.000000+00:00",
    ),
    (
        TS_MICROS,
        "2024-05-01 12:30:00",
        datetime.datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        "2024-05-01T12:30:00.000000+00:00",
    ),
    (
        TS_MICROS,
        "2024-05-01T12:30:00.12345600-01:00",
        datetime.datetime(2024, 5, 1, 13, 30, 0, 123456, tzinfo=UTC),
        "2024-05-01T13:30:00.123456+00:00",
    ),
    (
        TS_MILLIS,
        "2024-05-01T12:30:00.123Z",
        datetime.datetime(2024, 5, 1, 12, 30, 0, 123000, tzinfo=UTC),
        "2024-05-01T12:30:00.123+00:00",
    ),
    (
        TS_MILLIS,
        "2024-05-01T12:30:00.120000Z",
        datetime.datetime(2024, 5, 1, 12, 30, 0, 120000, tzinfo=UTC),
        "2024-05-01T12:30:00.120+00:00",
    ),
    (
        LOCAL_MICROS,
        "2024-05-01T12:30:00.5",
        datetime.datetime(2024, 5, 1, 12, 30, 0, 500000),
        "2024-05-01T12:30:00.500000",
    ),
    (
        LOCAL_MILLIS,
        "2024-05-01T12:30",
        datetime.datetime(2024, 5, 1, 12, 30),
        "2024-05-01T12:30:00.000",
    ),
    (UUID, AN_ID, AN_ID, AN_ID),
    (UUID, AN_ID.upper(), AN_ID, AN_ID),
    (["null", UUID], None, None, None),
]

# (Avro type, JSON value, code expected)
INVALID: list[tuple[Any, Any, str]] = [
    ("int", None, "null_not_allowed"),
    (UUID, None, "null_not_allowed"),
    ("int", "101", "wrong_type"),
    ("int", True, "wrong_type"),
    ("int", [1], "wrong_type"),
    ("int", 5.5, "not_integral"),
    ("int", 5.0, "not_integral"),
    ("int", 2**31, "out_of_range"),
    ("int", -(2**31) - 1, "out_of_range"),
    ("long", 2**63, "out_of_range"),
    ("long", 1e3, "not_integral"),
    ("float", "1.5", "wrong_type"),
    ("float", False, "wrong_type"),
    ("float", 3.5e38, "out_of_range"),
    ("float", 10**39, "out_of_range"),
    ("double", 10**400, "out_of_range"),
    ("double", float("nan"), "not_finite"),
    ("double", float("-inf"), "not_finite"),
    ("boolean", 1, "wrong_type"),
    ("boolean", "true", "wrong_type"),
    ("string", 5, "wrong_type"),
    ("string", {"a": 1}, "wrong_type"),
    ("string", "a\x00b", "invalid_text"),
    ("string", "\ud800", "invalid_text"),
    (ENUM, "open", "not_a_symbol"),
    (ENUM, 0, "wrong_type"),
    ("bytes", "AAEC/w", "invalid_base64"),
    ("bytes", "AAEC_w==", "invalid_base64"),
    ("bytes", "AAEC/w==\n", "invalid_base64"),
    ("bytes", "QR==", "invalid_base64"),
    ("bytes", [0, 1], "wrong_type"),
    (DECIMAL_12_2, 1.5, "inexact_decimal"),
    (DECIMAL_12_2, True, "wrong_type"),
    (DECIMAL_12_2, "1.234", "decimal_scale"),
    (DECIMAL_12_2, "1e-3", "decimal_scale"),
    (DECIMAL_12_2, "10000000000", "decimal_precision"),
    (DECIMAL_12_2, "1e10", "decimal_precision"),
    (DECIMAL_12_2, "1e999999999", "decimal_precision"),
    (DECIMAL_2_2, "1.00", "decimal_precision"),
    (DECIMAL_5_0, "0.5", "decimal_scale"),
    (DECIMAL_12_2, "NaN", "invalid_decimal"),
    (DECIMAL_12_2, "Infinity", "invalid_decimal"),
    (DECIMAL_12_2, "", "invalid_decimal"),
    (DECIMAL_12_2, " 1.5", "invalid_decimal"),
    (DECIMAL_12_2, "+1.5", "invalid_decimal"),
    (DECIMAL_12_2, ".5", "invalid_decimal"),
    (DECIMAL_12_2, "1,5", "invalid_decimal"),
    (DECIMAL_12_2, "1_000", "invalid_decimal"),
    (DECIMAL_12_2, "\u0661", "invalid_decimal"),
    (DATE, "2024-02-30", "invalid_date"),
    (DATE, "20240501", "invalid_date"),
    (DATE, "2024-W18-3", "invalid_date"),
    (DATE, "2024-05-01T00:00:00", "invalid_date"),
    (DATE, 20240501, "wrong_type"),
    (TS_MICROS, "2024-05-01", "invalid_timestamp"),
    (TS_MICROS, "2024-05-01T25:00:00Z", "invalid_timestamp"),
    (TS_MICROS, "2024-05-01T12:30:00+0530", "invalid_timestamp"),
    (TS_MICROS, "20240501T123000Z", "invalid_timestamp"),
    (TS_MICROS, 1714566600, "wrong_type"),
    (TS_MICROS, "0001-01-01T00:00:00+01:00", "out_of_range"),
    (TS_MICROS, "2024-05-01T12:30:00.1234567Z", "timestamp_precision"),
    (TS_MILLIS, "2024-05-01T12:30:00.1234Z", "timestamp_precision"),
    (LOCAL_MICROS, "2024-05-01T12:30:00Z", "offset_not_allowed"),
    (LOCAL_MILLIS, "2024-05-01T12:30:00+00:00", "offset_not_allowed"),
    (LOCAL_MILLIS, "2024-05-01T12:30:00.0001", "timestamp_precision"),
    (UUID, "{0e8c9a2b-1111-4222-8333-444455556666}", "invalid_uuid"),
    (UUID, "urn:uuid:0e8c9a2b-1111-4222-8333-444455556666", "invalid_uuid"),
    (UUID, "0e8c9a2b11114222833344445555666", "invalid_uuid"),
    (UUID, "0e8c9a2b-1111-4222-8333-44445555666g", "invalid_uuid"),
    (UUID, 42, "wrong_type"),
]


@pytest.mark.parametrize(("avro_type", "value", "datum", "canonical"), VALID)
def test_to_datum_accepts(
    avro_type: Any, value: Any, datum: Any, canonical: Any
) -> None:
    assert _same_datum(to_datum(avro_type, value), datum)


@pytest.mark.parametrize(("avro_type", "value", "datum", "canonical"), VALID)
def test_to_json_gives_the_canonical_form(
    avro_type: Any, value: Any, datum: Any, canonical: Any
) -> None:
    assert to_json(avro_type, to_datum(avro_type, value)) == canonical
    assert _same_datum(to_datum(avro_type, canonical), datum)


@pytest.mark.parametrize(("avro_type", "value", "code"), INVALID)
def test_to_datum_refuses(avro_type: Any, value: Any, code: str) -> None:
    with pytest.raises(ConversionError) as caught:
        to_datum(avro_type, value)

    assert caught.value.code == code
    assert caught.value.given is value
    assert str(caught.value).startswith(f"must be {caught.value.expected}, not ")


@pytest.mark.parametrize(
    ("avro_type", "value", "message"),
    [
        ("int", 3000000000, "must be an int32, not 3000000000"),
        ("int", None, "must be an int32, not null"),
        ("boolean", "yes", 'must be a boolean, not "yes"'),
        (ENUM, "LOST", 'must be one of OPEN, SHUT, not "LOST"'),
        (DATE, "May 1", 'must be an ISO 8601 date, not "May 1"'),
        (
            DECIMAL_12_2,
            "1.234",
            'must be a decimal with at most 2 digits after the point, not "1.234"',
        ),
    ],
)
def test_messages_read_as_a_fragment(avro_type: Any, value: Any, message: str) -> None:
    with pytest.raises(ConversionError) as caught:
        to_datum(avro_type, value)

    assert str(caught.value) == message


def test_long_values_are_cut_short_in_messages() -> None:
    with pytest.raises(ConversionError) as caught:
        to_datum("int", "x" * 10_000)

    assert len(str(caught.value)) < 100
    assert str(caught.value).endswith("xxx...")


def test_an_unsupported_field_type_is_a_contract_error_not_a_value_error() -> None:
    with pytest.raises(ContractError):
        to_datum({"type": "array", "items": "int"}, [1])


@pytest.mark.parametrize(
    ("avro_type", "value"),
    [(avro_type, value) for avro_type, value, _, _ in VALID]
    + [(["null", TS_MICROS], None)],
)
def test_fastavro_writes_and_reads_back_the_same_datum(
    avro_type: Any, value: Any
) -> None:
    datum = to_datum(avro_type, value)

    assert _same_datum(_through_fastavro(avro_type, datum), datum)


def test_a_float32_field_takes_any_number_in_range_and_stores_the_nearest() -> None:
    datum = to_datum("float", 0.1)

    assert datum == 0.1
    assert (
        _through_fastavro("float", datum)
        == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    )


def test_a_whole_orders_record_goes_through_fastavro() -> None:
    contract = load_catalogue()["orders"]
    activity = {
        "order_id": 9_000_000_001,
        "customer_id": AN_ID.upper(),
        "status": "PAID",
        "total": "1234.5",
        "currency": "EUR",
        "placed_at": "2024-05-01T14:30:00.250+02:00",
        "ships_on": "2024-05-03",
        "is_gift": False,
        "note": None,
    }
    fields = contract.value_schema()["fields"]
    record = {f["name"]: to_datum(f["type"], activity[f["name"]]) for f in fields}

    schema = fastavro.parse_schema(contract.value_schema())
    read = _write_and_read(schema, record)

    assert {f["name"]: to_json(f["type"], read[f["name"]]) for f in fields} == {
        **activity,
        "customer_id": AN_ID,
        "total": "1234.50",
        "placed_at": "2024-05-01T12:30:00.250000+00:00",
    }


# --- properties -----------------------------------------------------------------

_OFFSETS = st.integers(-14 * 60, 14 * 60).map(
    lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
)
_MOMENTS = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.none() | _OFFSETS,
)
_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))

# Valid JSON values for each kind of field, in every spelling a sender may use.
_VALUES: list[tuple[Any, st.SearchStrategy[Any]]] = [
    ("int", st.integers(-(2**31), 2**31 - 1)),
    ("long", st.integers(-(2**63), 2**63 - 1)),
    ("float", st.floats(width=32, allow_nan=False, allow_infinity=False)),
    (
        "double",
        st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
    ),
    ("boolean", st.booleans()),
    ("string", _TEXT),
    (ENUM, st.sampled_from(["OPEN", "SHUT"])),
    ("bytes", st.binary().map(lambda data: base64.b64encode(data).decode("ascii"))),
    (
        DECIMAL_12_2,
        st.integers(-(10**12) + 1, 10**12 - 1).map(lambda n: str(Decimal(n).scaleb(-2)))
        | st.integers(-(10**10) + 1, 10**10 - 1),
    ),
    (
        FIXED_DECIMAL,
        st.integers(-(10**18) + 1, 10**18 - 1).map(lambda n: f"{n}E-4"),
    ),
    (DATE, st.dates().map(datetime.date.isoformat)),
    (TS_MICROS, _MOMENTS.map(datetime.datetime.isoformat)),
    (
        TS_MILLIS,
        _MOMENTS.map(
            lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        ).map(datetime.datetime.isoformat),
    ),
    (LOCAL_MICROS, st.datetimes().map(datetime.datetime.isoformat)),
    (UUID, st.uuids().map(str) | st.uuids().map(lambda value: str(value).upper())),
]


@pytest.mark.parametrize(("avro_type", "values"), _VALUES)
@given(data=st.data())
def test_canonical_form_is_a_fixed_point_and_survives_fastavro(
    avro_type: Any, values: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    value = data.draw(values)
    datum = to_datum(avro_type, value)
    canonical = to_json(avro_type, datum)

    assert _same_datum(to_datum(avro_type, canonical), datum)
    assert to_json(avro_type, to_datum(avro_type, canonical)) == canonical
    assert to_json(avro_type, _through_fastavro(avro_type, datum)) == canonical


# --- helpers --------------------------------------------------------------------


def _same_datum(actual: Any, expected: Any) -> bool:
    """Equal, and of the same type: 1.0 == 1 and a naive datetime is not aware.

    fastavro reads a uuid back as uuid.UUID, where to_datum makes a str.
    """
    if isinstance(actual, uuid.UUID):
        actual = str(actual)
    if isinstance(expected, datetime.datetime):
        return actual == expected and actual.tzinfo == expected.tzinfo
    if isinstance(expected, Decimal):
        return isinstance(actual, Decimal) and str(actual) == str(expected)
    return type(actual) is type(expected) and actual == expected


def _through_fastavro(avro_type: Any, datum: Any) -> Any:
    record = {"type": "record", "name": "probe", "fields": []}
    record["fields"] = [{"name": "value", "type": avro_type}]
    return _write_and_read(fastavro.parse_schema(record), {"value": datum})["value"]


def _write_and_read(schema: Any, record: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, schema)

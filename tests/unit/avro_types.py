"""Avro field types the unit tests of conversion and SQL types share."""

from __future__ import annotations

DECIMAL_12_2 = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
DECIMAL_5_0 = {"type": "bytes", "logicalType": "decimal", "precision": 5}
DECIMAL_2_2 = {"type": "bytes", "logicalType": "decimal", "precision": 2, "scale": 2}
FIXED_DECIMAL = {
    "type": "fixed",
    "name": "money",
    "size": 8,
    "logicalType": "decimal",
    "precision": 18,
    "scale": 4,
}
ENUM = {"type": "enum", "name": "status", "symbols": ["OPEN", "SHUT"]}
DATE = {"type": "int", "logicalType": "date"}
TS_MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
TS_MICROS = {"type": "long", "logicalType": "timestamp-micros"}
LOCAL_MILLIS = {"type": "long", "logicalType": "local-timestamp-millis"}
LOCAL_MICROS = {"type": "long", "logicalType": "local-timestamp-micros"}
UUID = {"type": "string", "logicalType": "uuid"}

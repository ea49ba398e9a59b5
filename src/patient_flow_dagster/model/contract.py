"""The landing event contract (docs/architecture.md, "Event contract") as Spark schemas."""

from __future__ import annotations

from pyspark.sql.types import LongType, StringType, StructField, StructType

# Integers are read as 64-bit so that files from producers writing int32 and int64 both load
# (Spark widens int32 to bigint when reading Parquet); silver narrows them with try_cast.
LANDING_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("patient_id", StringType()),
        StructField("gender", StringType()),
        StructField("age", LongType()),
        StructField("department", StringType()),
        StructField("admission_time", StringType()),
        StructField("discharge_time", StringType()),
        StructField("bed_id", LongType()),
        StructField("hospital_id", LongType()),
        # Contract v2: a stay's life as events (absent in v1 stay records).
        StructField("event_type", StringType()),
        StructField("encounter_id", StringType()),
        StructField("event_time", StringType()),
        StructField("sequence", LongType()),
    ]
)

# The kinds of event (HL7 v2 ADT: A01 admit, A02 transfer, A03 discharge, A08 update,
# A11/A12/A13 cancels). STAY is a v1 record: one row with the whole stay known so far.
STAY, ADMIT, TRANSFER, DISCHARGE, UPDATE = "STAY", "ADMIT", "TRANSFER", "DISCHARGE", "UPDATE"
CANCEL_ADMIT, CANCEL_TRANSFER, CANCEL_DISCHARGE = (
    "CANCEL_ADMIT",
    "CANCEL_TRANSFER",
    "CANCEL_DISCHARGE",
)
EVENT_TYPES = (
    STAY,
    ADMIT,
    TRANSFER,
    DISCHARGE,
    UPDATE,
    CANCEL_ADMIT,
    CANCEL_TRANSFER,
    CANCEL_DISCHARGE,
)
ADMITTING = (STAY, ADMIT)  # events that open (or restate) an encounter
DEMOGRAPHIC = (STAY, ADMIT, UPDATE)  # events whose gender and age dim_patient records

# Fields that identify a patient on their own: never shown in metadata, logs or quarantine reasons.
IDENTIFYING = ("patient_id",)

CONTRACT_FIELDS = tuple(field.name for field in LANDING_SCHEMA.fields if field.name != "event_id")
# Columns a landing file may leave out: the event id is derived from the content, and v1 stay
# records carry none of the v2 fields. Any other missing column is noted in the file's ledger.
OPTIONAL_FIELDS = ("event_id", "event_type", "encounter_id", "event_time", "sequence")

# Parquet physical types accepted for each column (pyarrow type strings), used to reject a whole
# landing file with a reason instead of letting Spark skip it half-read.
ACCEPTED_PARQUET_TYPES = {
    "event_id": {"string", "large_string"},
    "patient_id": {"string", "large_string"},
    "gender": {"string", "large_string"},
    "age": {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"},
    "department": {"string", "large_string"},
    "admission_time": {"string", "large_string"},
    "discharge_time": {"string", "large_string"},
    "bed_id": {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"},
    "hospital_id": {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"},
    "event_type": {"string", "large_string"},
    "encounter_id": {"string", "large_string"},
    "event_time": {"string", "large_string"},
    "sequence": {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"},
}


def partition_key(event: dict) -> str | None:
    """The broker partition key of an event: its encounter, so that one encounter's events stay
    in one partition, in order; v1 stay records (no encounter_id) go by patient, whose derived
    encounters then share a partition too."""
    return event.get("encounter_id") or event.get("patient_id")

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
    ]
)

CONTRACT_FIELDS = tuple(field.name for field in LANDING_SCHEMA.fields if field.name != "event_id")

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
}

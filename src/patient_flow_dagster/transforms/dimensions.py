"""Gold dimensions: dim_patient (SCD type 2) and dim_department (SCD type 1)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, IntegerType, StringType, StructField, StructType

from patient_flow_dagster.model.contract import DEMOGRAPHIC
from patient_flow_dagster.model.reference import Reference
from patient_flow_dagster.model.tables import DIM_HOSPITAL, DIM_PATIENT
from patient_flow_dagster.transforms.keys import surrogate_key


def patient_versions(events: DataFrame) -> DataFrame:
    """SCD2 history of (gender, age) per patient, ordered by event time, not arrival.

    `events` holds every silver event of the patients to rebuild, pseudonymized (patient_pseudonym,
    gender, age, event_type, event_time_ts, event_id); the demographics of stay records, admissions
    and updates count (a transfer or discharge restates them, it does not correct them). Consecutive
    events with the same attributes collapse into one version; a version is valid from its first
    event until the next version starts. Because the whole history of a patient is rebuilt, a late
    event lands in the right place.
    """
    events = events.filter(F.col("event_type").isin(*DEMOGRAPHIC))
    by_time = Window.partitionBy("patient_pseudonym").orderBy("event_time_ts", "event_id")
    attributes = F.struct("gender", "age")
    starts_version = F.lag(attributes).over(by_time).isNull() | ~F.lag(attributes).over(
        by_time
    ).eqNullSafe(attributes)
    first_of_version = (
        events.select("patient_pseudonym", "gender", "age", "event_time_ts", "event_id")
        .withColumn("_starts", starts_version)
        .withColumn("_row", F.row_number().over(by_time))
        .filter(F.col("_starts") | (F.col("_row") == 1))
    )
    version_order = Window.partitionBy("patient_pseudonym").orderBy("valid_from")
    return (
        first_of_version.select(
            surrogate_key("patient_pseudonym", "age", "gender").alias("patient_sk"),
            "patient_pseudonym",
            "gender",
            "age",
            F.col("event_time_ts").alias("valid_from"),
        )
        .withColumn("valid_to", F.lead("valid_from").over(version_order))
        .withColumn("is_current", F.col("valid_to").isNull())
        .select(*DIM_PATIENT.column_names)
    )


def department_reference(spark: SparkSession, reference: Reference) -> DataFrame:
    """Bed capacity and the inpatient flag per (department, hospital_id), from the hospital's
    reference data."""
    schema = StructType(
        [
            StructField("department", StringType(), False),
            StructField("hospital_id", IntegerType(), False),
            StructField("bed_capacity", IntegerType(), False),
            StructField("inpatient", BooleanType(), False),
        ]
    )
    rows = [
        (d.department, d.hospital_id, d.bed_capacity, d.inpatient) for d in reference.departments
    ]
    return spark.createDataFrame(rows, schema)


def department_rows(events: DataFrame, reference: DataFrame) -> DataFrame:
    """dim_department rows for the (department, hospital_id) pairs seen in `events`."""
    pairs = events.select("department", "hospital_id").distinct()
    return pairs.join(reference, ["department", "hospital_id"], "left").select(
        surrogate_key("department", "hospital_id").alias("department_sk"),
        "department",
        "hospital_id",
        "bed_capacity",
        "inpatient",
    )


def hospital_rows(spark: SparkSession, reference: Reference) -> DataFrame:
    """dim_hospital: every hospital of the reference data, with its time zone."""
    return spark.createDataFrame(
        [(h.hospital_id, h.name, h.time_zone) for h in reference.hospitals],
        DIM_HOSPITAL.spark_schema,
    )

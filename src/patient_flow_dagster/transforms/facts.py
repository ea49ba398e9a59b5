"""Gold facts: one row per encounter with point-in-time dimension keys, and its movements."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.model.tables import FACT_ADMISSIONS, FACT_MOVEMENTS
from patient_flow_dagster.transforms.encounters import ADMITTED
from patient_flow_dagster.transforms.local_time import local_date, wall_clock, with_time_zone
from patient_flow_dagster.transforms.silver import length_of_stay_hours, stay_category


def _department_key(dim_department: DataFrame, prefix: str) -> DataFrame:
    return dim_department.select(
        F.col("department").alias(f"{prefix}_dept"),
        F.col("hospital_id").alias(f"{prefix}_hosp"),
        F.col("department_sk").alias(f"{prefix}_department_sk"),
    )


def _with_department_key(
    rows: DataFrame, dim_department: DataFrame, department: str, prefix: str
) -> DataFrame:
    """Left join: a missing dimension row shows up as a null key (the foreign-key checks
    report it) instead of a silently dropped row."""
    keys = _department_key(dim_department, prefix)
    return rows.join(
        keys,
        (F.col(department) == F.col(f"{prefix}_dept"))
        & (F.col("hospital_id") == F.col(f"{prefix}_hosp")),
        "left",
    )


def admissions(
    encounters: DataFrame,
    dim_patient: DataFrame,
    dim_department: DataFrame,
    dim_hospital: DataFrame,
) -> DataFrame:
    """One fact row per admitted encounter (`encounters.encounter_summary`), keyed to the patient
    version valid at admission and to its admitting and current departments; the admission's
    hour, day of week, month and date are the hospital's local ones."""
    patient = dim_patient.select(
        F.col("patient_pseudonym").alias("_pid"), "patient_sk", "valid_from", "valid_to"
    )
    valid_at_admission = (
        (F.col("patient_pseudonym") == F.col("_pid"))
        & (F.col("valid_from") <= F.col("admission_time_ts"))
        & (F.col("valid_to").isNull() | (F.col("admission_time_ts") < F.col("valid_to")))
    )
    rows = encounters.withColumn(
        "current_department", F.coalesce("current_department", "department")
    ).withColumn("current_bed_id", F.coalesce("current_bed_id", "bed_id"))
    rows = _with_department_key(
        rows.join(patient, valid_at_admission, "left"), dim_department, "department", "_a"
    )
    rows = _with_department_key(rows, dim_department, "current_department", "_c")
    rows = with_time_zone(rows, dim_hospital)
    admitted_at = wall_clock("admission_time_ts")
    hours = length_of_stay_hours(F.col("admission_time_ts"), F.col("discharge_time_ts"))
    return (
        rows.withColumn("department_sk", F.col("_a_department_sk"))
        .withColumn("current_department_sk", F.col("_c_department_sk"))
        .withColumn("length_of_stay_hours", hours)
        .withColumn("stay_category", stay_category(hours))
        .withColumn("admission_hour", F.hour(admitted_at))
        .withColumn("admission_day_of_week", F.dayofweek(admitted_at))
        .withColumn("admission_month", F.month(admitted_at))
        .withColumn("admission_date", local_date("admission_time_ts"))
        .withColumn("is_currently_admitted", F.col("status") == ADMITTED)
        .select(*FACT_ADMISSIONS.column_names)
    )


def movements(segments: DataFrame, dim_department: DataFrame) -> DataFrame:
    """Fact rows of the stay segments (`encounters.segments`) keyed to their department."""
    return (
        _with_department_key(segments, dim_department, "department", "_m")
        .withColumn("department_sk", F.col("_m_department_sk"))
        .select(*FACT_MOVEMENTS.column_names)
    )

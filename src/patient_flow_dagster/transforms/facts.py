"""Gold fact: one row per admission with point-in-time dimension keys."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.model.tables import FACT_ADMISSIONS


def admissions(events: DataFrame, dim_patient: DataFrame, dim_department: DataFrame) -> DataFrame:
    """Join silver events to the patient version valid at admission and to their department.

    Left joins keep every event: a missing dimension row shows up as a null key, which the
    foreign-key checks report, instead of a silently dropped admission.
    """
    patient = dim_patient.select(
        F.col("patient_id").alias("_pid"), "patient_sk", "valid_from", "valid_to"
    )
    valid_at_admission = (
        (F.col("patient_id") == F.col("_pid"))
        & (F.col("valid_from") <= F.col("admission_time_ts"))
        & (F.col("valid_to").isNull() | (F.col("admission_time_ts") < F.col("valid_to")))
    )
    department = dim_department.select(
        F.col("department").alias("_dept"), F.col("hospital_id").alias("_hosp"), "department_sk"
    )
    return (
        events.join(patient, valid_at_admission, "left")
        .join(
            department,
            (F.col("department") == F.col("_dept")) & (F.col("hospital_id") == F.col("_hosp")),
            "left",
        )
        .withColumn("admission_date", F.to_date("admission_time_ts"))
        .withColumn("is_currently_admitted", F.col("discharge_time_ts").isNull())
        .select(*FACT_ADMISSIONS.column_names)
    )

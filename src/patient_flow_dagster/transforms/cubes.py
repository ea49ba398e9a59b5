"""Gold KPI cubes of the original pipeline: admissions and mean stay by two dimensions."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def exact_mean_hours(hours: Column) -> Column:
    """Mean rounded to 2 decimals, computed in DECIMAL: hours carry 2 decimals already, so the
    sum is exact and the result does not depend on the order Spark adds the rows in (a double
    sum can round 103.665 either way between two runs on the same data)."""
    return F.round(F.avg(hours.cast("decimal(14,2)")), 2).cast("double")


def _admission_cube(rows: DataFrame, *dimensions: str) -> DataFrame:
    """Unordered: a sort before a write costs a sampling job that computes the cube twice, and
    readers order the few rows themselves."""
    return rows.groupBy(*dimensions).agg(
        F.count("*").alias("num_admissions"),
        exact_mean_hours(F.col("length_of_stay_hours")).alias("avg_length_of_stay_hours"),
    )


def admissions_by_gender_department(
    fact: DataFrame, dim_patient: DataFrame, dim_department: DataFrame
) -> DataFrame:
    """num_admissions and avg_length_of_stay_hours (completed stays) per gender x department."""
    rows = fact.join(dim_patient.select("patient_sk", "gender").distinct(), "patient_sk").join(
        dim_department.select("department_sk", "department"), "department_sk"
    )
    return _admission_cube(rows, "gender", "department")


def admissions_by_department_hospital(fact: DataFrame, dim_department: DataFrame) -> DataFrame:
    """num_admissions and avg_length_of_stay_hours (completed stays) per department x hospital."""
    rows = fact.join(
        dim_department.select("department_sk", "department", F.col("hospital_id").alias("_h")),
        "department_sk",
    ).drop("hospital_id").withColumnRenamed("_h", "hospital_id")
    return _admission_cube(rows, "department", "hospital_id")

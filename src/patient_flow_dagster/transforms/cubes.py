"""Gold KPI cubes of the original pipeline: admissions and mean stay by two dimensions.

A cube is kept as additive totals per group (admissions, completed stays, total hours), and
the mean is derived from them: totals of new fact rows add to the stored ones (see
`transforms.changes`), so a run costs what changed in the fact, not the fact's size.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.transforms.changes import weight_of

CUBE_TOTALS = ["num_admissions", "completed_stays", "total_length_of_stay_hours"]
HOURS = "decimal(24,2)"  # hours carry 2 decimals: sums in DECIMAL are exact in any order


def exact_mean_hours(hours: Column) -> Column:
    """Mean rounded to 2 decimals, computed in DECIMAL: hours carry 2 decimals already, so the
    sum is exact and the result does not depend on the order Spark adds the rows in (a double
    sum can round 103.665 either way between two runs on the same data)."""
    return F.round(F.avg(hours.cast("decimal(14,2)")), 2).cast("double")


def mean_of_totals(total_hours: Column, count: Column) -> Column:
    """total / count rounded half-up to 2 decimals, in DECIMAL (exact: the quotient keeps far
    more digits than any 2-decimal tie needs); null for no stays."""
    return F.when(count > 0, F.round(total_hours / count, 2)).cast("double")


def admission_totals(rows: DataFrame, *dimensions: str) -> DataFrame:
    """Per group: admissions, completed stays and their total hours, each row counted with
    its weight (1, or -1 for a fact row's old image)."""
    weight = weight_of(rows)
    hours = F.col("length_of_stay_hours").cast(HOURS)
    return rows.groupBy(*dimensions).agg(
        F.sum(weight).cast("long").alias("num_admissions"),
        F.coalesce(F.sum(F.when(hours.isNotNull(), weight)), F.lit(0))
        .cast("long")
        .alias("completed_stays"),
        F.coalesce(F.sum(hours * weight), F.lit(0)).cast(HOURS).alias("total_length_of_stay_hours"),
    )


def admission_cube(totals: DataFrame) -> DataFrame:
    """The cube from its totals: groups with admissions, and their mean completed stay.
    Unordered: a sort before a write costs a sampling job, and readers order the few rows."""
    return totals.filter(F.col("num_admissions") != 0).withColumn(
        "avg_length_of_stay_hours",
        mean_of_totals(F.col("total_length_of_stay_hours"), F.col("completed_stays")),
    )


def gender_department_rows(
    fact: DataFrame, dim_patient: DataFrame, dim_department: DataFrame
) -> DataFrame:
    """Fact rows with the patient's gender and the department (both fixed by the surrogate
    keys, which hash them)."""
    return fact.join(dim_patient.select("patient_sk", "gender").distinct(), "patient_sk").join(
        dim_department.select("department_sk", "department"), "department_sk"
    )


def department_hospital_rows(fact: DataFrame, dim_department: DataFrame) -> DataFrame:
    """Fact rows with their department and the department's hospital."""
    return (
        fact.join(
            dim_department.select("department_sk", "department", F.col("hospital_id").alias("_h")),
            "department_sk",
        )
        .drop("hospital_id")
        .withColumnRenamed("_h", "hospital_id")
    )


def gender_department_totals(
    fact: DataFrame, dim_patient: DataFrame, dim_department: DataFrame
) -> DataFrame:
    """The gender x department cube's totals of `fact` (the whole fact, or signed changes)."""
    return admission_totals(
        gender_department_rows(fact, dim_patient, dim_department), "gender", "department"
    )


def department_hospital_totals(fact: DataFrame, dim_department: DataFrame) -> DataFrame:
    """The department x hospital cube's totals of `fact` (the whole fact, or signed changes)."""
    return admission_totals(
        department_hospital_rows(fact, dim_department), "department", "hospital_id"
    )


def admissions_by_gender_department(
    fact: DataFrame, dim_patient: DataFrame, dim_department: DataFrame
) -> DataFrame:
    """num_admissions and avg_length_of_stay_hours (completed stays) per gender x department."""
    return admission_cube(gender_department_totals(fact, dim_patient, dim_department))

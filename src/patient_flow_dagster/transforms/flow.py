"""The flow figures from the fact: length-of-stay statistics per department (from the movement
segments, `census.placements`) and admissions and discharges per day (from the encounters,
`census.admitted_encounters`). Pure PySpark."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.transforms.changes import weight_of
from patient_flow_dagster.transforms.cubes import exact_mean_hours
from patient_flow_dagster.transforms.local_time import local_date


def quantiles(values: Column, *fractions: float) -> Column:
    """Exact percentiles (linear interpolation) from one aggregate: each percentile buffers and
    sorts every value of its group, so one call per quantile would do that again."""
    return F.percentile(values, F.array(*(F.lit(q) for q in fractions)))


def length_of_stay_stats(segments: DataFrame) -> DataFrame:
    """Completed segments (from `placements`) per department x hospital: count, mean,
    median, p90 (exact, linear interpolation), max, and the stay-category mix."""
    completed = segments.filter(F.col("length_of_stay_hours").isNotNull())
    hours = F.col("length_of_stay_hours")
    stats = completed.groupBy("department", "hospital_id").agg(
        F.count(F.lit(1)).alias("completed_stays"),
        exact_mean_hours(hours).alias("mean_hours"),
        quantiles(hours, 0.5, 0.9).alias("_quantiles"),
        F.max(hours).alias("max_hours"),
        F.sum((F.col("stay_category") == "Short Stay").cast("int")).alias("short_stays"),
        F.sum((F.col("stay_category") == "Medium Stay").cast("int")).alias("medium_stays"),
        F.sum((F.col("stay_category") == "Long Stay").cast("int")).alias("long_stays"),
    )
    return stats.select(
        "department",
        "hospital_id",
        "completed_stays",
        "mean_hours",
        F.round(F.col("_quantiles")[0], 2).alias("median_hours"),
        F.round(F.col("_quantiles")[1], 2).alias("p90_hours"),
        "max_hours",
        "short_stays",
        "medium_stays",
        "long_stays",
    )


DAILY_FLOW_TOTALS = ["admissions", "discharges"]


def daily_flow_totals(encounters: DataFrame) -> DataFrame:
    """Admissions per admission day and discharges per discharge day (the hospital's local days),
    per hospital, each encounter counted with its weight (1, or -1 for a fact row's old image)."""
    weight = weight_of(encounters)
    admitted = encounters.select(
        "hospital_id",
        local_date("admission_time_ts").alias("day"),
        weight.alias("admissions"),
        F.lit(0).alias("discharges"),
    )
    discharged = encounters.filter(F.col("discharge_time_ts").isNotNull()).select(
        "hospital_id",
        local_date("discharge_time_ts").alias("day"),
        F.lit(0).alias("admissions"),
        weight.alias("discharges"),
    )
    return (
        admitted.unionByName(discharged)
        .groupBy("hospital_id", "day")
        .agg(*(F.sum(c).cast("long").alias(c) for c in DAILY_FLOW_TOTALS))
    )


def daily_flow_from_totals(totals: DataFrame) -> DataFrame:
    """Days with any admission or discharge, and the net change in patients."""
    return totals.filter((F.col("admissions") != 0) | (F.col("discharges") != 0)).select(
        "hospital_id",
        "day",
        "admissions",
        "discharges",
        (F.col("admissions") - F.col("discharges")).alias("net_change"),
    )


def daily_flow(encounters: DataFrame) -> DataFrame:
    """Admissions, discharges and net change in patients per local day x hospital."""
    return daily_flow_from_totals(daily_flow_totals(encounters))

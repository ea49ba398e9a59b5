"""The checks of the bed meeting's figures (assets/daily.py): the midnight census against the
movement segments, each summary against the table it summarizes, bounds, and every local date
in the calendar."""

from __future__ import annotations

from dagster import AssetCheckResult
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.assets.checking import Check, CheckRun, count_result
from patient_flow_dagster.assets.kpi_checks import sums_match_fact
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.transforms import census
from patient_flow_dagster.transforms.daily_figures import UNIT


def _differing(left: DataFrame, right: DataFrame, keys: list[str]) -> int:
    """Keys whose figures differ between two frames of (keys, figure) (a key missing on one
    side differs)."""
    return (
        left.withColumnRenamed("figure", "_l")
        .join(right.withColumnRenamed("figure", "_r"), keys, "full_outer")
        .filter(~F.coalesce(F.col("_l"), F.lit(0)).eqNullSafe(F.coalesce(F.col("_r"), F.lit(0))))
        .count()
    )


def _broken(table: DataFrame, condition: str) -> int:
    return table.filter(f"NOT ({condition})").count()


def midnight_census_matches_movements(run: CheckRun) -> AssetCheckResult:
    """At each hospital's latest midnight: present per department = the segments open then."""
    spark, lake = run.spark, run.lake
    midnights = lake.read(spark, t.MIDNIGHT_CENSUS)
    latest = midnights.join(
        midnights.groupBy("hospital_id").agg(F.max("local_date").alias("local_date")),
        ["hospital_id", "local_date"],
    )
    placed = census.placements(
        lake.read(spark, t.FACT_MOVEMENTS),
        lake.read(spark, t.DIM_DEPARTMENT),
        lake.read(spark, t.DIM_HOSPITAL),
    )
    at = latest.select(*UNIT, "midnight_utc")
    open_then = (
        placed.join(at, list(UNIT))
        .filter(
            (F.col("admission_time_ts") < F.col("midnight_utc"))
            & (
                F.col("discharge_time_ts").isNull()
                | (F.col("discharge_time_ts") >= F.col("midnight_utc"))
            )
        )
        .groupBy(*UNIT)
        .agg(F.count(F.lit(1)).alias("figure"))
    )
    stored = latest.select(*UNIT, F.col("present").alias("figure"))
    return count_result({"departments_differing": (_differing(stored, open_then, list(UNIT)), 0)})


def patient_days_match_midnight_census(run: CheckRun) -> AssetCheckResult:
    spark, lake = run.spark, run.lake
    keys = [*UNIT, "local_month"]
    summed = (
        lake.read(spark, t.MIDNIGHT_CENSUS)
        .groupBy(*UNIT, F.trunc("local_date", "month").alias("local_month"))
        .agg(F.sum("present").alias("figure"))
    )
    stored = lake.read(spark, t.PATIENT_DAYS).select(*keys, F.col("patient_days").alias("figure"))
    return count_result({"months_differing": (_differing(stored, summed, keys), 0)})


def ed_boarding_not_negative(run: CheckRun) -> AssetCheckResult:
    boarding = run.lake.read(run.spark, t.ED_BOARDING)
    return count_result({"negative_boarding": (_broken(boarding, "boarding_minutes >= 0"), 0)})


def ed_boarding_daily_matches_encounters(run: CheckRun) -> AssetCheckResult:
    spark, lake = run.spark, run.lake
    keys = ["hospital_id", "local_date"]
    daily = lake.read(spark, t.ED_BOARDING_DAILY)
    counted = lake.read(spark, t.ED_BOARDING).groupBy(*keys).agg(F.count(F.lit(1)).alias("figure"))
    return count_result(
        {
            "days_differing": (
                _differing(daily.select(*keys, F.col("boarded").alias("figure")), counted, keys),
                0,
            ),
            "unordered_days": (
                _broken(
                    daily,
                    "median_minutes <= p90_minutes AND p90_minutes <= max_minutes "
                    "AND over_4h <= boarded",
                ),
                0,
            ),
        }
    )


def discharge_timing_consistent(run: CheckRun) -> AssetCheckResult:
    timing = run.lake.read(run.spark, t.DISCHARGE_TIMING)
    condition = "before_noon >= 0 AND before_noon <= discharges AND discharges > 0"
    return count_result({"inconsistent_rows": (_broken(timing, condition), 0)})


def bed_turnover_not_negative(run: CheckRun) -> AssetCheckResult:
    turnover = run.lake.read(run.spark, t.BED_TURNOVER)
    condition = "turnovers > 0 AND mean_empty_minutes >= 0 AND median_empty_minutes >= 0"
    return count_result({"inconsistent_rows": (_broken(turnover, condition), 0)})


def readmission_rates_match_readmissions(run: CheckRun) -> AssetCheckResult:
    spark, lake = run.spark, run.lake
    keys = ["hospital_id", "local_month"]
    rates = lake.read(spark, t.READMISSION_RATES)
    readmitted = lake.read(spark, t.READMISSIONS).groupBy(
        "hospital_id", F.trunc("local_date", "month").alias("local_month")
    )
    differing = {
        name: _differing(
            rates.select(*keys, F.col(name).alias("figure")),
            readmitted.agg(aggregate.alias("figure")),
            keys,
        )
        for name, aggregate in {
            "discharges": F.count(F.lit(1)),
            "readmissions_30d": F.count_if("readmitted_30d"),
        }.items()
    }
    return count_result(
        {
            **{f"months_differing_in_{name}": (n, 0) for name, n in differing.items()},
            "rates_out_of_range": (_broken(rates, "readmission_rate BETWEEN 0 AND 1"), 0),
        }
    )


DAY_TABLES = (
    t.MIDNIGHT_CENSUS,
    t.ED_BOARDING,
    t.ED_BOARDING_DAILY,
    t.DISCHARGE_TIMING,
    t.BED_TURNOVER,
    t.READMISSIONS,
)


def local_dates_in_calendar(run: CheckRun) -> AssetCheckResult:
    """Every local date of the daily tables joins to dim_date."""
    spark, lake = run.spark, run.lake
    calendar = lake.read(spark, t.DIM_DATE).select("local_date")
    missing = 0
    for table in DAY_TABLES:
        if lake.exists(spark, table):
            dates = lake.read(spark, table).select("local_date").distinct()
            missing += dates.join(calendar, "local_date", "left_anti").count()
    return count_result({"dates_missing_from_dim_date": (missing, 0)})


DAY_CHECKS = [
    Check(
        "midnight_census_matches_movements",
        t.MIDNIGHT_CENSUS.key,
        "At each hospital's latest midnight, patients present per department = the movement "
        "segments open at that instant, counted directly.",
        midnight_census_matches_movements,
    ),
    Check(
        "local_dates_in_calendar",
        t.MIDNIGHT_CENSUS.key,
        "Every local date of the daily tables is in gold.dim_date.",
        local_dates_in_calendar,
    ),
    Check(
        "patient_days_match_midnight_census",
        t.PATIENT_DAYS.key,
        "Patient days of each month = the month's midnight census, summed.",
        patient_days_match_midnight_census,
    ),
    Check(
        "ed_boarding_not_negative",
        t.ED_BOARDING.key,
        "No boarding time is negative.",
        ed_boarding_not_negative,
    ),
    Check(
        "ed_boarding_daily_matches_encounters",
        t.ED_BOARDING_DAILY.key,
        "Patients boarded per day = the encounters of ed_boarding that day, and median <= p90 "
        "<= max.",
        ed_boarding_daily_matches_encounters,
    ),
    Check(
        "discharge_timing_consistent",
        t.DISCHARGE_TIMING.key,
        "0 <= discharges before noon <= discharges.",
        discharge_timing_consistent,
    ),
    Check(
        "discharge_timing_matches_fact",
        t.DISCHARGE_TIMING.key,
        "Discharges add up to the fact's.",
        sums_match_fact(t.DISCHARGE_TIMING, {"discharges": "discharges"}),
        audit_only=True,
    ),
    Check(
        "bed_turnover_not_negative",
        t.BED_TURNOVER.key,
        "Beds never stand empty a negative time.",
        bed_turnover_not_negative,
    ),
    Check(
        "readmission_rates_match_readmissions",
        t.READMISSION_RATES.key,
        "Discharges and readmissions per month = the rows of readmissions, and rates lie in 0..1.",
        readmission_rates_match_readmissions,
    ),
]

"""The checks of the patient-flow KPIs: the census against the movement segments and its own
flow, current occupancy's totals, and (in the nightly audit) the KPIs kept as totals against the
fact."""

from collections.abc import Callable
from datetime import timedelta

from dagster import AssetCheckResult
from pyspark.sql import functions as F

from patient_flow_dagster.assets.checking import Check, CheckRun, count_result, integrity_result
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.quality import measures
from patient_flow_dagster.transforms import census, times

CENSUS_HOURS_COMPARED = 48


def _census_measures(run: CheckRun):
    """Negative figures and flow-conservation breaks of the census, in one pass: over the last
    CENSUS_HOURS_COMPARED hours in a run (those the board shows), every hour in an audit."""
    spark, lake = run.spark, run.lake
    hourly = lake.read(spark, t.DEPARTMENT_CENSUS_HOURLY)
    rows = census.with_conservation_flag(hourly)
    if not run.scope.audit:
        since = F.col("_latest") - F.make_dt_interval(hours=F.lit(CENSUS_HOURS_COMPARED))
        recent = hourly.crossJoin(hourly.agg(F.max("hour_start").alias("_latest")))
        # The hour before the window too: each hour is compared with the one before it.
        rows = (
            census.with_conservation_flag(
                recent.filter(F.col("hour_start") >= since - F.expr("INTERVAL 1 HOUR"))
            )
            .filter(F.col("hour_start") >= since)
            .drop("_latest")
        )
    rows = rows.withColumn(
        "_key", F.concat_ws("/", "hospital_id", "department", F.col("hour_start").cast("string"))
    )
    return measures.measure_in_one_pass(
        rows,
        {
            "negative": (F.col("present_at_end") < 0) | (F.col("occupancy") < 0),
            "conservation_breaks": F.col("breaks_conservation"),
        },
        "_key",
        run.policy.sample_size,
    )


def _shared_census_measures(run: CheckRun):
    return run.once("census measures", lambda: _census_measures(run))


def census_not_negative(run: CheckRun) -> AssetCheckResult:
    return integrity_result(_shared_census_measures(run)["negative"], "hours")


def census_flow_conservation(run: CheckRun) -> AssetCheckResult:
    breaks = _shared_census_measures(run)["conservation_breaks"].failed
    return count_result({"conservation_breaks": (breaks, 0)})


def census_matches_movements(run: CheckRun) -> AssetCheckResult:
    spark, lake = run.spark, run.lake
    hourly = lake.read(spark, t.DEPARTMENT_CENSUS_HOURLY)
    # The latest hour may end after the census clock: compare the complete hours before it.
    # Timestamps cross to Python as UTC text: collected datetimes would be in the driver's zone.
    # The census has every hour of every unit (census_flow_conservation): the hour ends
    # before the latest are consecutive, computed here rather than sorted out of the table.
    latest = times.utc_text_to_datetime(
        hourly.agg(F.date_format(F.max("hour_end"), "yyyy-MM-dd HH:mm:ss")).collect()[0][0]
    )
    ends = (
        []
        if latest is None
        else [
            (latest - timedelta(hours=k)).strftime("%Y-%m-%d %H:%M:%S")
            for k in range(1, CENSUS_HOURS_COMPARED + 1)
        ]
    )
    placements = census.placements(
        lake.read(spark, t.FACT_MOVEMENTS),
        lake.read(spark, t.DIM_DEPARTMENT),
        lake.read(spark, t.DIM_HOSPITAL),
    )
    measure = measures.census_against_placements(hourly, placements, ends, run.policy.sample_size)
    return integrity_result(measure, "hours")


def _fact_totals(run: CheckRun) -> dict[str, int]:
    """Admissions, discharges and completed stays of the encounters the KPIs count (all but
    the cancelled), in one pass."""
    spark, lake = run.spark, run.lake
    row = (
        census.counted(lake.read(spark, t.FACT_ADMISSIONS))
        .agg(
            F.count(F.lit(1)).alias("admissions"),
            F.count_if(F.col("discharge_time_ts").isNotNull()).alias("discharges"),
            F.count_if(F.col("length_of_stay_hours").isNotNull()).alias("completed_stays"),
        )
        .collect()[0]
    )
    return {name: int(row[name] or 0) for name in row.asDict()}


def length_of_stay_stats_consistent(run: CheckRun) -> AssetCheckResult:
    spark, lake = run.spark, run.lake
    row = (
        lake.read(spark, t.LENGTH_OF_STAY_STATS)
        .agg(
            F.sum("completed_stays").alias("completed"),
            F.count_if(F.expr("NOT (median_hours <= p90_hours AND p90_hours <= max_hours)")).alias(
                "unordered"
            ),
        )
        .collect()[0]
    )
    completed_segments = (
        lake.read(spark, t.FACT_MOVEMENTS).filter(F.col("length_of_stay_hours").isNotNull()).count()
    )
    return count_result(
        {
            "completed_stays": (row["completed"] or 0, completed_segments),
            "unordered_rows": (row["unordered"] or 0, 0),
        }
    )


def sums_match_fact(table: t.Table, columns: dict[str, str]) -> Callable[..., AssetCheckResult]:
    """A KPI table's column sums equal the fact's totals (`columns`: fact total -> column): its
    figures, kept by adding the fact's changes, have not drifted from the fact."""

    def evaluate(run: CheckRun) -> AssetCheckResult:
        spark, lake = run.spark, run.lake
        row = (
            lake.read(spark, table)
            .agg(*(F.sum(column).alias(total) for total, column in columns.items()))
            .collect()[0]
        )
        fact = run.once("fact totals", lambda: _fact_totals(run))
        return count_result({total: (row[total] or 0, fact[total]) for total in columns})

    return evaluate


_CUBE_SUMS = {"admissions": "num_admissions", "completed_stays": "completed_stays"}
_CUBE_SUMS_DESCRIPTION = (
    "Admissions and completed stays add up to the fact's (the totals kept "
    "from the fact's changes have not drifted)."
)


def current_occupancy_consistent(run: CheckRun) -> AssetCheckResult:
    spark, lake = run.spark, run.lake
    snapshot = lake.read(spark, t.CURRENT_OCCUPANCY)
    negative = snapshot.filter("present < 0 OR occupancy < 0").count()
    sums = snapshot.groupBy("hospital_id").pivot("scope", ["department", "hospital"]).sum("present")
    mismatched = sums.filter("NOT (department <=> hospital)").count()
    return count_result(
        {"negative_rows": (negative, 0), "hospital_total_mismatches": (mismatched, 0)}
    )


KPI_CHECKS = [
    Check(
        "census_not_negative",
        t.DEPARTMENT_CENSUS_HOURLY.key,
        "Occupancy and patients present are never negative.",
        census_not_negative,
    ),
    Check(
        "census_flow_conservation",
        t.DEPARTMENT_CENSUS_HOURLY.key,
        "Flow conservation: present at the end of hour h = present at the end of h-1 + "
        "arrivals in h - departures in h, and no unit misses an hour.",
        census_flow_conservation,
    ),
    Check(
        "census_matches_movements",
        t.DEPARTMENT_CENSUS_HOURLY.key,
        f"At the end of each of the last {CENSUS_HOURS_COMPARED} complete hours, patients "
        "present per department = the movement segments open at that instant, counted "
        "directly.",
        census_matches_movements,
    ),
    Check(
        "gender_department_cube_matches_fact",
        t.CUBE_GENDER_DEPARTMENT.key,
        _CUBE_SUMS_DESCRIPTION,
        sums_match_fact(t.CUBE_GENDER_DEPARTMENT, _CUBE_SUMS),
        audit_only=True,
    ),
    Check(
        "department_hospital_cube_matches_fact",
        t.CUBE_DEPARTMENT_HOSPITAL.key,
        _CUBE_SUMS_DESCRIPTION,
        sums_match_fact(t.CUBE_DEPARTMENT_HOSPITAL, _CUBE_SUMS),
        audit_only=True,
    ),
    Check(
        "daily_flow_matches_fact",
        t.DAILY_FLOW.key,
        "Admissions and discharges add up to the fact table's totals.",
        sums_match_fact(t.DAILY_FLOW, {"admissions": "admissions", "discharges": "discharges"}),
        audit_only=True,
    ),
    Check(
        "length_of_stay_stats_consistent",
        t.LENGTH_OF_STAY_STATS.key,
        "Completed stays add up to the completed movement segments, and median <= p90 <= max.",
        length_of_stay_stats_consistent,
        audit_only=True,
    ),
    Check(
        "current_occupancy_consistent",
        t.CURRENT_OCCUPANCY.key,
        "Current occupancy is never negative and each hospital total is the sum of its "
        "departments.",
        current_occupancy_consistent,
    ),
]

"""The census: hourly census and occupancy, current occupancy, and the rows they count. Pure
PySpark, from movement segments and bed capacity.

The rows counted have a department, a start (`admission_time_ts`) and an end
(`discharge_time_ts`, null while there): the movement segments in their departments for the
census, occupancy and length of stay per department (`placements`), the encounters in their
admitting department for daily flow (`admitted_encounters`; transforms/flow.py).

Time buckets are half-open [start, end): a row is present at the end E of an hour when it
started before E and did not end before E. With that convention the census obeys flow
conservation exactly: present(h) = present(h-1) + arrivals(h) - departures(h).
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from patient_flow_dagster.transforms.changes import WEIGHT
from patient_flow_dagster.transforms.encounters import CANCELLED
from patient_flow_dagster.transforms.local_time import ZONE, wall_clock, with_time_zone
from patient_flow_dagster.transforms.times import utc_literal, utc_text_to_datetime

CENSUS_KEYS = ("hospital_id", "department", "hour_start")


def _with_department(
    rows: DataFrame, dim_department: DataFrame, dim_hospital: DataFrame
) -> DataFrame:
    """Rows with their department, hospital, bed capacity, whether the department is an
    inpatient unit, and the hospital's time zone."""
    placed = rows.join(
        dim_department.select(
            "department_sk", "department", "hospital_id", "bed_capacity", "inpatient"
        ),
        "department_sk",
    )
    return with_time_zone(placed, dim_hospital)


def counted(fact: DataFrame) -> DataFrame:
    """The fact rows the KPIs count: every encounter but the cancelled ones (kept for audit)."""
    return fact.filter(F.col("status") != CANCELLED)


def admitted_encounters(
    fact: DataFrame, dim_department: DataFrame, dim_hospital: DataFrame
) -> DataFrame:
    """Encounters (fact rows) with their admitting department, hospital, bed capacity and time
    zone (and weight, for signed fact changes)."""
    weight = [WEIGHT] if WEIGHT in fact.columns else []
    return _with_department(
        fact.select(
            "encounter_pseudonym",
            "department_sk",
            "admission_time_ts",
            "discharge_time_ts",
            "length_of_stay_hours",
            "stay_category",
            *weight,
        ),
        dim_department,
        dim_hospital,
    )


def placements(
    movements: DataFrame, dim_department: DataFrame, dim_hospital: DataFrame
) -> DataFrame:
    """Movement segments placed in their department and bed: a patient is in a department from
    the segment's start to its end (a transfer ends one segment and starts the next)."""
    return _with_department(
        movements.select(
            "encounter_pseudonym",
            "segment",
            "department_sk",
            "bed_id",
            F.col("start_ts").alias("admission_time_ts"),
            F.col("end_ts").alias("discharge_time_ts"),
            "length_of_stay_hours",
            "stay_category",
        ),
        dim_department,
        dim_hospital,
    )


def hourly_census(rows: DataFrame, as_of: datetime, since: datetime | None = None) -> DataFrame:
    """Per hour x hospital x department, from the first admission to the hour holding `as_of`:
    admissions and discharges in the hour, patients present at its end, occupancy. Hours are
    UTC hours (every zone's hour, or half hour, starts on one); `local_hour_start` is the
    hospital's wall clock at the hour's start (rows carry their hospital's `time_zone`).

    With `since` (an hour start) only the hours from `since` on are produced: each unit starts
    from the patients present at `since`, counted directly from the rows, so an incremental
    run computes and rewrites the recent hours only, not the whole history.
    """
    as_of_ts = utc_literal(as_of)
    horizon = F.date_trunc("hour", as_of_ts)
    events = rows.filter(F.col("admission_time_ts") <= as_of_ts)
    since_ts = utc_literal(since) if since is not None else None
    if since_ts is not None:  # hours before `since` are not produced: skip their rows
        recent = events.filter(
            (F.col("admission_time_ts") >= since_ts) | (F.col("discharge_time_ts") >= since_ts)
        )
    else:
        recent = events
    admissions = recent.groupBy(
        "hospital_id", "department", F.date_trunc("hour", "admission_time_ts").alias("hour_start")
    ).agg(F.count(F.lit(1)).alias("admissions"))
    discharges = (
        recent.filter(F.col("discharge_time_ts") <= as_of_ts)
        .groupBy(
            "hospital_id",
            "department",
            F.date_trunc("hour", "discharge_time_ts").alias("hour_start"),
        )
        .agg(F.count(F.lit(1)).alias("discharges"))
    )
    if since_ts is None:
        before = F.lit(0)
    else:  # present at `since`: admitted before it, not discharged before it
        discharged = F.coalesce(F.col("discharge_time_ts") < since_ts, F.lit(False))
        before = (F.col("admission_time_ts") < since_ts).cast("long") - discharged.cast("long")
    units = events.groupBy("hospital_id", "department").agg(
        F.min(F.date_trunc("hour", "admission_time_ts")).alias("first_hour"),
        F.max("bed_capacity").alias("bed_capacity"),
        F.max(ZONE).alias(ZONE),
        F.sum(F.coalesce(before, F.lit(0))).alias("present_before"),
    )
    start = F.col("first_hour") if since_ts is None else F.greatest("first_hour", since_ts)
    grid = units.filter(start <= horizon).select(
        "hospital_id",
        "department",
        "bed_capacity",
        ZONE,
        "present_before",
        F.explode(F.sequence(start, horizon, F.expr("INTERVAL 1 HOUR"))).alias("hour_start"),
    )
    running = (
        Window.partitionBy("hospital_id", "department")
        .orderBy("hour_start")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    census = (
        grid.join(admissions, list(CENSUS_KEYS), "left")
        .join(discharges, list(CENSUS_KEYS), "left")
        .fillna(0, ["admissions", "discharges"])
        .withColumn(
            "present_at_end",
            F.col("present_before")
            + F.sum(F.col("admissions") - F.col("discharges")).over(running),
        )
    )
    return census.select(
        *CENSUS_KEYS,
        (F.col("hour_start") + F.expr("INTERVAL 1 HOUR")).alias("hour_end"),
        wall_clock("hour_start").alias("local_hour_start"),
        F.col("admissions").cast("long").alias("admissions"),
        F.col("discharges").cast("long").alias("discharges"),
        F.col("present_at_end").cast("long").alias("present_at_end"),
        "bed_capacity",
        F.round(F.col("present_at_end") / F.col("bed_capacity"), 4).alias("occupancy"),
    )


def first_hour_touched(events: DataFrame) -> datetime | None:
    """The earliest hour start that a time of `events` falls in (UTC), or None for no events.

    Given every event of the encounters that changed, the census from that hour on is what the
    change can move: each version of an encounter's segments, before and after, lies between
    times its events carry."""
    hours = F.date_trunc("hour", F.least("admission_time_ts", "discharge_time_ts", "event_time_ts"))
    return utc_text_to_datetime(
        events.agg(F.date_format(F.min(hours), "yyyy-MM-dd HH:mm:ss")).collect()[0][0]
    )


def present_at(rows: DataFrame, instant: datetime) -> DataFrame:
    """Patients present at `instant` per hospital x department, counted directly from the rows
    (independent of the census's running sums, so checks can compare the two)."""
    moment = utc_literal(instant)
    present = rows.filter(
        (F.col("admission_time_ts") < moment)
        & (F.col("discharge_time_ts").isNull() | (F.col("discharge_time_ts") >= moment))
    )
    return present.groupBy("hospital_id", "department").agg(F.count(F.lit(1)).alias("present"))


def current_occupancy(census: DataFrame) -> DataFrame:
    """The latest hour's census per hospital x department, plus one total row per hospital
    (department = null, scope = 'hospital')."""
    last = census.join(census.agg(F.max("hour_start").alias("hour_start")), "hour_start")
    per_department = last.select(
        F.lit("department").alias("scope"),
        "hospital_id",
        "department",
        F.col("hour_end").alias("as_of"),
        F.col("present_at_end").alias("present"),
        "bed_capacity",
    )
    per_hospital = (
        last.groupBy("hospital_id")
        .agg(
            F.max("hour_end").alias("as_of"),
            F.sum("present_at_end").alias("present"),
            F.sum("bed_capacity").alias("bed_capacity"),
        )
        .select(
            F.lit("hospital").alias("scope"),
            "hospital_id",
            F.lit(None).cast("string").alias("department"),
            "as_of",
            "present",
            "bed_capacity",
        )
    )
    return per_department.unionByName(per_hospital).withColumn(
        "occupancy", F.round(F.col("present") / F.col("bed_capacity"), 4)
    )


def occupancy_trend(census: DataFrame, since: datetime) -> DataFrame:
    """Occupancy per department (its hospitals' beds together) at the end of each hour after
    `since`: the curve a bed manager watches. A unit whose first patient came later counts
    its beds from the start (nobody was present before). hour_end as UTC text."""
    recent = census.filter(F.col("hour_end") > utc_literal(since))
    beds = (
        recent.groupBy("department", "hospital_id")
        .agg(F.max("bed_capacity").alias("beds"))
        .groupBy("department")
        .agg(F.sum("beds").alias("beds"))
    )
    present = recent.groupBy("hour_end", "department").agg(F.sum("present_at_end").alias("present"))
    return present.join(beds, "department").select(
        F.date_format("hour_end", "yyyy-MM-dd HH:mm:ss").alias("hour_end"),
        "department",
        (F.col("present") / F.col("beds")).alias("occupancy"),
    )


def with_conservation_flag(census: DataFrame) -> DataFrame:
    """The census with `breaks_conservation`: whether
    present(h) != present(h-1) + admissions(h) - discharges(h), or the unit's previous row is
    not the hour before (a missing hour)."""
    order = Window.partitionBy("hospital_id", "department").orderBy("hour_start")
    previous = F.coalesce(F.lag("present_at_end").over(order), F.lit(0))
    expected = previous + F.col("admissions") - F.col("discharges")
    previous_hour = F.lag("hour_start").over(order)
    missing_hour = F.coalesce(
        previous_hour + F.expr("INTERVAL 1 HOUR") != F.col("hour_start"), F.lit(False)
    )
    return census.withColumn(
        "breaks_conservation", (expected != F.col("present_at_end")) | missing_hour
    )


def conservation_breaks(census: DataFrame) -> DataFrame:
    """Census rows that break flow conservation (see `with_conservation_flag`)."""
    return with_conservation_flag(census).filter("breaks_conservation").drop("breaks_conservation")

"""The figures a hospital's bed meeting uses, per hospital-local day or month: the midnight
census and patient days, ED boarding, discharges before noon, bed turnover and 30-day
readmissions. Pure PySpark; the definitions are in docs/kpis.md.

They count movement segments placed in their department and hospital (`census.placements`,
with the hospital's `time_zone`) or encounters (fact rows; cancelled encounters are never
among either). Each takes `since`, a local date: only the rows from that date (or its month)
on are produced, which is what an incremental run rewrites.
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from patient_flow_dagster.transforms.flow import quantiles
from patient_flow_dagster.transforms.local_time import (
    ZONE,
    local_date,
    local_month,
    midnight_after,
    wall_clock,
)
from patient_flow_dagster.transforms.times import utc_literal

UNIT = ("hospital_id", "department")
BOARDING_LIMIT_MINUTES = 240  # the four hours a boarding is counted as long after
READMISSION_DAYS = 30
NOON = 12


def _minutes(start: str, end: str) -> Column:
    return F.round((F.unix_seconds(end) - F.unix_seconds(start)) / 60, 2)


def last_midnight_date(as_of: datetime) -> Column:
    """Per row's hospital: the latest local date whose ending midnight is at or before `as_of`."""
    return F.date_sub(local_date(utc_literal(as_of)), 1)


def _from(value: Column, since: date | None) -> Column:
    return value if since is None else F.greatest(value, F.lit(since))


def segment_midnights(placements: DataFrame, as_of: datetime, since: date | None) -> DataFrame:
    """One row per segment and local midnight the patient is present at (from `since`, through
    `as_of`): present at the midnight M ending day D when the segment started before M and had
    not ended before M, so D runs from the local date of its start to the day before the local
    date of its end."""
    last = last_midnight_date(as_of)
    first_day = _from(local_date("admission_time_ts"), since)
    last_day = F.least(F.coalesce(F.date_sub(local_date("discharge_time_ts"), 1), last), last)
    rows = placements.filter(F.col("admission_time_ts") <= utc_literal(as_of))
    if since is not None:  # segments that ended before `since` are at none of its midnights
        rows = rows.filter(
            F.col("discharge_time_ts").isNull() | (local_date("discharge_time_ts") > F.lit(since))
        )
    return rows.filter(first_day <= last_day).select(
        *UNIT, F.explode(F.sequence(first_day, last_day)).alias("local_date")
    )


def midnight_census(placements: DataFrame, as_of: datetime, since: date | None) -> DataFrame:
    """Per hospital x department x local date, from the unit's first patient's date (or
    `since`) through the last midnight before `as_of`: patients present at the midnight ending
    the date (the official daily census), bed capacity, occupancy."""
    present = (
        segment_midnights(placements, as_of, since)
        .groupBy(*UNIT, "local_date")
        .agg(F.count(F.lit(1)).alias("present"))
    )
    units = placements.groupBy(*UNIT).agg(
        F.min(local_date("admission_time_ts")).alias("first_day"),
        F.max("bed_capacity").alias("bed_capacity"),
        F.max(ZONE).alias(ZONE),
    )
    first, last = _from(F.col("first_day"), since), last_midnight_date(as_of)
    grid = units.filter(first <= last).select(
        *UNIT,
        "bed_capacity",
        ZONE,
        F.explode(F.sequence(first, last)).alias("local_date"),
    )
    return (
        grid.join(present, [*UNIT, "local_date"], "left")
        .fillna(0, ["present"])
        .select(
            *UNIT,
            "local_date",
            midnight_after("local_date").alias("midnight_utc"),
            F.col("present").cast("long").alias("present"),
            "bed_capacity",
            F.round(F.col("present") / F.col("bed_capacity"), 4).alias("occupancy"),
        )
    )


def _encounter_ends(placements: DataFrame) -> DataFrame:
    """Each segment with its encounter's admission (the first segment's start) and whether it
    is the segment the encounter was discharged from (its last, ended)."""
    encounter = Window.partitionBy("encounter_pseudonym")
    return placements.withColumn(
        "_admitted_ts", F.min("admission_time_ts").over(encounter)
    ).withColumn(
        "_discharged_from",
        (F.col("segment") == F.max("segment").over(encounter))
        & F.col("discharge_time_ts").isNotNull(),
    )


def discharges(placements: DataFrame) -> DataFrame:
    """The segments encounters were discharged from: department, hospital and time of each
    discharge, and the encounter's length of stay in hours."""
    return (
        _encounter_ends(placements)
        .filter("_discharged_from")
        .withColumn(
            "stay_hours",
            (F.unix_seconds("discharge_time_ts") - F.unix_seconds("_admitted_ts")) / 3600,
        )
    )


def patient_days(placements: DataFrame, as_of: datetime, since: date | None) -> DataFrame:
    """Per hospital x department x local month (from the month holding `since`): patient days
    (patients present at each local midnight of the month, summed), admissions (encounters
    admitted to the department), discharges (encounters discharged from it) and the average
    length of stay, in days, of the encounters discharged that month."""
    month_since = None if since is None else since.replace(day=1)
    days = (
        segment_midnights(placements, as_of, month_since)
        .groupBy(*UNIT, F.trunc("local_date", "month").alias("local_month"))
        .agg(F.count(F.lit(1)).alias("patient_days"))
    )
    placed = placements.filter(F.col("admission_time_ts") <= utc_literal(as_of))
    admitted = (
        placed.filter(F.col("segment") == 1)
        .groupBy(*UNIT, local_month("admission_time_ts").alias("local_month"))
        .agg(F.count(F.lit(1)).alias("admissions"))
    )
    discharged = (
        discharges(placed)
        .filter(F.col("discharge_time_ts") <= utc_literal(as_of))
        .groupBy(*UNIT, local_month("discharge_time_ts").alias("local_month"))
        .agg(
            F.count(F.lit(1)).alias("discharges"),
            F.round(F.avg(F.col("stay_hours") / 24), 2).alias("average_length_of_stay_days"),
        )
    )
    keys = [*UNIT, "local_month"]
    months = days.join(admitted, keys, "full_outer").join(discharged, keys, "full_outer")
    if month_since is not None:
        months = months.filter(F.col("local_month") >= F.lit(month_since))
    return months.fillna(0, ["patient_days", "admissions", "discharges"]).select(
        *keys,
        F.col("patient_days").cast("long").alias("patient_days"),
        F.col("admissions").cast("long").alias("admissions"),
        F.col("discharges").cast("long").alias("discharges"),
        "average_length_of_stay_days",
    )


def ed_boarding(placements: DataFrame, since: date | None) -> DataFrame:
    """Per encounter that arrived in a non-inpatient (emergency) department and later moved to
    an inpatient one: the boarding time, from arrival to the start of the first inpatient
    segment (when the patient left the emergency department for a bed), dated by the local day
    the patient left it."""
    first = placements.filter((F.col("segment") == 1) & ~F.col("inpatient")).select(
        "encounter_pseudonym",
        "hospital_id",
        ZONE,
        F.col("department").alias("emergency_department"),
        F.col("admission_time_ts").alias("arrival_ts"),
    )
    ward = Window.partitionBy("encounter_pseudonym").orderBy("segment")
    bedded = (
        placements.filter(F.col("inpatient") & (F.col("segment") > 1))
        .withColumn("_n", F.row_number().over(ward))
        .filter(F.col("_n") == 1)
        .select(
            "encounter_pseudonym",
            F.col("department").alias("inpatient_department"),
            F.col("admission_time_ts").alias("left_emergency_ts"),
        )
    )
    boarded = first.join(bedded, "encounter_pseudonym").select(
        "encounter_pseudonym",
        "hospital_id",
        "emergency_department",
        "inpatient_department",
        "arrival_ts",
        "left_emergency_ts",
        _minutes("arrival_ts", "left_emergency_ts").alias("boarding_minutes"),
        local_date("left_emergency_ts").alias("local_date"),
    )
    return boarded if since is None else boarded.filter(F.col("local_date") >= F.lit(since))


def ed_boarding_daily(boarding: DataFrame) -> DataFrame:
    """Per hospital x local day (from `ed_boarding`): patients who left the emergency department
    for an inpatient bed, their median, p90 and longest boarding, and how many boarded longer
    than four hours."""
    minutes = F.col("boarding_minutes")
    days = boarding.groupBy("hospital_id", "local_date").agg(
        F.count(F.lit(1)).alias("boarded"),
        quantiles(minutes, 0.5, 0.9).alias("_q"),
        F.max(minutes).alias("max_minutes"),
        F.count_if(minutes > BOARDING_LIMIT_MINUTES).alias("over_4h"),
    )
    return days.select(
        "hospital_id",
        "local_date",
        "boarded",
        F.round(F.col("_q")[0], 2).alias("median_minutes"),
        F.round(F.col("_q")[1], 2).alias("p90_minutes"),
        "max_minutes",
        "over_4h",
    )


def discharge_timing(placements: DataFrame, since: date | None) -> DataFrame:
    """Per hospital x department discharged from x local day: discharges, those before 12:00 on
    the hospital's clock (11:59 is before noon, 12:00 is not), and their share."""
    rows = discharges(placements).withColumn("local_date", local_date("discharge_time_ts"))
    if since is not None:
        rows = rows.filter(F.col("local_date") >= F.lit(since))
    days = rows.groupBy(*UNIT, "local_date").agg(
        F.count(F.lit(1)).alias("discharges"),
        F.count_if(F.hour(wall_clock("discharge_time_ts")) < NOON).alias("before_noon"),
    )
    return days.withColumn(
        "share_before_noon", F.round(F.col("before_noon") / F.col("discharges"), 4)
    )


def bed_turnover(placements: DataFrame, since: date | None) -> DataFrame:
    """Per hospital x department x local day: beds that took a new patient that day after
    standing empty (turnovers), and the mean and median minutes they stood empty between one
    patient leaving and the next arriving. A bed's next segment of the same encounter, or one
    that starts before the previous patient left, is no turnover."""
    bed = Window.partitionBy(*UNIT, "bed_id").orderBy("admission_time_ts", "encounter_pseudonym")
    gaps = (
        placements.withColumn("_previous_end", F.lag("discharge_time_ts").over(bed))
        .withColumn("_previous_encounter", F.lag("encounter_pseudonym").over(bed))
        .filter(
            F.col("_previous_end").isNotNull()
            & (F.col("admission_time_ts") >= F.col("_previous_end"))
            & (F.col("_previous_encounter") != F.col("encounter_pseudonym"))
        )
        .select(
            *UNIT,
            local_date("admission_time_ts").alias("local_date"),
            _minutes("_previous_end", "admission_time_ts").alias("empty_minutes"),
        )
    )
    if since is not None:
        gaps = gaps.filter(F.col("local_date") >= F.lit(since))
    days = gaps.groupBy(*UNIT, "local_date").agg(
        F.count(F.lit(1)).alias("turnovers"),
        F.round(F.avg("empty_minutes"), 2).alias("mean_empty_minutes"),
        quantiles(F.col("empty_minutes"), 0.5).alias("_q"),
    )
    return days.select(
        *UNIT,
        "local_date",
        "turnovers",
        "mean_empty_minutes",
        F.round(F.col("_q")[0], 2).alias("median_empty_minutes"),
    )


def readmissions(encounters: DataFrame, since: date | None) -> DataFrame:
    """Per discharged encounter (fact rows with `patient_pseudonym` and the hospital's
    `time_zone`): the same patient's next admission after the discharge (to any hospital), the
    days between (local dates of the discharging hospital: a discharge on the 1st and a return on
    the 31st is day 30), and whether it is within 30 days."""
    discharged = encounters.filter(F.col("discharge_time_ts").isNotNull()).select(
        "encounter_pseudonym",
        "patient_pseudonym",
        "hospital_id",
        ZONE,
        "discharge_time_ts",
        local_date("discharge_time_ts").alias("local_date"),
    )
    if since is not None:
        discharged = discharged.filter(F.col("local_date") >= F.lit(since))
    later = encounters.select(
        F.col("patient_pseudonym").alias("_patient"),
        F.col("admission_time_ts").alias("_admitted"),
    )
    following = (
        discharged.join(
            later,
            (F.col("_patient") == F.col("patient_pseudonym"))
            & (F.col("_admitted") > F.col("discharge_time_ts")),
            "left",
        )
        .groupBy(*discharged.columns)
        .agg(F.min("_admitted").alias("next_admission_ts"))
    )
    days = F.datediff(local_date("next_admission_ts"), F.col("local_date"))
    return following.select(
        "encounter_pseudonym",
        "patient_pseudonym",
        "hospital_id",
        "local_date",
        "discharge_time_ts",
        "next_admission_ts",
        days.alias("days_to_readmission"),
        F.coalesce(days <= READMISSION_DAYS, F.lit(False)).alias("readmitted_30d"),
    )


def readmission_rates(readmitted: DataFrame) -> DataFrame:
    """Per hospital x local month of discharge (from `readmissions`): discharges, those followed
    by an admission within 30 days, the rate, and the day every discharge of the month has had
    its 30 days (the rate is final from then on)."""
    months = readmitted.groupBy("hospital_id", F.trunc("local_date", "month").alias("local_month"))
    return months.agg(
        F.count(F.lit(1)).alias("discharges"),
        F.count_if("readmitted_30d").alias("readmissions_30d"),
    ).select(
        "hospital_id",
        "local_month",
        "discharges",
        "readmissions_30d",
        F.round(F.col("readmissions_30d") / F.col("discharges"), 4).alias("readmission_rate"),
        F.date_add(F.last_day("local_month"), READMISSION_DAYS).alias("follow_up_complete_on"),
    )


def calendar(
    spark: SparkSession, first: date, last: date, fiscal_year_start_month: int
) -> DataFrame:
    """One row per date from `first` to `last`: the attributes reports group local dates by.
    The fiscal year starts on the first of `fiscal_year_start_month` and is named by the
    calendar year it ends in (a year starting in July 2026 is fiscal 2027)."""
    day = F.col("local_date")
    iso_day = F.pmod(F.dayofweek(day) + 5, 7) + 1  # Monday 1 ... Sunday 7
    months_in = F.pmod(F.month(day) - fiscal_year_start_month, 12)
    fiscal_year = F.year(day) + F.when(
        F.lit(fiscal_year_start_month > 1) & (F.month(day) >= fiscal_year_start_month), 1
    ).otherwise(0)
    dates = spark.range(1).select(
        F.explode(F.sequence(F.lit(first), F.lit(last))).alias("local_date")
    )
    return dates.select(
        "local_date",
        iso_day.cast("int").alias("day_of_week"),
        F.date_format(day, "EEEE").alias("day_name"),
        (iso_day >= 6).alias("is_weekend"),
        F.weekofyear(day).alias("iso_week"),
        F.year(F.date_add(day, (4 - iso_day).cast("int"))).alias("iso_year"),
        F.month(day).alias("month"),
        F.date_format(day, "MMMM").alias("month_name"),
        F.quarter(day).alias("quarter"),
        F.year(day).alias("year"),
        fiscal_year.alias("fiscal_year"),
        (F.floor(months_in / 3) + 1).cast("int").alias("fiscal_quarter"),
    )

"""The bed meeting's figures in gold, per hospital-local day or month (transforms/daily_figures.py):
the midnight census and patient days, ED boarding, discharges before noon, bed turnover and
30-day readmissions. Assets of the KPI step (assets/kpis.py), each on a thread of its own.

Each table is kept by rewriting its rows from the first local date a change can move, as the
hourly census is: the fact's changes since the version the table reflects (Delta's change data
feed) give the earliest admission they touch, and a table's rows from that date on (less how
far back its figure reaches: 30 days for a readmission) are recomputed and replaced when they
differ. The midnight census and patient days also move with the clock (each local midnight adds
a day). Each commit notes the fact version, the reference data and the clock it reflects, so a
crash never half-applies a change and an unchanged table is not recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dagster import AssetSpec, MaterializeResult, MetadataValue
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.assets.charts import line_chart
from patient_flow_dagster.assets.common import change_metadata, markdown_table, table_metadata
from patient_flow_dagster.assets.fact_rows import FactRows, FactVersion
from patient_flow_dagster.assets.gold import gold_spec
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources.lake import DeltaLake, last_note, replace_changed
from patient_flow_dagster.transforms import daily_figures as figures

CHART_DAYS = 30
# A local date is at most this many days before the UTC date of the same instant.
ZONE_REACH_DAYS = 1
CLOCK_STEP = timedelta(minutes=15)  # every zone's midnight is on a quarter hour


@dataclass(frozen=True)
class DayInputs:
    """What a figure is computed from: the fact's rows (pinned to the step's version, cancelled
    encounters left out) and the census clock."""

    rows: FactRows
    as_of: datetime


@dataclass(frozen=True)
class DayKpi:
    spec: AssetSpec
    table: t.Table
    compute: Callable[[DayInputs, date | None], DataFrame]  # rows from a local date on (None: all)
    preview: list[str]
    period: str = "local_date"  # the date column rows are replaced by (a day, or a month's first)
    reach_days: int = 0  # how far before a changed encounter's admission its rows can lie
    clock: bool = False  # each local midnight adds rows
    chart: Callable[[DataFrame], MetadataValue] | None = None


def _share_chart(title: str, series: str, share: Callable) -> Callable[[DataFrame], MetadataValue]:
    """A line per `series` value of a daily share over the last CHART_DAYS days."""

    def chart(table: DataFrame) -> MetadataValue:
        latest = table.agg(F.max("local_date")).collect()[0][0]
        if latest is None:
            return line_chart(title, [], "share")
        recent = table.filter(F.col("local_date") > F.lit(latest - timedelta(days=CHART_DAYS)))
        points = recent.groupBy(F.col(series).cast("string").alias("s"), "local_date").agg(
            share().alias("y")
        )
        return line_chart(
            title,
            [
                (r.s, datetime.combine(r.local_date, datetime.min.time()), r.y)
                for r in points.collect()
            ],
            "share",
        )

    return chart


def _department_midnight_occupancy() -> F.Column:
    return F.sum("present") / F.sum("bed_capacity")


def _boarded_over_4h() -> F.Column:
    return F.sum("over_4h") / F.sum("boarded")


def _discharged_before_noon() -> F.Column:
    return F.sum("before_noon") / F.sum("discharges")


_READMISSION_REACH = figures.READMISSION_DAYS + 1
# What the figures are computed from: the movement segments placed in their department and
# hospital, or the encounters with their patient and hospital.
_FROM_SEGMENTS = [t.FACT_MOVEMENTS.key, t.DIM_DEPARTMENT.key, t.DIM_HOSPITAL.key]
_FROM_ENCOUNTERS = [t.FACT_ADMISSIONS.key, t.DIM_PATIENT.key, t.DIM_HOSPITAL.key]

DAY_KPIS = {
    kpi.spec.key: kpi
    for kpi in [
        DayKpi(
            gold_spec(
                t.MIDNIGHT_CENSUS.key,
                _FROM_SEGMENTS,
                "The official daily census: patients present at each local midnight per "
                "hospital x department, with occupancy. A day's row appears once its midnight "
                "has passed in the hospital's zone.",
                "gold_kpis",
            ),
            t.MIDNIGHT_CENSUS,
            lambda i, since: figures.midnight_census(i.rows.placements, i.as_of, since),
            ["hospital_id", "department", "local_date", "present", "bed_capacity", "occupancy"],
            clock=True,
            chart=_share_chart(
                f"Occupancy at local midnight per department, last {CHART_DAYS} days",
                "department",
                _department_midnight_occupancy,
            ),
        ),
        DayKpi(
            gold_spec(
                t.PATIENT_DAYS.key,
                _FROM_SEGMENTS,
                "Patient days, admissions, discharges and average length of stay per hospital "
                "x department x local month.",
                "gold_kpis",
            ),
            t.PATIENT_DAYS,
            lambda i, since: figures.patient_days(i.rows.placements, i.as_of, since),
            [
                "hospital_id",
                "department",
                "local_month",
                "patient_days",
                "admissions",
                "discharges",
                "average_length_of_stay_days",
            ],
            period="local_month",
            clock=True,
        ),
        DayKpi(
            gold_spec(
                t.ED_BOARDING.key,
                _FROM_SEGMENTS,
                "Per encounter that boarded in an emergency department for an inpatient bed: "
                "arrival, leaving for the bed, minutes boarded.",
                "gold_kpis",
            ),
            t.ED_BOARDING,
            lambda i, since: figures.ed_boarding(i.rows.placements, since),
            [
                "hospital_id",
                "local_date",
                "emergency_department",
                "inpatient_department",
                "boarding_minutes",
            ],
        ),
        DayKpi(
            gold_spec(
                t.ED_BOARDING_DAILY.key,
                _FROM_SEGMENTS,
                "Per hospital x local day: patients boarded, median / p90 / longest boarding, "
                "and how many boarded over four hours.",
                "gold_kpis",
            ),
            t.ED_BOARDING_DAILY,
            lambda i, since: figures.ed_boarding_daily(
                figures.ed_boarding(i.rows.placements, since)
            ),
            [
                "hospital_id",
                "local_date",
                "boarded",
                "median_minutes",
                "p90_minutes",
                "max_minutes",
                "over_4h",
            ],
            chart=_share_chart(
                f"Share of ED boarders over 4 hours per hospital, last {CHART_DAYS} days",
                "hospital_id",
                _boarded_over_4h,
            ),
        ),
        DayKpi(
            gold_spec(
                t.DISCHARGE_TIMING.key,
                _FROM_SEGMENTS,
                "Per hospital x department x local day: discharges and the share before noon "
                "on the hospital's clock.",
                "gold_kpis",
            ),
            t.DISCHARGE_TIMING,
            lambda i, since: figures.discharge_timing(i.rows.placements, since),
            [
                "hospital_id",
                "department",
                "local_date",
                "discharges",
                "before_noon",
                "share_before_noon",
            ],
            chart=_share_chart(
                f"Share of discharges before noon per hospital, last {CHART_DAYS} days",
                "hospital_id",
                _discharged_before_noon,
            ),
        ),
        DayKpi(
            gold_spec(
                t.BED_TURNOVER.key,
                _FROM_SEGMENTS,
                "Per hospital x department x local day: beds that took a new patient, and how "
                "long they stood empty between two patients.",
                "gold_kpis",
            ),
            t.BED_TURNOVER,
            lambda i, since: figures.bed_turnover(i.rows.placements, since),
            [
                "hospital_id",
                "department",
                "local_date",
                "turnovers",
                "mean_empty_minutes",
                "median_empty_minutes",
            ],
        ),
        DayKpi(
            gold_spec(
                t.READMISSIONS.key,
                _FROM_ENCOUNTERS,
                "Per discharged encounter: the patient's next admission, the days between, and "
                "whether it came within 30 days.",
                "gold_kpis",
            ),
            t.READMISSIONS,
            lambda i, since: figures.readmissions(i.rows.with_patients, since),
            ["hospital_id", "local_date", "days_to_readmission", "readmitted_30d"],
            reach_days=_READMISSION_REACH,
        ),
        DayKpi(
            gold_spec(
                t.READMISSION_RATES.key,
                _FROM_ENCOUNTERS,
                "Per hospital x local month of discharge: discharges, readmissions within 30 "
                "days, the rate, and the day it becomes final.",
                "gold_kpis",
            ),
            t.READMISSION_RATES,
            lambda i, since: figures.readmission_rates(
                figures.readmissions(
                    i.rows.with_patients, since if since is None else since.replace(day=1)
                )
            ),
            [
                "hospital_id",
                "local_month",
                "discharges",
                "readmissions_30d",
                "readmission_rate",
                "follow_up_complete_on",
            ],
            period="local_month",
            reach_days=_READMISSION_REACH,
        ),
    ]
}


def clock_mark(as_of: datetime) -> str:
    """The census clock to the quarter hour: a new mark may have passed a local midnight."""
    epoch = datetime(2000, 1, 1, tzinfo=as_of.tzinfo)
    marked = epoch + ((as_of - epoch) // CLOCK_STEP) * CLOCK_STEP
    return marked.isoformat()


@dataclass(frozen=True)
class DaySources:
    """The step's view of the fact: its version, its rows, and the earliest admission its
    changes since a version touch (None: no changes)."""

    fact: FactVersion
    whole: Callable[[], FactRows]
    earliest_change: Callable[[int], date | None]
    reference: dict  # versions of dim_department and dim_hospital


def update_day_kpi(
    spark, lake: DeltaLake, kpi: DayKpi, sources: DaySources, as_of: datetime
) -> MaterializeResult:
    """Bring one table up to the fact's version and the clock, rewriting what can have moved."""
    note = {**sources.fact.note, **sources.reference}
    if kpi.clock:
        note["clock"] = clock_mark(as_of)
    noted = last_note(lake, spark, kpi.table)
    since, how = _since(kpi, noted, note, sources)
    changes = {"inserted": 0, "updated": 0, "deleted": 0}
    if how == "noted":  # nothing the table counts changed: only record what it reflects
        lake.record_note(spark, kpi.table, note)
    elif how != "unchanged":
        where = None if since is None else f"{kpi.period} >= date'{since.isoformat()}'"
        changes = replace_changed(
            lake,
            spark,
            kpi.table,
            kpi.compute(DayInputs(sources.whole(), as_of), since),
            list(kpi.table.keys),
            where=where,
            note=note,
            order=[kpi.period, *kpi.table.keys],
            note_always=True,
        )
    table = lake.read(spark, kpi.table)
    latest = table.orderBy(F.col(kpi.period).desc()).limit(20).collect()
    metadata = {
        **table_metadata(table, lake, kpi.table, kpi.preview),
        "latest": MetadataValue.md(markdown_table([r.asDict() for r in latest], kpi.preview)),
        "update": MetadataValue.text(how),
        "update_reason": MetadataValue.text(
            f"rows from {since} on" if since else "the whole table" if how == "recomputed" else how
        ),
        **change_metadata(changes),
    }
    if kpi.chart is not None:
        metadata["trend"] = kpi.chart(table)
    return MaterializeResult(asset_key=kpi.spec.key, metadata=metadata)


def _since(kpi: DayKpi, noted: dict, note: dict, sources: DaySources) -> tuple[date | None, str]:
    """The first date (or month) whose rows can have moved since the noted state, and how the
    table is brought up to date: 'recomputed' (everything), 'rewritten' (from a date), 'noted'
    (nothing it counts changed) or 'unchanged'."""
    same = ("fact_table_id", *sources.reference)
    if any(noted.get(k) != note.get(k) for k in same) or not isinstance(
        noted.get("fact_version"), int
    ):
        return None, "recomputed"
    starts: list[date] = []
    if noted["fact_version"] != note["fact_version"]:
        try:
            earliest = sources.earliest_change(noted["fact_version"])
        except AnalysisException:  # e.g. the change feed was off for a version: recompute
            return None, "recomputed"
        if earliest is not None:
            starts.append(earliest - timedelta(days=ZONE_REACH_DAYS + kpi.reach_days))
    if kpi.clock and noted.get("clock") != note["clock"]:
        mark = noted.get("clock")
        if not mark:
            return None, "recomputed"
        starts.append(datetime.fromisoformat(mark).date() - timedelta(days=ZONE_REACH_DAYS + 1))
    if not starts:
        return None, "unchanged" if noted == note else "noted"
    since = min(starts)
    return (since.replace(day=1) if kpi.period == "local_month" else since), "rewritten"

"""Patient-flow KPIs in gold kept by the clock and the event stream: the hourly census and
occupancy, and current occupancy. Each shows its latest figures as a Markdown table in the UI.
They are two assets of the KPI step (assets/kpis.py), updated on a thread of their own beside
the KPIs from the fact."""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from dagster import AssetSpec, MaterializeResult, MetadataValue
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from patient_flow_dagster.assets.charts import line_chart
from patient_flow_dagster.assets.common import (
    change_metadata,
    markdown_table,
    table_metadata,
    write_small_table,
)
from patient_flow_dagster.assets.gold import gold_spec
from patient_flow_dagster.model.tables import (
    CURRENT_OCCUPANCY,
    DEPARTMENT_CENSUS_HOURLY,
    DIM_DEPARTMENT,
    DIM_HOSPITAL,
    FACT_MOVEMENTS,
    SILVER_EVENTS,
    Table,
)
from patient_flow_dagster.resources.lake import DeltaLake, last_note, replace_changed
from patient_flow_dagster.transforms import census
from patient_flow_dagster.transforms.times import utc_literal, utc_text_to_datetime


def hour_of(instant: datetime) -> datetime:
    """The start of the UTC hour holding `instant`: the census's last hour at that instant."""
    return instant.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def update_census(spark, lake: DeltaLake, as_of: datetime) -> dict[str, int]:
    """Bring the hourly census up to date, recomputing only the hours that changed.

    Two things make hours stale: new silver events (a Delta streaming read with its own
    checkpoint) change the census from the first hour any event of their encounters touches,
    and the clock moving changes it from the latest hour stored (the hours after it do not
    exist yet, and that hour was partial). Each batch of new events rewrites the census from
    the earlier of the two through `as_of` (only when it changed: `replace_changed`), so a
    crash never leaves a stale hour behind and a quiet spell between two runs never leaves a
    gap; with no new events, the hours from the latest stored one are rewritten. A change of
    dim_department (bed capacity) or dim_hospital (time zone) recomputes all.
    """
    changes: Counter = Counter()
    note = {
        "department_version": lake.version(spark, DIM_DEPARTMENT),
        "hospital_version": lake.version(spark, DIM_HOSPITAL),
    }
    recompute_all = last_note(lake, spark, DEPARTMENT_CENSUS_HOURLY) != note
    horizon = hour_of(as_of)
    stale_from = horizon
    if not recompute_all:
        latest = (
            lake.read(spark, DEPARTMENT_CENSUS_HOURLY)
            .agg(F.date_format(F.max("hour_start"), "yyyy-MM-dd HH:mm:ss"))
            .collect()[0][0]
        )
        stale_from = min(filter(None, [utc_text_to_datetime(latest), horizon]))
    rewrites = 0

    def rewrite_from(since: datetime | None) -> None:
        nonlocal recompute_all, stale_from, rewrites
        segments = read_placements(spark, lake)
        scope = (
            None
            if since is None
            else (f"hour_start >= timestamp'{since.strftime('%Y-%m-%d %H:%M:%S')}'")
        )
        changes.update(
            replace_changed(
                lake,
                spark,
                DEPARTMENT_CENSUS_HOURLY,
                census.hourly_census(segments, as_of, since),
                list(census.CENSUS_KEYS),
                where=scope,
                note=note,
                order=["hour_start", "hospital_id", "department"],
            )
        )
        recompute_all, stale_from, rewrites = False, horizon, rewrites + 1  # now through as_of

    def on_new_events(events, _batch_id) -> None:
        touched = (
            None
            if recompute_all
            else census.first_hour_touched(
                lake.read(spark, SILVER_EVENTS).join(
                    events.select("encounter_id").distinct(), "encounter_id", "left_semi"
                )
            )
        )
        rewrite_from(None if recompute_all else min(filter(None, [touched, stale_from])))

    lake.process_new_rows(spark, SILVER_EVENTS, DEPARTMENT_CENSUS_HOURLY, on_new_events)
    if recompute_all:  # also: no table yet
        rewrite_from(None)
    elif not rewrites:  # no new events: the clock moved
        rewrite_from(stale_from)
    return {name: changes[name] for name in ("inserted", "updated", "deleted")}


def read_placements(spark, lake: DeltaLake):
    """The movement segments with their department, hospital and bed capacity, from the lake."""
    return census.placements(
        lake.read(spark, FACT_MOVEMENTS),
        lake.read(spark, DIM_DEPARTMENT),
        lake.read(spark, DIM_HOSPITAL),
    )


CENSUS_SPEC = gold_spec(
    DEPARTMENT_CENSUS_HOURLY.key,
    [FACT_MOVEMENTS.key, DIM_DEPARTMENT.key, DIM_HOSPITAL.key, SILVER_EVENTS.key],
    "Per hour x hospital x department, from the movement segments: patients who arrived "
    "(admitted or transferred in) and left (transferred out or discharged) in the hour, patients "
    "present at its end, occupancy = present / bed capacity. Incremental: a new batch recomputes "
    "and rewrites only the hours from the first one its encounters touch.",
    "gold_kpis",
)


TREND_HOURS = 48


def occupancy_chart(table, as_of: datetime) -> MetadataValue:
    """Occupancy per department over the TREND_HOURS hours through the one holding `as_of`."""
    since = hour_of(as_of) + timedelta(hours=1 - TREND_HOURS)
    points = [
        (r.department, utc_text_to_datetime(r.hour_end), r.occupancy)
        for r in census.occupancy_trend(table, since).collect()
    ]
    return line_chart(
        f"Occupancy per department, last {TREND_HOURS} hours (UTC)", points, "occupancy"
    )


def census_result(spark, lake: DeltaLake, as_of: datetime) -> MaterializeResult:
    """Update the census through `as_of`; describe it with its latest hour and the occupancy
    curve per department."""
    changes = update_census(spark, lake, as_of)
    table = lake.read(spark, DEPARTMENT_CENSUS_HOURLY)
    # The census now ends at the hour holding as_of (the table's latest hour, when any).
    latest_hour = table.filter(F.col("hour_start") == utc_literal(hour_of(as_of)))
    rows = [
        r.asDict() for r in latest_hour.orderBy("hospital_id", "department").limit(60).collect()
    ]
    columns = [
        "hospital_id",
        "department",
        "hour_end",
        "admissions",
        "discharges",
        "present_at_end",
        "bed_capacity",
        "occupancy",
    ]
    return MaterializeResult(
        asset_key=DEPARTMENT_CENSUS_HOURLY.key,
        metadata={
            **table_metadata(table, lake, DEPARTMENT_CENSUS_HOURLY, columns),
            "latest_hour": MetadataValue.md(
                markdown_table(rows, columns) if rows else "no patient present"
            ),
            "occupancy_trend": occupancy_chart(table, as_of),
            "as_of": MetadataValue.text(as_of.isoformat()),
            **change_metadata(changes),
        },
    )


def write_current_occupancy(spark, lake: DeltaLake):
    """The census's latest hour per unit and per hospital, written (one row per unit)."""
    return write_small_table(
        spark,
        lake,
        census.current_occupancy(lake.read(spark, DEPARTMENT_CENSUS_HOURLY)),
        CURRENT_OCCUPANCY,
        ["hospital_id", "scope"],
    )


OCCUPANCY_SPEC = gold_spec(
    CURRENT_OCCUPANCY.key,
    [DEPARTMENT_CENSUS_HOURLY.key],
    "The latest census per hospital x department and per hospital: present patients, beds, "
    "occupancy.",
    "gold_kpis",
)


def occupancy_result(spark, lake: DeltaLake) -> MaterializeResult:
    """Write current occupancy from the census; describe it with the totals per hospital."""
    written = write_current_occupancy(spark, lake)
    hospitals = [r for r in written.rows if r["scope"] == "hospital"]
    columns = ["hospital_id", "as_of", "present", "bed_capacity", "occupancy"]
    return MaterializeResult(
        asset_key=CURRENT_OCCUPANCY.key,
        metadata={
            **table_metadata(
                written.frame,
                lake,
                CURRENT_OCCUPANCY,
                ["scope", "hospital_id", "department", "present", "bed_capacity", "occupancy"],
                all_rows=written.rows,
            ),
            "occupancy_per_hospital": MetadataValue.md(markdown_table(hospitals, columns)),
        },
    )


@dataclass(frozen=True)
class CensusKpi:
    """The census or current occupancy: its spec and table, and how a run brings it up to
    `as_of` and describes it."""

    spec: AssetSpec
    table: Table
    update: Callable[[SparkSession, DeltaLake, datetime], MaterializeResult]


# In update order: current occupancy is the census's latest hour.
CENSUS_KPIS = {
    kpi.spec.key: kpi
    for kpi in [
        CensusKpi(CENSUS_SPEC, DEPARTMENT_CENSUS_HOURLY, census_result),
        CensusKpi(
            OCCUPANCY_SPEC,
            CURRENT_OCCUPANCY,
            lambda spark, lake, _as_of: occupancy_result(spark, lake),
        ),
    ]
}


def update_census_kpis(
    spark: SparkSession, lake: DeltaLake, as_of: datetime, kpis: list[CensusKpi]
) -> list[MaterializeResult]:
    """`kpis` (in CENSUS_KPIS order) one after the other."""
    return [kpi.update(spark, lake, as_of) for kpi in kpis]

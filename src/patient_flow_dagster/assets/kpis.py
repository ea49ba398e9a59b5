"""Gold KPIs recomputed from the fact each run: the two admission cubes (admissions and mean
length of stay by gender x department and by department x hospital), length-of-stay statistics
and daily flow.

They are one multi-asset, so one step: each table is a small aggregate of the same fact
tables, read once per step. In production every step is a Databricks job run, so one step
instead of four saves three job runs per pipeline run; locally what a table costs is its Delta
round trips, which `write_small_table` keeps to one write. Each asset is still its own node in
the lineage, with its own checks and metadata, and can be materialized alone (`can_subset`).
"""
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pyspark.sql import DataFrame

from patient_flow_dagster.assets.common import (
    CUBE_DEPARTMENT_HOSPITAL_KEY,
    CUBE_GENDER_DEPARTMENT_KEY,
    DAILY_FLOW_KEY,
    DIM_DEPARTMENT_KEY,
    DIM_PATIENT_KEY,
    FACT_ADMISSIONS_KEY,
    LENGTH_OF_STAY_STATS_KEY,
    SmallTableWrite,
    change_metadata,
    markdown_table,
    table_metadata,
    write_small_table,
)
from patient_flow_dagster.assets.gold import GOLD
from patient_flow_dagster.resources.lake import (
    CUBE_DEPARTMENT_HOSPITAL,
    CUBE_GENDER_DEPARTMENT,
    DAILY_FLOW,
    DIM_DEPARTMENT,
    DIM_PATIENT,
    FACT_ADMISSIONS,
    LENGTH_OF_STAY_STATS,
    DeltaLake,
    Table,
)
from patient_flow_dagster.transforms import flow
from patient_flow_dagster.transforms.cubes import (
    admissions_by_department_hospital,
    admissions_by_gender_department,
)


class FactReads:
    """The fact and the dimensions, read lazily once per run for every KPI of the step."""

    def __init__(self, spark, lake: DeltaLake):
        self.fact = lake.read(spark, FACT_ADMISSIONS)
        self.dim_department = lake.read(spark, DIM_DEPARTMENT)
        self.dim_patient = lake.read(spark, DIM_PATIENT)
        self.stays = flow.stays(self.fact, self.dim_department)


@dataclass(frozen=True)
class FactKpi:
    """One KPI table: how it is computed and written, and what its metadata shows."""

    spec: AssetSpec
    table: Table
    compute: Callable[[FactReads], DataFrame]
    order: list[str]  # the preview's order, and the columns it leads with
    columns: list[str]  # the preview's other columns
    merge_keys: list[str] | None = None  # MERGE only what changed (None: overwrite the table)
    preview_name: str = "preview"
    preview_rows: int = 60
    newest_first: bool = False  # a growing table: preview its newest rows
    total_admissions: bool = False  # also report the sum of num_admissions


def _spec(key: AssetKey, deps: list[AssetKey], description: str, group: str) -> AssetSpec:
    return AssetSpec(key, deps=deps, description=description, group_name=group,
                     kinds=GOLD["kinds"], owners=GOLD["owners"])


_CUBE_COLUMNS = ["num_admissions", "avg_length_of_stay_hours"]

FACT_KPIS = {kpi.spec.key: kpi for kpi in [
    FactKpi(
        _spec(CUBE_GENDER_DEPARTMENT_KEY, [FACT_ADMISSIONS_KEY, DIM_PATIENT_KEY, DIM_DEPARTMENT_KEY],
              "Admissions and average length of stay (hours) per gender and department.", "gold"),
        CUBE_GENDER_DEPARTMENT,
        lambda r: admissions_by_gender_department(r.fact, r.dim_patient, r.dim_department),
        ["gender", "department"], _CUBE_COLUMNS, total_admissions=True),
    FactKpi(
        _spec(CUBE_DEPARTMENT_HOSPITAL_KEY, [FACT_ADMISSIONS_KEY, DIM_DEPARTMENT_KEY],
              "Admissions and average length of stay (hours) per department and hospital.",
              "gold"),
        CUBE_DEPARTMENT_HOSPITAL,
        lambda r: admissions_by_department_hospital(r.fact, r.dim_department),
        ["department", "hospital_id"], _CUBE_COLUMNS, total_admissions=True),
    FactKpi(
        _spec(LENGTH_OF_STAY_STATS_KEY, [FACT_ADMISSIONS_KEY, DIM_DEPARTMENT_KEY],
              "Completed stays per department x hospital: count, mean, median, p90 and max "
              "hours, and the short / medium / long mix.", "gold_kpis"),
        LENGTH_OF_STAY_STATS,
        lambda r: flow.length_of_stay_stats(r.stays),
        ["department", "hospital_id"],
        ["completed_stays", "mean_hours", "median_hours", "p90_hours", "max_hours",
         "short_stays", "medium_stays", "long_stays"],
        preview_name="figures"),
    FactKpi(
        _spec(DAILY_FLOW_KEY, [FACT_ADMISSIONS_KEY, DIM_DEPARTMENT_KEY],
              "Admissions, discharges and net change in patients per day x hospital.",
              "gold_kpis"),
        DAILY_FLOW,
        lambda r: flow.daily_flow(r.stays),
        ["day", "hospital_id"], ["admissions", "discharges", "net_change"],
        merge_keys=["hospital_id", "day"], preview_name="latest_days", preview_rows=14,
        newest_first=True),
]}


def write_kpi(spark, lake: DeltaLake, kpi: FactKpi, reads: FactReads) -> SmallTableWrite:
    """Compute the table and write it (what the bench's bare script runs too)."""
    return write_small_table(spark, lake, kpi.compute(reads), kpi.table, kpi.order,
                             merge_keys=kpi.merge_keys, newest_first=kpi.newest_first)


def materialize_kpi(spark, lake: DeltaLake, kpi: FactKpi, reads: FactReads) -> MaterializeResult:
    """Write the table and describe it from the rows written."""
    written = write_kpi(spark, lake, kpi, reads)
    columns = [*kpi.order, *kpi.columns]
    metadata = {
        **table_metadata(written.frame, lake.location(kpi.table), columns, all_rows=written.rows),
        kpi.preview_name: MetadataValue.md(markdown_table(written.rows[:kpi.preview_rows], columns)),
        **change_metadata(written.changes),
    }
    if kpi.total_admissions:
        metadata["total_admissions"] = MetadataValue.int(
            sum(r["num_admissions"] for r in written.rows))
    return MaterializeResult(asset_key=kpi.spec.key, metadata=metadata)


@multi_asset(
    specs=[kpi.spec for kpi in FACT_KPIS.values()],
    name="gold_kpis_from_fact",
    can_subset=True,
    required_resource_keys=GOLD["required_resource_keys"],
    pool=GOLD["pool"],
)
def kpis_from_fact(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
    """Recompute the selected KPI tables from the fact and the dimensions."""
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    reads = FactReads(spark, lake)
    for key in context.selected_asset_keys:
        yield materialize_kpi(spark, lake, FACT_KPIS[key], reads)

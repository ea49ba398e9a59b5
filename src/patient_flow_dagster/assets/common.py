"""What every lake-writing asset shares: keys, resources, pool, and metadata builders."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, Config, MetadataValue, TableColumn, TableSchema
from pyspark.sql import DataFrame

from patient_flow_dagster.resources.lake import DeltaLake, Table, merge_changed

# Runs that write the lake are serialized through this concurrency pool (DESIGN.md §3).
LAKE_POOL = "patient_flow_lake"
SPARK_RESOURCES = {"pyspark", "step_launcher", "lake"}
SPARK_KINDS = {"pyspark", "delta"}
OWNERS = ["team:patient-flow"]

LANDING_KEY = AssetKey(["landing", "patient_events"])
BRONZE_KEY = AssetKey(["bronze", "patient_events"])
SILVER_KEY = AssetKey(["silver", "patient_events"])
QUARANTINE_KEY = AssetKey(["silver", "patient_events_quarantine"])
DIM_PATIENT_KEY = AssetKey(["gold", "dim_patient"])
DIM_DEPARTMENT_KEY = AssetKey(["gold", "dim_department"])
FACT_ADMISSIONS_KEY = AssetKey(["gold", "fact_admissions"])
CUBE_GENDER_DEPARTMENT_KEY = AssetKey(["gold", "cube_admissions_gender_department"])
CUBE_DEPARTMENT_HOSPITAL_KEY = AssetKey(["gold", "cube_admissions_department_hospital"])
DEPARTMENT_CENSUS_HOURLY_KEY = AssetKey(["gold", "department_census_hourly"])
CURRENT_OCCUPANCY_KEY = AssetKey(["gold", "current_occupancy"])
LENGTH_OF_STAY_STATS_KEY = AssetKey(["gold", "length_of_stay_stats"])
DAILY_FLOW_KEY = AssetKey(["gold", "daily_flow"])


def column_schema(df: DataFrame) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn(field.name, field.dataType.simpleString()) for field in df.schema.fields
        ]
    )


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join(_cell(row.get(c)) for c in columns) + " |\n" for row in rows
    )
    return header + body


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "" if value is None else str(value).replace("|", "\\|")


def table_metadata(
    table: DataFrame,
    location: str,
    preview_columns: Sequence[str],
    preview_rows: int = 5,
    all_rows: Sequence[dict] | None = None,
) -> dict:
    """Row count, schema, location and a preview limited to non-identifying columns.

    Metadata is stored in the Dagster instance and shown in the UI, so previews never include
    patient_id, age or other fields that identify a patient (DESIGN.md §3, privacy).
    `all_rows`: the whole (small) table, already collected in preview order by the caller; it
    is counted and previewed from those rows, without two more Spark jobs.
    """
    if all_rows is not None:
        preview = [{c: row[c] for c in preview_columns} for row in all_rows[:preview_rows]]
        count = len(all_rows)
    else:
        # The first rows Spark reads (one small job): sorting, even a sample, costs more jobs
        # on every run for no better picture of the table.
        preview = [row.asDict() for row in
                   table.select(*preview_columns).limit(preview_rows).collect()]
        count = table.count()
    return {
        "dagster/row_count": MetadataValue.int(count),
        "dagster/column_schema": column_schema(table),
        "location": MetadataValue.path(location),
        "preview": MetadataValue.md(markdown_table(preview, preview_columns)),
    }


@dataclass(frozen=True)
class SmallTableWrite:
    """What `write_small_table` wrote: the rows in preview order, the same rows as a DataFrame
    (its schema), and for a MERGE the rows inserted / updated / deleted."""

    rows: list[dict]
    frame: DataFrame
    changes: dict[str, int] = field(default_factory=dict)


def change_metadata(changes: dict[str, int]) -> dict:
    """rows_inserted / rows_updated / rows_deleted of a MERGE or range rewrite, as metadata."""
    return {f"rows_{name}": MetadataValue.int(n) for name, n in changes.items()}


def write_small_table(spark, lake: DeltaLake, result: DataFrame, table: Table, order: list[str],
                      merge_keys: list[str] | None = None,
                      newest_first: bool = False) -> SmallTableWrite:
    """Make `table` equal to `result`, a small aggregate (rows per unit, or per day and
    hospital): overwrite it, or with `merge_keys` MERGE only what changed.

    The aggregate is computed once and collected; those rows are written and describe the
    table (count, preview), so the table is neither computed twice nor read back. Preview order
    is `order` (newest first when asked), sorted here: a Spark sort costs a sampling job.
    """
    collected = result.collect()
    frame = spark.createDataFrame(collected, result.schema)
    changes = {}
    if merge_keys:
        changes = merge_changed(lake, spark, table, frame, merge_keys)
    else:
        lake.overwrite(frame, table)
    rows = sorted((r.asDict() for r in collected),
                  key=lambda row: tuple((row[c] is None, row[c]) for c in order),
                  reverse=newest_first)
    return SmallTableWrite(rows, frame, changes)


class RefreshConfig(Config):
    """Run config of every lake asset. `full_refresh: true` drops the asset's tables and
    streaming checkpoints first, so it is rebuilt from scratch from its upstream."""

    full_refresh: bool = False


def apply_full_refresh(context, config: RefreshConfig, tables, consumers) -> None:
    """Drop `tables` and the checkpoints of `consumers` when the run asks for a full refresh."""
    if not config.full_refresh:
        return
    spark = context.resources.pyspark.spark_session
    lake = context.resources.lake
    for table in tables:
        lake.drop(spark, table)
    for consumer in consumers:
        lake.drop_checkpoint(spark, consumer)
    context.log.warning(
        f"full refresh: dropped {', '.join(map(str, tables))} and checkpoints "
        f"{', '.join(consumers)}; rebuilding from upstream"
    )

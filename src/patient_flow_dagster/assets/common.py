"""What every lake-writing asset shares: keys, resources, pool, and metadata builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dagster import Config, MetadataValue, TableColumn, TableSchema
from pyspark.sql import DataFrame

from patient_flow_dagster.model.tables import Table
from patient_flow_dagster.resources.lake import DeltaLake

# The concurrency pool of every step that writes the lake. It has no limit: runs that write the
# lake are serialized by the run queue's tag limit instead (WRITES_LAKE, config/dagster.yaml),
# because with the in-process executor a limit of 1 made a step wait for its own run's slot.
LAKE_POOL = "patient_flow_lake"
SPARK_RESOURCES = {"pyspark", "step_launcher", "lake"}
SPARK_KINDS = {"pyspark", "delta"}
OWNERS = ["team:patient-flow"]


def column_schema(df: DataFrame, table: Table) -> TableSchema:
    """The columns as written (names, types), each with its description from the registry."""
    return TableSchema(
        columns=[
            TableColumn(
                field.name, field.dataType.simpleString(), description=table.describe(field.name)
            )
            for field in df.schema.fields
        ]
    )


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |\n" for row in rows)
    return header + body


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "" if value is None else str(value).replace("|", "\\|")


def table_metadata(
    rows: DataFrame,
    lake: DeltaLake,
    table: Table,
    preview_columns: Sequence[str],
    preview_rows: int = 5,
    all_rows: Sequence[dict] | None = None,
) -> dict:
    """Row count, schema, location and a preview limited to non-identifying columns.

    Metadata is stored in the Dagster instance and shown in the UI, so previews never include
    patient_id, age or other fields that identify a patient (docs/architecture.md, "Privacy").
    `all_rows`: the whole (small) table, already collected in preview order by the caller; it
    is counted and previewed from those rows, without two more Spark jobs.
    """
    if all_rows is not None:
        preview = [{c: row[c] for c in preview_columns} for row in all_rows[:preview_rows]]
        count = len(all_rows)
    else:
        # The first rows Spark reads (one small job): sorting, even a sample, costs more jobs
        # on every run for no better picture of the table.
        preview = [
            row.asDict() for row in rows.select(*preview_columns).limit(preview_rows).collect()
        ]
        count = rows.count()
    return {
        "dagster/row_count": MetadataValue.int(count),
        "dagster/column_schema": column_schema(rows, table),
        "location": MetadataValue.path(lake.location(table)),
        "preview": MetadataValue.md(markdown_table(preview, preview_columns)),
    }


@dataclass(frozen=True)
class SmallTable:
    """A small table's rows in preview order, and the same rows as a DataFrame (its schema):
    what `write_small_table` wrote, or what `read_small_table` read."""

    rows: list[dict]
    frame: DataFrame


def side_by_side(work: Callable, items: Sequence) -> Iterator:
    """`work(item)` for every item, each on its own thread, results yielded in the items' order.

    One step's independent Spark work (the two dimensions, the KPI tables, silver's two
    appends, a step's checks) runs as concurrent Spark jobs: one item's driver-side work (Delta
    log replay, planning, the commit) overlaps another's tasks, which on two cores is most of a
    small table's cost. Spark's scheduler and Delta's optimistic commits are made for
    concurrent jobs; what the items share must be thread-safe (a lock around a cache, a commit
    note as a writer option)."""
    if len(items) <= 1:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="side-by-side") as pool:
        futures = [pool.submit(work, item) for item in items]
        for future in futures:
            yield future.result()


def change_metadata(changes: dict[str, int]) -> dict:
    """rows_inserted / rows_updated / rows_deleted of a MERGE or range rewrite, as metadata."""
    return {f"rows_{name}": MetadataValue.int(n) for name, n in changes.items()}


def write_small_table(
    spark,
    lake: DeltaLake,
    result: DataFrame,
    table: Table,
    order: list[str],
    newest_first: bool = False,
    note: dict | None = None,
) -> SmallTable:
    """Replace `table` with `result`, a small aggregate (rows per unit, or per day and
    hospital), its commit carrying `note` (what it was computed from).

    The aggregate is computed once and collected; those rows are written and describe the
    table (count, preview), so the table is neither computed twice nor read back.
    """
    return write_collected(
        spark, lake, result.collect(), result.schema, table, order, newest_first, note
    )


def write_collected(
    spark,
    lake: DeltaLake,
    collected: list,
    schema,
    table: Table,
    order: list[str],
    newest_first: bool = False,
    note: dict | None = None,
) -> SmallTable:
    """`write_small_table` for rows already collected."""
    frame = spark.createDataFrame(collected, schema)
    lake.overwrite(frame, table, note=note)
    return SmallTable(in_preview_order(collected, order, newest_first), frame)


def read_small_table(
    spark, lake: DeltaLake, table: Table, order: list[str], newest_first: bool = False
) -> SmallTable:
    """A small table as it is stored, described like one just written (nothing written)."""
    frame = lake.read(spark, table)
    return SmallTable(in_preview_order(frame.collect(), order, newest_first), frame)


def in_preview_order(collected: list, order: list[str], newest_first: bool) -> list[dict]:
    """Rows as dicts in preview order (`order`, newest first when asked), sorted here: a
    Spark sort costs a sampling job."""
    return sorted(
        (r.asDict() for r in collected),
        key=lambda row: tuple((row[c] is None, row[c]) for c in order),
        reverse=newest_first,
    )


class RefreshConfig(Config):
    """Run config of every lake asset. `full_refresh: true` drops the asset's tables and
    streaming checkpoints first, so it is rebuilt from scratch from its upstream."""

    full_refresh: bool = False


def apply_full_refresh(context, config: RefreshConfig, tables: Sequence[Table]) -> None:
    """Drop `tables`, and the checkpoints of the streams that write them, when the run asks
    for a full refresh."""
    if not config.full_refresh:
        return
    spark = context.resources.pyspark.spark_session
    lake = context.resources.lake
    for table in tables:
        lake.drop(spark, table)
        if table.streamed:
            lake.drop_checkpoint(spark, table)
    context.log.warning(
        f"full refresh: dropped {', '.join(map(str, tables))} and their checkpoints; "
        "rebuilding from upstream"
    )

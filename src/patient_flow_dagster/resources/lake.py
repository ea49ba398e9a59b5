"""The lake: one resource maps logical table names to physical Delta tables.

Assets name tables logically (`silver.patient_events`); this resource decides where they live:
`<root>/<layer>/<table>` folders locally, `<catalog>.<layer>.<table>` in Unity Catalog on
Databricks. Assets never build paths themselves.
"""

from __future__ import annotations

import json
from typing import Any

from dagster import ConfigurableResource
from delta.tables import DeltaTable
from pydantic import PrivateAttr
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamReader, DataStreamWriter
from pyspark.sql.types import StructType

from patient_flow_dagster.model import access
from patient_flow_dagster.model.tables import CHANGE_FEED, Table
from patient_flow_dagster.variables import resource_field

# The table property a note recorded without rows is kept in (`record_note`).
NOTE_PROPERTY = "patient_flow.note"


class DeltaLake(ConfigurableResource):
    """Delta tables as folders under `root` (local), or Unity Catalog tables when `catalog` is set.

    `root` also holds the streaming checkpoints (`<root>/_checkpoints/<name>`); on Databricks it
    is an `abfss://` location (a Unity Catalog external location or volume).
    """

    root: str = resource_field("PATIENT_FLOW_LAKE", default=...)
    catalog: str | None = resource_field("PATIENT_FLOW_CATALOG")
    # Unity Catalog only: the analytics zone's row filter and age mask on the gold tables it
    # creates (model/access.py). Off for a catalog that has neither (Spark's own, in tests).
    access_policies: bool = False
    # None = no lock (on Databricks the lake is remote and the run queue serializes runs).
    writer_lock_timeout: float | None = resource_field(
        "PATIENT_FLOW_LAKE_LOCK_TIMEOUT", default=None
    )
    _lock: Any = PrivateAttr(default=None)

    # -- one writer at a time ---------------------------------------------------------------
    def setup_for_execution(self, context) -> None:
        """Hold the lake's writer lock for the run (resources are set up once per run with the
        in-process executor, once per step process with the multiprocess one)."""
        if self.writer_lock_timeout is None or "://" in self.root or self.root.startswith("dbfs:"):
            return
        from patient_flow_dagster.resources.writer_lock import WriterLock

        lock = WriterLock(self.root, getattr(context, "run_id", None) or "(no run)")

        def waiting(holder: str) -> None:
            if context.log:
                context.log.info(f"waiting for the lake: it is being written by {holder}")

        lock.acquire(self.writer_lock_timeout, on_wait=waiting)
        self._lock = lock

    def teardown_after_execution(self, context) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- naming -----------------------------------------------------------------------------
    def location(self, table: Table) -> str:
        """A path for folder tables, a three-part name for catalog tables."""
        if self.catalog:
            return f"{self.catalog}.{table.layer}.{table.name}"
        return f"{self.root.rstrip('/')}/{table.layer}/{table.name}"

    def checkpoint(self, table: Table) -> str:
        """Where the checkpoint of the stream that writes `table` lives."""
        return f"{self.root.rstrip('/')}/_checkpoints/{table.checkpoint}"

    # -- reading ----------------------------------------------------------------------------
    def exists(self, spark: SparkSession, table: Table) -> bool:
        if self.catalog:
            return spark.catalog.tableExists(self.location(table))
        return DeltaTable.isDeltaTable(spark, self.location(table))

    def read(self, spark: SparkSession, table: Table, version: int | None = None) -> DataFrame:
        """The table, or its state at an earlier Delta `version` (time travel)."""
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return self._load(reader, table)

    def delta_table(self, spark: SparkSession, table: Table) -> DeltaTable:
        if self.catalog:
            return DeltaTable.forName(spark, self.location(table))
        return DeltaTable.forPath(spark, self.location(table))

    def read_stream(self, spark: SparkSession, table: Table) -> DataFrame:
        reader: DataStreamReader = spark.readStream.format("delta")
        return self._load(reader, table)

    def _load(self, reader, table: Table) -> DataFrame:
        """A batch or streaming reader's DataFrame of the table, by name or by path."""
        if self.catalog:
            return reader.table(self.location(table))
        return reader.load(self.location(table))

    def read_changes(self, spark: SparkSession, table: Table, first: int, last: int) -> DataFrame:
        """The table's change data feed for versions first..last: every row inserted or deleted,
        both images of every row updated (`_change_type`, `_commit_version`)."""
        return self._load(
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", first)
            .option("endingVersion", last),
            table,
        )

    def table_id(self, spark: SparkSession, table: Table) -> str | None:
        """Delta's id of the table: a dropped and recreated table has a new one, while its
        versions start again from 0."""
        if not self.exists(spark, table):
            return None
        return self.delta_table(spark, table).detail().select("id").collect()[0][0]

    def version(self, spark: SparkSession, table: Table) -> int | None:
        """The table's latest Delta version, or None when it does not exist yet."""
        if not self.exists(spark, table):
            return None
        return int(self.delta_table(spark, table).history(1).select("version").collect()[0][0])

    # -- writing ----------------------------------------------------------------------------
    def ensure_schema(self, spark: SparkSession, table: Table) -> None:
        """Unity Catalog: the layer's schema must exist before a table is created in it
        (Terraform creates bronze/silver/gold; this keeps a fresh catalog working too)."""
        if self.catalog:
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{self.catalog}`.`{table.layer}`")

    def ensure(self, spark: SparkSession, table: Table, schema: StructType) -> None:
        """Create the table empty with `schema` if it does not exist (MERGE needs a target),
        with its `creation_properties`. A table that records its changes gets the change data
        feed even when it was created before it was asked for."""
        created_with = table.creation_properties
        if self.catalog:  # three-part names: through the catalog (the builder parses two parts)
            self.ensure_schema(spark, table)
            created = not spark.catalog.tableExists(self.location(table))
            writer = spark.createDataFrame([], schema).write.format("delta").mode("ignore")
            for name, value in created_with.items():  # delta.* options: the new table's properties
                writer = writer.option(name, value)
            writer.saveAsTable(self.location(table))
            if created and self.access_policies:
                for statement in access.statements(self.catalog, table):
                    spark.sql(statement)
        else:
            builder = (
                DeltaTable.createIfNotExists(spark)
                .addColumns(schema)
                .location(self.location(table))
            )
            for name, value in created_with.items():
                builder = builder.property(name, value)
            builder.execute()
        self._add_missing_columns(spark, table, schema)
        if table.change_feed:
            current = self.delta_table(spark, table).detail().select("properties").collect()[0][0]
            if current.get(CHANGE_FEED) != "true":
                spark.sql(
                    f"ALTER TABLE {self._sql_name(table)} "
                    f"SET TBLPROPERTIES ('{CHANGE_FEED}' = 'true')"
                )

    def _add_missing_columns(self, spark: SparkSession, table: Table, schema: StructType) -> None:
        """Columns of `schema` the stored table lacks are added (null in the old rows): a lake
        written before a column was declared keeps working, as Delta's schema evolution does."""
        stored = {name.lower() for name in self.read(spark, table).columns}
        missing = [field for field in schema.fields if field.name.lower() not in stored]
        if missing:
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
            spark.sql(f"ALTER TABLE {self._sql_name(table)} ADD COLUMNS ({columns})")

    def _sql_name(self, table: Table) -> str:
        if self.catalog:
            return self.location(table)
        return f"delta.`{self.location(table)}`"

    def record_note(self, spark: SparkSession, table: Table, note: dict) -> None:
        """Record what the table reflects without writing rows: a commit of a table property
        (Delta records no commit for a write of no rows). `last_note` reads it back."""
        text = json.dumps(note).replace("'", "\\'")
        spark.sql(
            f"ALTER TABLE {self._sql_name(table)} SET TBLPROPERTIES ('{NOTE_PROPERTY}' = '{text}')"
        )

    def append(self, df: DataFrame, table: Table, txn: tuple[str, int] | None = None) -> None:
        """Append rows; `txn` = (app id, version) makes a replayed streaming batch a no-op."""
        self.ensure_schema(df.sparkSession, table)
        writer = df.write.format("delta").mode("append")
        if txn is not None:
            writer = writer.option("txnAppId", txn[0]).option("txnVersion", txn[1])
        self._save(writer, table)

    def overwrite(
        self,
        df: DataFrame,
        table: Table,
        replace_where: str | None = None,
        note: dict | None = None,
    ) -> None:
        """Replace the table, or only the rows matching `replace_where`. `note` (JSON) goes
        into the commit's user metadata, in the same commit as the rows: what the table was
        computed from, read back with `last_note`. A writer option, not a session setting,
        so concurrent writes each carry their own."""
        self.ensure_schema(df.sparkSession, table)
        writer = df.write.format("delta").mode("overwrite")
        if note is not None:
            writer = writer.option("userMetadata", json.dumps(note))
        if replace_where:
            writer = writer.option("replaceWhere", replace_where)
        else:
            writer = writer.option("overwriteSchema", "true")
        self._save(writer, table)

    def _save(self, writer, table: Table) -> None:
        if self.catalog:
            writer.saveAsTable(self.location(table))
        else:
            writer.save(self.location(table))

    def start_stream(self, spark: SparkSession, writer: DataStreamWriter, table: Table):
        """Start a streaming write into `table` (the checkpoint is set by the caller)."""
        if self.catalog:
            self.ensure_schema(spark, table)
            return writer.toTable(self.location(table))
        return writer.start(self.location(table))

    # -- incremental processing -------------------------------------------------------------
    def process_new_rows(
        self,
        spark: SparkSession,
        source: Table,
        consumer: Table,
        handle_batch,
    ) -> None:
        """Call `handle_batch(rows, batch_id)` for the rows added to `source` since the last call
        by `consumer` (the table the stream writes, whose checkpoint it is).

        A Delta streaming read with a checkpoint per consumer and `availableNow`: the library keeps
        track of what was processed, so a re-run or a crash never skips or repeats a committed
        batch. A batch that fails is offered again on the next run.
        """
        query = (
            self.read_stream(spark, source)
            .writeStream.queryName(consumer.checkpoint)
            .foreachBatch(handle_batch)
            .option("checkpointLocation", self.checkpoint(consumer))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()

    # -- full refresh -----------------------------------------------------------------------
    def drop(self, spark: SparkSession, table: Table) -> None:
        """Remove a table and its data (full refresh). Its consumers' checkpoints must go too."""
        if self.catalog:
            spark.sql(f"DROP TABLE IF EXISTS {self.location(table)}")
        else:
            _delete_path(spark, self.location(table))

    def drop_checkpoint(self, spark: SparkSession, consumer: Table) -> None:
        _delete_path(spark, self.checkpoint(consumer))


def _delete_path(spark: SparkSession, location: str) -> None:
    """Recursive delete through Hadoop's FileSystem: local folders, abfss://, wasbs:// alike.
    PySpark has no public file-system API; this goes through the JVM gateway the way delta-spark's
    own Python API does (`_jvm`), on a classic session only (Spark Connect has no gateway)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None  # a classic session's driver
    path = jvm.org.apache.hadoop.fs.Path(location)
    path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)


def merge_counts(merge_result: DataFrame) -> dict[str, int]:
    """Rows inserted / updated / deleted by a MERGE, from the one-row DataFrame its execute()
    returns (no DESCRIBE HISTORY round trip)."""
    row = merge_result.first()
    return {
        name: int(row[f"num_{name}_rows"] or 0) if row else 0
        for name in ("inserted", "updated", "deleted")
    }


def replace_changed(
    lake: DeltaLake,
    spark: SparkSession,
    table: Table,
    rows: DataFrame,
    keys: list[str],
    where: str | None = None,
    note: dict | None = None,
    order: list[str] | None = None,
    note_always: bool = False,
) -> dict[str, int]:
    """Make the part of `table` selected by `where` (all of it when None) equal to `rows`.

    For tables recomputed by range (the census from an hour on): the new rows are compared with
    the stored range first, and only when they differ is the range replaced (Delta
    `replaceWhere`; rows written sorted by `order`, the range column first, so that a later
    range rewrites only the files it overlaps). An unchanged
    range writes nothing: no new version, unless `note_always` and the note is new (a commit of
    no rows then records what the table reflects). Returns rows inserted / updated / deleted by
    key.
    """
    lake.ensure(spark, table, rows.schema)
    stored = lake.read(spark, table)
    if where:
        stored = stored.filter(where)
    values = [c for c in rows.columns if c not in keys]
    rows = rows.persist()  # computed once for the comparison, the range sort and the write
    new = rows.select(*keys, F.struct(*values).alias("_new"))
    try:
        # One pass: a full outer join on the keys, counting what appears, goes and changes.
        old = stored.select(*keys, F.struct(*values).alias("_old"))
        compared = (
            new.join(old, keys, "full_outer")
            .agg(
                F.count_if(F.col("_old").isNull()).alias("inserted"),
                F.count_if(F.col("_new").isNull()).alias("deleted"),
                F.count_if(
                    F.col("_new").isNotNull()
                    & F.col("_old").isNotNull()
                    & ~F.col("_new").eqNullSafe(F.col("_old"))
                ).alias("updated"),
            )
            .collect()[0]
        )
        counts = {name: int(compared[name]) for name in ("inserted", "updated", "deleted")}
        if any(counts.values()):
            lake.overwrite(
                rows.orderBy(*(order or keys)), table, replace_where=where, note=note or {}
            )
        elif note_always and note is not None and last_note(lake, spark, table) != note:
            lake.record_note(spark, table, note)  # no row changed, but the table reflects it
    finally:
        rows.unpersist()
    return counts


def last_note(lake: DeltaLake, spark: SparkSession, table: Table) -> dict:
    """The note of the table's latest commit, or of the note it recorded alone ({} when none or
    no table)."""
    if not lake.exists(spark, table):
        return {}
    delta = lake.delta_table(spark, table)
    row = delta.history(1).select("userMetadata", "operation").first()
    text = row[0] if row else None
    if row and not text and row[1] == "SET TBLPROPERTIES":  # lake.record_note
        detail = delta.detail().select("properties").first()
        text = detail[0].get(NOTE_PROPERTY) if detail else None
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}

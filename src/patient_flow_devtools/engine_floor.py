"""The engine's floor: the least Spark + Delta work that has the pipeline's shape.

The benchmark runs it on the same landing files, in the same JVM, after the pipeline's runs, so
it says what this machine's Spark and Delta cost before any of the pipeline's logic: landing into
a bronze table, one row per event id split into two tables, a dimension, a fact joined to it and
one aggregate (six Delta tables; the pipeline writes thirteen and runs its quality checks). No
rules, no SCD2 history, no census, no checks, no Dagster. A goal this floor misses is out of reach
of any pipeline of that shape on the machine, whatever its code. Its row counts are reconciled
like the pipeline's, so a floor that lost rows could not look fast.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from patient_flow_devtools.steps import count_problems, timed_steps

FLOOR_TABLES = ("bronze", "silver", "quarantine", "dim_patient", "fact_admissions", "kpi")
# File statistics only on what is joined or filtered on, as the pipeline's large tables keep
# them (`stats_columns` in model/tables.py): the key, and the batch the increment reads.
STATS_COLUMNS = {
    "bronze": "event_id,batch",
    "silver": "event_id,batch",
    "quarantine": "event_id",
    "dim_patient": "patient_id",
    "fact_admissions": "event_id",
}
# One rule stands for all of silver's: a row without a patient or a valid age goes to quarantine.
VALID = "coalesce(patient_id IS NOT NULL AND age BETWEEN 0 AND 100, false)"


class FloorError(RuntimeError):
    """The floor's own tables do not reconcile: no figure is reported."""


class EngineFloor:
    """The six floor tables under `root`, written by `full_run` and then `increment`."""

    def __init__(self, spark: SparkSession, root: Path):
        self.spark, self.root = spark, root

    def path(self, table: str) -> str:
        return str(self.root / table)

    def read(self, table: str) -> DataFrame:
        return self.spark.read.format("delta").load(self.path(table))

    def write(self, rows: DataFrame, table: str, mode: str = "append") -> None:
        writer = rows.write.format("delta").mode(mode)
        if table in STATS_COLUMNS:  # a creation's property; ignored by later writes
            writer = writer.option("delta.dataSkippingStatsColumns", STATS_COLUMNS[table])
        writer.save(self.path(table))

    def _of_increment(self, table: str) -> DataFrame:
        return self.read(table).filter("batch = 'increment'")

    def _with_patient(self, silver: DataFrame) -> DataFrame:
        """Silver rows with their patient's version from dim_patient: the fact."""
        return silver.join(
            self.read("dim_patient").select("patient_id", "patient_version"), "patient_id"
        )

    def _landed(self, files: list[str], batch: str) -> DataFrame:
        return (
            self.spark.read.parquet(*files)
            .withColumn("age", F.expr("try_cast(age AS INT)"))
            .withColumn("batch", F.lit(batch))
            .withColumn("ingested_at", F.current_timestamp())
            .withColumn("source_file", F.col("_metadata.file_path"))
        )

    def _split(self, events: DataFrame) -> None:
        """Valid rows to silver, the rest to quarantine: one cached batch, two appends."""
        events = events.cache()
        try:
            self.write(events.filter(VALID), "silver")
            self.write(events.filter(f"NOT {VALID}"), "quarantine")
        finally:
            events.unpersist()

    def _kpi(self) -> None:
        self.write(self.read("fact_admissions").groupBy("department").count(), "kpi", "overwrite")

    def full_run(self, files: list[str]) -> dict[str, float]:
        """Every file into an empty floor lake."""
        if self.root.exists():
            shutil.rmtree(self.root)
        first = Window.partitionBy("event_id").orderBy("ingested_at", "source_file")
        return timed_steps(
            {
                "bronze": lambda: self.write(self._landed(files, "full"), "bronze"),
                "silver": lambda: self._split(
                    self.read("bronze")
                    .withColumn("_rank", F.row_number().over(first))
                    .filter("_rank = 1")
                    .drop("_rank")
                ),
                "dim_patient": lambda: self.write(
                    _latest_per_patient(self.read("silver")), "dim_patient"
                ),
                "fact_admissions": lambda: self.write(
                    self._with_patient(self.read("silver")), "fact_admissions"
                ),
                "kpi": self._kpi,
            }
        )

    def increment(self, files: list[str]) -> dict[str, float]:
        """New files into the lake `full_run` wrote: appends, one MERGE, the aggregate again."""
        from delta.tables import DeltaTable

        def silver() -> None:  # ids seen before: the stored ids semi-joined with the new ones
            new = self._of_increment("bronze").dropDuplicates(["event_id"])
            ids = F.broadcast(new.select("event_id"))
            seen = self.read("silver").select("event_id").join(ids, "event_id", "left_semi")
            seen = seen.unionByName(
                self.read("quarantine").select("event_id").join(ids, "event_id", "left_semi")
            )
            self._split(new.join(F.broadcast(seen), "event_id", "left_anti"))

        def dim_patient() -> None:
            latest = _latest_per_patient(self._of_increment("silver"))
            (
                DeltaTable.forPath(self.spark, self.path("dim_patient"))
                .alias("t")
                .merge(latest.alias("s"), "t.patient_id = s.patient_id")
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )

        def fact() -> None:
            self.write(self._with_patient(self._of_increment("silver")), "fact_admissions")

        return timed_steps(
            {
                "bronze": lambda: self.write(self._landed(files, "increment"), "bronze"),
                "silver": silver,
                "dim_patient": dim_patient,
                "fact_admissions": fact,
                "kpi": self._kpi,
            }
        )

    def counts(self) -> dict[str, int]:
        counts = {table: self.read(table).count() for table in FLOOR_TABLES}
        counts["bronze_distinct_event_ids"] = (
            self.read("bronze").select("event_id").distinct().count()
        )
        return counts

    def reconcile(self, landed_rows: int) -> dict[str, int]:
        counts = self.counts()
        problems = count_problems(
            landed_rows,
            counts["bronze"],
            counts["bronze_distinct_event_ids"],
            counts["silver"],
            counts["quarantine"],
            counts["fact_admissions"],
            counts["silver"],
        )  # the floor's fact holds a row per silver row
        if problems:
            raise FloorError("engine floor: " + "; ".join(problems))
        return counts

    def commit_seconds(self, tries: int = 5) -> float:
        """Median time to append one row to a Delta table: what every write costs here before
        its data."""
        row = self.spark.range(1)
        self.write(row, "one_row", "overwrite")
        return statistics.median(
            timed_steps({"append": lambda: self.write(row, "one_row")})["append"]
            for _ in range(tries)
        )


def _latest_per_patient(silver: DataFrame) -> DataFrame:
    """The patient's attributes of their latest admission, and how many admissions that is."""
    return (
        silver.groupBy("patient_id")
        .agg(
            F.max_by(F.struct("gender", "age", "department"), "admission_time").alias("latest"),
            F.count("*").alias("patient_version"),
        )
        .select("patient_id", "latest.*", "patient_version")
    )


def measure(
    spark: SparkSession,
    root: Path,
    history_files: list[str],
    new_files: list[str],
    history_rows: int,
    new_rows: int,
) -> dict:
    """The floor's full run over `history_files`, then its increment of `new_files`, both
    reconciled; seconds, events per second and the increment's fraction of the full run."""
    floor = EngineFloor(spark, root)
    full = floor.full_run(history_files)
    floor.reconcile(history_rows)
    increment = floor.increment(new_files)
    floor.reconcile(history_rows + new_rows)
    commit = floor.commit_seconds()
    shutil.rmtree(root)
    full_seconds, increment_seconds = sum(full.values()), sum(increment.values())
    return {
        "full_run_seconds": round(full_seconds, 1),
        "events_per_second": round(history_rows / full_seconds),
        "seconds_per_step": {k: round(v, 1) for k, v in full.items()},
        "increment_seconds": round(increment_seconds, 1),
        "increment_fraction_of_full_run": round(increment_seconds / full_seconds, 3),
        "increment_seconds_per_step": {k: round(v, 1) for k, v in increment.items()},
        "one_row_delta_append_seconds": round(commit, 2),
    }

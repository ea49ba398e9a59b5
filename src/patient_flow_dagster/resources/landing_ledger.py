"""The landing ledger (bronze/landing_files): every version of every landing file the pipeline
has seen (name + size + modification time), what its footer said, its status (pending, ingested
or rejected, with the reason) and batch, and where it went in the archive.

The ledger is how bronze ingests each version exactly once, how a crashed batch is replayed with
its number, and how the landing zone is archived and restored; it belongs with the landing zone,
beside the resource that lists, reads and moves the files (resources/landing.py).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from patient_flow_dagster.model.tables import LANDING_FILES
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.resources.landing import (
    FileInspection,
    LandingFile,
    LandingZone,
    unseen,
)
from patient_flow_dagster.transforms.times import utc_literal

PENDING, INGESTED, REJECTED = "pending", "ingested", "rejected"


@dataclass
class Version:
    """One version of a landing file (name + size + mtime) and what its footer says."""

    file: LandingFile
    inspection: FileInspection
    batch: int | None = None

    @property
    def status(self) -> str:
        return REJECTED if self.inspection.problem else PENDING

    def ledger_row(self, run_id: str, accepted: str) -> dict:
        """Its ledger row: `accepted` (pending, or ingested) unless it is rejected."""
        return {
            "file_name": self.file.name,
            "file_size": self.file.size,
            "modified_us": self.file.modified_us,
            "footer_rows": self.inspection.rows,
            "status": accepted if self.status == PENDING else self.status,
            "reason": self.inspection.note,
            "batch": self.batch,
            "audit_run_id": run_id,
            "archived_as": None,
        }


def _versions(ledger: DataFrame) -> list:
    """Ledger rows as versions (file_name, file_size, modified_us) with their status and batch."""
    return ledger.select(
        "file_name",
        "file_size",
        F.unix_micros("file_modified").alias("modified_us"),
        "status",
        "batch",
    ).collect()


def read_ledger(spark: SparkSession, lake: DeltaLake, listed: list[LandingFile]) -> list:
    """The ledger rows of the names now in landing, and the pending ones: what tells a new
    version from a seen one and replays a crashed batch. Read once per run, bounded by what the
    landing zone holds (its retention), not by the history the ledger keeps."""
    lake.ensure(spark, LANDING_FILES, LANDING_FILES.spark_schema)
    names = sorted({f.name for f in listed})
    return _versions(
        lake.read(spark, LANDING_FILES).filter(
            F.col("file_name").isin(*names) | (F.col("status") == PENDING)
        )
    )


def last_batch(spark: SparkSession, lake: DeltaLake) -> int:
    """The highest batch number the ledger has given (0 before the first)."""
    return lake.read(spark, LANDING_FILES).agg(F.max("batch")).collect()[0][0] or 0


def new_versions(ledger: list, listed: list[LandingFile], landing: LandingZone) -> list[Version]:
    """Listed versions the ledger has not seen, inspected (footer only)."""
    return [Version(f, landing.inspect(f.name)) for f in unseen(listed, ledger)]


def pending_versions(ledger: list, landing: LandingZone) -> list[Version]:
    """Versions a crashed run recorded as pending: their batch is replayed with its number."""
    return [
        Version(LandingFile.of_ledger(r), landing.inspect(r.file_name), r.batch)
        for r in ledger
        if r.status == PENDING
    ]


def record(
    spark: SparkSession,
    lake: DeltaLake,
    versions: list[Version],
    run_id: str,
    accepted: str = PENDING,
) -> None:
    """Append the versions to the ledger: rejected with the reason, the others as `accepted`."""
    if not versions:
        return
    columns = LANDING_FILES.spark_schema
    found = StructType(
        [
            StructField("modified_us", LongType()),
            *[f for f in columns.fields if f.name not in ("file_modified", "audited_at")],
        ]
    )
    rows = spark.createDataFrame([v.ledger_row(run_id, accepted) for v in versions], found).select(
        "file_name",
        "file_size",
        F.timestamp_micros("modified_us").alias("file_modified"),
        *[f.name for f in found.fields if f.name not in ("file_name", "file_size", "modified_us")],
        F.current_timestamp().alias("audited_at"),
    )
    lake.append(rows.select(*columns.names), LANDING_FILES)


def assign_batches(versions: list[Version], first: int, per_batch: int) -> None:
    for index, version in enumerate(versions):
        version.batch = first + index // per_batch


def mark_ingested(spark: SparkSession, lake: DeltaLake, batches: list[int], run_id: str) -> None:
    """The pending versions of `batches` are in bronze: mark them ingested by `run_id`."""
    if not batches:
        return
    lake.delta_table(spark, LANDING_FILES).update(
        (F.col("status") == PENDING) & F.col("batch").isin(batches),
        {
            "status": F.lit(INGESTED),
            "audit_run_id": F.lit(run_id),
            "audited_at": F.current_timestamp(),
        },
    )


GONE = "-"  # archived_as of a version that left the landing zone before its retention ended


def archive_destination(row) -> str:
    """Where a ledger version goes in the archive: ingested ones by batch, rejected ones by
    modification time (a rewritten file's versions never collide)."""
    if row.status == INGESTED:
        return f"batch-{row.batch:08d}/{row.file_name}"
    return f"rejected/{row.modified_us}-{row.file_name}"


def archive_landing(
    spark: SparkSession, lake: DeltaLake, landing: LandingZone, now: datetime
) -> int:
    """Move the versions ingested or rejected more than the retention ago from the landing zone
    to the archive and note where in the ledger; returns how many moved.

    The ledger keeps every version, so nothing is lost from the account. A file is moved before
    its ledger row says so: a crash in between leaves a row the next run completes (it finds
    the file in the archive). Auto Loader archives its own files (cleanSource)."""
    if landing.retention_hours is None or landing.reader == "autoloader":
        return 0
    cutoff = utc_literal(now - timedelta(hours=landing.retention_hours))
    due = _versions(
        lake.read(spark, LANDING_FILES).filter(
            F.col("status").isin(INGESTED, REJECTED)
            & F.col("archived_as").isNull()
            & (F.col("audited_at") < cutoff)
        )
    )
    if not due:
        return 0
    notes, moved = [], 0
    for row in due:
        destination = archive_destination(row)
        if landing.move_to_archive(LandingFile.of_ledger(row), destination):
            moved += 1
        elif not landing.in_archive(destination):
            destination = GONE
        notes.append((row.file_name, row.file_size, row.modified_us, destination))
    archived = spark.createDataFrame(
        notes, "file_name string, file_size bigint, modified_us bigint, archived_as string"
    )
    (
        lake.delta_table(spark, LANDING_FILES)
        .alias("ledger")
        .merge(
            archived.alias("archived"),
            "ledger.file_name = archived.file_name AND ledger.file_size = archived.file_size "
            "AND unix_micros(ledger.file_modified) = archived.modified_us",
        )
        .whenMatchedUpdate(set={"archived_as": "archived.archived_as"})
        .execute()
    )
    return moved


def restore_archive(spark: SparkSession, lake: DeltaLake, landing: LandingZone) -> int:
    """Before bronze is rebuilt from the landing zone (full refresh): every archived version the
    ledger notes goes back into it, so the rebuild reads every file bronze ever ingested. A
    version whose name is taken again comes back under a name of its own (its events are the
    same events: silver keeps each once)."""
    if landing.reader == "autoloader" or not lake.exists(spark, LANDING_FILES):
        return 0
    lake.ensure(spark, LANDING_FILES, LANDING_FILES.spark_schema)  # an older ledger: no notes
    archived = (
        lake.read(spark, LANDING_FILES)
        .filter(F.col("archived_as").isNotNull() & (F.col("archived_as") != GONE))
        .select("file_name", "archived_as")
        .collect()
    )
    present = {f.name for f in landing.list_files()}
    restored = 0
    for row in archived:
        if not landing.in_archive(row.archived_as):
            continue  # cleaned up by hand: the ledger that noted it is being dropped too
        name = row.file_name
        if name in present:
            name = "restored-" + row.archived_as.replace("/", "-")
        landing.restore(row.archived_as, name)
        present.add(name)
        restored += 1
    return restored

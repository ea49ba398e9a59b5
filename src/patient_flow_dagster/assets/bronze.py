"""Bronze: every landed row exactly once, as landed, with ingest metadata."""

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import reduce

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from patient_flow_dagster.assets.checks import (
    CHECK_RESOURCES,
    checks_on,
    write_then_check,
)
from patient_flow_dagster.assets.common import (
    LAKE_POOL,
    OWNERS,
    SPARK_KINDS,
    RefreshConfig,
    apply_full_refresh,
    markdown_table,
    table_metadata,
)
from patient_flow_dagster.model.contract import LANDING_SCHEMA
from patient_flow_dagster.model.tables import (
    BRONZE_EVENTS,
    LANDING_EVENTS,
    LANDING_FILES,
)
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.resources.landing import (
    FileInspection,
    LandingFile,
    LandingZone,
    unseen,
)
from patient_flow_dagster.transforms.bronze import with_ingest_metadata
from patient_flow_dagster.transforms.times import utc_literal

# Delta's idempotent-write id of bronze's batches: a batch replayed after a crash (same number)
# is skipped by Delta when its commit already landed.
BRONZE_TXN_APP = "patient_flow.bronze_ingest"
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


@dataclass
class Ingest:
    new: list[Version]  # versions first seen by this run
    rows: int  # rows this run wrote to bronze

    @property
    def rejected(self) -> list[Version]:
        return [v for v in self.new if v.status == REJECTED]

    @property
    def drifted(self) -> list[Version]:
        return [v for v in self.new if v.status != REJECTED and v.inspection.note]


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


def write_batch(
    spark: SparkSession,
    lake: DeltaLake,
    landing: LandingZone,
    batch: int,
    versions: list[Version],
    run_id: str,
) -> None:
    """Append one batch's rows to bronze in one Delta commit, idempotent by batch number.
    Files whose extra columns differ are read apart and unioned by name."""
    by_extra: dict[tuple, list[str]] = {}
    for version in versions:
        by_extra.setdefault(version.inspection.extra, []).append(version.file.name)
    parts = [
        landing.read_files(spark, names, LANDING_SCHEMA, extra) for extra, names in by_extra.items()
    ]
    landed = reduce(DataFrame.unionByName, parts)
    lake.append(with_ingest_metadata(landed, run_id), BRONZE_EVENTS, txn=(BRONZE_TXN_APP, batch))


def ingest_versions(
    spark: SparkSession, lake: DeltaLake, landing: LandingZone, run_id: str
) -> Ingest:
    """Bronze from the ledger: record the new versions (pending, or rejected with the reason),
    append each batch of pending versions to bronze, then mark them ingested.

    A crash after a batch's bronze commit leaves its versions pending; the rerun replays the
    batch with the same number and Delta skips it (txnAppId/txnVersion), so every version is
    ingested exactly once."""
    listed = landing.list_files()
    ledger = read_ledger(spark, lake, listed)
    replay = pending_versions(ledger, landing)
    new = new_versions(ledger, listed, landing)
    assign_batches(
        [v for v in new if v.status == PENDING],
        last_batch(spark, lake) + 1,
        landing.max_files_per_trigger,
    )
    record(spark, lake, new, run_id)
    batches: dict[int, list[Version]] = {}
    for version in replay + new:
        if version.status == PENDING and version.batch is not None:  # pending: numbered
            batches.setdefault(version.batch, []).append(version)
    for batch in sorted(batches):
        write_batch(spark, lake, landing, batch, batches[batch], run_id)
    if batches:
        lake.delta_table(spark, LANDING_FILES).update(
            (F.col("status") == PENDING) & F.col("batch").isin(list(batches)),
            {
                "status": F.lit(INGESTED),
                "audit_run_id": F.lit(run_id),
                "audited_at": F.current_timestamp(),
            },
        )
    return Ingest(new, _rows_of_run(spark, lake, run_id))


def ingest_stream(
    spark: SparkSession, lake: DeltaLake, landing: LandingZone, run_id: str
) -> Ingest:
    """Bronze through Auto Loader (Databricks): the stream's checkpoint keeps exactly-once;
    the ledger records each new version as ingested or rejected after the stream."""
    listed = landing.list_files()
    new = new_versions(read_ledger(spark, lake, listed), listed, landing)
    landed = with_ingest_metadata(landing.read_stream(spark, LANDING_SCHEMA), run_id)
    writer = (
        landed.writeStream.format("delta")
        .queryName(BRONZE_EVENTS.checkpoint)
        .option("checkpointLocation", lake.checkpoint(BRONZE_EVENTS))
        .trigger(availableNow=True)
    )
    lake.start_stream(spark, writer, BRONZE_EVENTS).awaitTermination()
    record(spark, lake, new, run_id, accepted=INGESTED)
    return Ingest(new, _rows_of_run(spark, lake, run_id))


def ingest_landing(
    spark: SparkSession, lake: DeltaLake, landing: LandingZone, run_id: str
) -> Ingest:
    # Created before the first write, with its creation properties, so that downstream finds a
    # table even when nothing has landed yet; an older bronze gets newer contract columns.
    lake.ensure(spark, BRONZE_EVENTS, with_ingest_metadata(_empty_landing(spark), run_id).schema)
    ingest = ingest_stream if landing.reader == "autoloader" else ingest_versions
    return ingest(spark, lake, landing, run_id)


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


def _rows_of_run(spark: SparkSession, lake: DeltaLake, run_id: str) -> int:
    return lake.read(spark, BRONZE_EVENTS).filter(F.col("ingest_run_id") == run_id).count()


BRONZE_CHECKS = checks_on(BRONZE_EVENTS)


@multi_asset(
    specs=[
        AssetSpec(
            BRONZE_EVENTS.key,
            deps=[LANDING_EVENTS.key],
            description=(
                "Append-only Delta table of every row of every landing file version exactly once, "
                "uncleaned, plus event_id, bronze_ingestion_ts, source_file, ingest_run_id and "
                "rescued_data (columns outside the contract, as JSON). Incremental: the ledger "
                "bronze/landing_files lists the versions (name + size + mtime) already seen; a "
                "file rewritten under its name is a new version."
            ),
            group_name="bronze",
            kinds=SPARK_KINDS,
            owners=OWNERS,
        )
    ],
    name="bronze__patient_events",
    check_specs=[check.spec for check in BRONZE_CHECKS],
    can_subset=True,
    required_resource_keys=CHECK_RESOURCES | {"landing"},
    pool=LAKE_POOL,
)
def bronze_patient_events(context: AssetExecutionContext, config: RefreshConfig):
    yield from write_then_check(
        context, lambda: [ingest_into_bronze(context, config)], BRONZE_CHECKS
    )


def ingest_into_bronze(context: AssetExecutionContext, config: RefreshConfig) -> MaterializeResult:
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    landing: LandingZone = context.resources.landing
    run_id = context.run_id
    if config.full_refresh:
        restored = restore_archive(spark, lake, landing)
        context.log.info(f"full refresh: {restored} archived landing files moved back to be read")
    apply_full_refresh(context, config, [BRONZE_EVENTS, LANDING_FILES])

    ingest = ingest_landing(spark, lake, landing, run_id)
    archived = archive_landing(spark, lake, landing, datetime.now(timezone.utc))
    for version in ingest.rejected:
        context.log.warning(f"Rejected landing file {version.file.name}: {version.inspection.note}")
    for version in ingest.drifted:
        context.log.warning(f"Landing file {version.file.name}: {version.inspection.note}")
    context.log.info(
        f"Ingested {ingest.rows} rows from {len(ingest.new) - len(ingest.rejected)} new file "
        f"versions; {len(ingest.rejected)} rejected"
    )
    noted = [
        {"file_name": v.file.name, "status": v.status, "reason": v.inspection.note}
        for v in ingest.rejected + ingest.drifted
    ]
    return MaterializeResult(
        asset_key=BRONZE_EVENTS.key,
        metadata={
            **table_metadata(
                lake.read(spark, BRONZE_EVENTS),
                lake,
                BRONZE_EVENTS,
                ["event_id", "department", "hospital_id", "source_file", "ingest_run_id"],
            ),
            "rows_ingested_this_run": MetadataValue.int(ingest.rows),
            "new_files": MetadataValue.int(len(ingest.new)),
            "rejected_files": MetadataValue.int(len(ingest.rejected)),
            "drifted_files": MetadataValue.int(len(ingest.drifted)),
            "rejected_file_reasons": MetadataValue.md(
                markdown_table(noted, ["file_name", "status", "reason"]) if noted else "none"
            ),
            "files_archived": MetadataValue.int(archived),
            "landing_zone": MetadataValue.text(landing.describe()),
        },
    )


def _empty_landing(spark: SparkSession):
    return spark.createDataFrame([], LANDING_SCHEMA).withColumn(
        "_metadata", F.struct(F.lit("").alias("file_path"))
    )

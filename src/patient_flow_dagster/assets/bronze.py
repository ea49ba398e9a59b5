"""Bronze: every landed row exactly once, as landed, with ingest metadata."""

from dataclasses import dataclass
from datetime import datetime, timezone
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

from patient_flow_dagster.assets.bronze_checks import BRONZE_CHECKS
from patient_flow_dagster.assets.checking import CHECK_RESOURCES, write_then_check
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
from patient_flow_dagster.resources.landing import LandingZone
from patient_flow_dagster.resources.landing_ledger import (
    INGESTED,
    PENDING,
    REJECTED,
    Version,
    archive_landing,
    assign_batches,
    last_batch,
    mark_ingested,
    new_versions,
    pending_versions,
    read_ledger,
    record,
    restore_archive,
)
from patient_flow_dagster.transforms.bronze import with_ingest_metadata

# Delta's idempotent-write id of bronze's batches: a batch replayed after a crash (same number)
# is skipped by Delta when its commit already landed.
BRONZE_TXN_APP = "patient_flow.bronze_ingest"


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
    mark_ingested(spark, lake, sorted(batches), run_id)
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


def _rows_of_run(spark: SparkSession, lake: DeltaLake, run_id: str) -> int:
    return lake.read(spark, BRONZE_EVENTS).filter(F.col("ingest_run_id") == run_id).count()


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
    name="bronze_patient_events",
    check_specs=[check.spec for check in BRONZE_CHECKS],
    can_subset=True,
    # `reference` is read when the run starts: a malformed reference file stops the run before
    # bronze writes anything.
    required_resource_keys=CHECK_RESOURCES | {"landing", "reference"},
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

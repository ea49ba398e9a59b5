"""Bronze: every landed row exactly once, as landed, with ingest metadata."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from patient_flow_dagster.assets.common import (
    LAKE_POOL,
    OWNERS,
    SPARK_KINDS,
    SPARK_RESOURCES,
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
from patient_flow_dagster.resources.lake import DeltaLake, rows_read
from patient_flow_dagster.resources.landing import LandingZone
from patient_flow_dagster.transforms.bronze import with_ingest_metadata

# One row per landing file the bronze asset has looked at: the "every file ingested" ledger.
LANDING_FILES_SCHEMA = StructType(
    [
        StructField("file_name", StringType(), False),
        StructField("file_size", LongType(), False),
        StructField("footer_rows", LongType(), True),
        StructField("status", StringType(), False),  # ingested | rejected
        StructField("reason", StringType(), True),
        StructField("audit_run_id", StringType(), False),
        StructField("audited_at", TimestampType(), False),
    ]
)


def audit_new_files(
    spark: SparkSession, lake: DeltaLake, landing: LandingZone, run_id: str
) -> list[dict]:
    """Inspect the footers of landing files not yet audited; record each as ingested or rejected.

    Spark's file source skips a damaged file (ignoreCorruptFiles) rather than failing every other
    file's ingestion; this ledger is what makes such a skip visible, with its reason.
    """
    lake.ensure(spark, LANDING_FILES, LANDING_FILES_SCHEMA)
    seen = {
        row.file_name
        for row in lake.read(spark, LANDING_FILES).select("file_name").distinct().collect()
    }
    records = []
    for landed in landing.list_files():
        if landed.name in seen:
            continue
        inspection = landing.inspect(landed.name)
        records.append(
            {
                "file_name": landed.name,
                "file_size": landed.size,
                "footer_rows": inspection.rows,
                "status": "rejected" if inspection.problem else "ingested",
                "reason": inspection.problem,
                "audit_run_id": run_id,
            }
        )
    return records


def ingest_landing(
    spark: SparkSession, lake: DeltaLake, landing: LandingZone, run_id: str
) -> tuple[list[dict], int]:
    """Audit the new landing files, stream every not-yet-ingested file into bronze (exactly
    once, via the checkpoint), record the audit. Returns the audit rows of the new files and
    the number of rows ingested."""
    new_files = audit_new_files(spark, lake, landing, run_id)
    # Created before the stream writes to it, so that it has its creation properties, and so
    # that downstream finds a table even when nothing has landed yet; a bronze written before
    # a contract field was added gets the new column.
    lake.ensure(spark, BRONZE_EVENTS, with_ingest_metadata(_empty_landing(spark), run_id).schema)
    landed = with_ingest_metadata(landing.read_stream(spark, LANDING_SCHEMA), run_id)
    writer = (
        landed.writeStream.format("delta")
        .queryName(BRONZE_EVENTS.checkpoint)
        .option("checkpointLocation", lake.checkpoint(BRONZE_EVENTS))
        .trigger(availableNow=True)
    )
    query = lake.start_stream(spark, writer, BRONZE_EVENTS)
    query.awaitTermination()
    if new_files:
        found = StructType([f for f in LANDING_FILES_SCHEMA.fields if f.name != "audited_at"])
        audit = spark.createDataFrame(new_files, found).withColumn(
            "audited_at", F.current_timestamp()
        )
        lake.append(audit, LANDING_FILES)
    rows = rows_read(spark, query)
    if rows is None:  # too many micro-batches for the progress reports: count them
        rows = lake.read(spark, BRONZE_EVENTS).filter(F.col("ingest_run_id") == run_id).count()
    return new_files, rows


@asset(
    key=BRONZE_EVENTS.key,
    deps=[LANDING_EVENTS.key],
    description=(
        "Append-only Delta table of every landed row exactly once, uncleaned, plus event_id, "
        "bronze_ingestion_ts, source_file and ingest_run_id. Incremental like Auto Loader: a "
        "streaming file source with a checkpoint and trigger(availableNow=True)."
    ),
    group_name="bronze",
    kinds=SPARK_KINDS,
    owners=OWNERS,
    required_resource_keys=SPARK_RESOURCES | {"landing"},
    pool=LAKE_POOL,
)
def bronze_patient_events(
    context: AssetExecutionContext, config: RefreshConfig
) -> MaterializeResult:
    apply_full_refresh(context, config, [BRONZE_EVENTS, LANDING_FILES])
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    landing: LandingZone = context.resources.landing
    run_id = context.run_id

    new_files, rows_this_run = ingest_landing(spark, lake, landing, run_id)
    bronze = lake.read(spark, BRONZE_EVENTS)
    rejected = [r for r in new_files if r["status"] == "rejected"]
    for record in rejected:
        context.log.warning(f"Rejected landing file {record['file_name']}: {record['reason']}")
    context.log.info(
        f"Ingested {rows_this_run} rows from {len(new_files) - len(rejected)} new files; "
        f"{len(rejected)} rejected"
    )
    return MaterializeResult(
        metadata={
            **table_metadata(
                bronze,
                lake, BRONZE_EVENTS,
                ["event_id", "department", "hospital_id", "source_file", "ingest_run_id"],
            ),
            "rows_ingested_this_run": MetadataValue.int(rows_this_run),
            "new_files": MetadataValue.int(len(new_files)),
            "rejected_files": MetadataValue.int(len(rejected)),
            "rejected_file_reasons": MetadataValue.md(
                markdown_table(rejected, ["file_name", "reason"]) if rejected else "none"
            ),
            "landing_zone": MetadataValue.text(landing.describe()),
        }
    )


def _empty_landing(spark: SparkSession):
    return spark.createDataFrame([], LANDING_SCHEMA).withColumn(
        "_metadata", F.struct(F.lit("").alias("file_path"))
    )


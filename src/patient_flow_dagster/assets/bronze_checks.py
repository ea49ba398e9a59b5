"""The checks of bronze: every landing file version ingested whole, or rejected with a reason."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue
from pyspark.sql import functions as F

from patient_flow_dagster.assets.checking import Check, CheckRun
from patient_flow_dagster.assets.common import markdown_table
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources.landing import unseen
from patient_flow_dagster.resources.landing_ledger import PENDING


def every_landing_file_ingested(run: CheckRun) -> AssetCheckResult:
    """Per file name, bronze holds exactly the rows the footers of its ingested versions
    announce; every listed version is in the ledger. A run checks the versions it audited and
    the files still listed in landing; an audit, every version the ledger holds."""
    spark, lake = run.spark, run.lake
    scope = run.scope
    listed = run.context.resources.landing.list_files()
    ledger = lake.read(spark, t.LANDING_FILES)
    runs = scope.runs
    if runs is not None:
        ledger = ledger.filter(
            F.col("audit_run_id").isin(*runs)
            | F.col("file_name").isin(*{f.name for f in listed})
            | (F.col("status") == PENDING)
        )
    versions = ledger.withColumn("modified_us", F.unix_micros("file_modified")).collect()
    if runs is not None:  # the footers announced by this run's versions
        versions_of_run = [r for r in versions if r.audit_run_id in runs]
    # Rows per source path first (no string work per row), then per file name over the few
    # paths: the same name may have landed under two paths.
    per_file = {
        row.file_name: row.bronze_rows
        for row in scope.stamped(lake.read(spark, t.BRONZE_EVENTS), "ingest_run_id")
        .groupBy("source_file")
        .agg(F.count(F.lit(1)).alias("bronze_rows"))
        .groupBy(F.element_at(F.split("source_file", "/"), -1).alias("file_name"))
        .agg(F.sum("bronze_rows").alias("bronze_rows"))
        .collect()
    }
    announced: dict[str, int] = {}
    for row in versions if scope.audit else versions_of_run:
        if row.status == "ingested":
            announced[row.file_name] = announced.get(row.file_name, 0) + (row.footer_rows or 0)
    short = [
        {"file_name": name, "footer_rows": rows, "bronze_rows": per_file.get(name, 0)}
        for name, rows in sorted(announced.items())
        if per_file.get(name, 0) != rows
    ]
    waiting = [f.name for f in unseen(listed, versions)]
    waiting += [r.file_name for r in versions if r.status == PENDING]
    rejected = [r for r in versions if r.status == "rejected"]
    latest = max(versions, key=lambda r: r.audited_at, default=None)
    rejected_now = [r for r in rejected if latest and r.audit_run_id == latest.audit_run_id]
    if short:
        passed, severity = False, AssetCheckSeverity.ERROR
    else:
        passed, severity = not rejected_now, AssetCheckSeverity.WARN
    return AssetCheckResult(
        passed=passed,
        severity=severity,
        metadata={
            "file_versions_audited": MetadataValue.int(len(versions)),
            "files_ingested": MetadataValue.int(len(announced)),
            "files_rejected": MetadataValue.int(len(rejected)),
            "files_with_missing_rows": MetadataValue.int(len(short)),
            "files_not_yet_ingested": MetadataValue.int(len(waiting)),
            "rejected": MetadataValue.md(
                markdown_table([r.asDict() for r in rejected[:20]], ["file_name", "reason"])
                if rejected
                else "none"
            ),
            "missing_rows": MetadataValue.md(
                markdown_table(short[:20], ["file_name", "footer_rows", "bronze_rows"])
                if short
                else "none"
            ),
        },
    )


BRONZE_CHECKS = [
    Check(
        "every_landing_file_ingested",
        t.BRONZE_EVENTS.key,
        "Every version of every landing file is ingested with all the rows its footer "
        "announces, or recorded as rejected with a reason (WARN when the latest ingestion "
        "rejected files).",
        every_landing_file_ingested,
    ),
]

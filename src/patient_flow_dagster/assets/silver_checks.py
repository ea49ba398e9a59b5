"""The checks of silver: one per quality rule (generated from RULES), and the reconciliation
that proves nothing was lost between bronze, silver and quarantine."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from patient_flow_dagster.assets.checking import Check, CheckRun, measure_metadata, only
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.model.rules import RULES, QualityRule
from patient_flow_dagster.quality import measures


def rule_check_result(
    rule: QualityRule, measure: measures.Measure, error_ratio: float, batch: str | None = None
) -> AssetCheckResult:
    """Passed when no row breaks the rule. A warn rule fails with WARN; a quarantine rule fails
    with WARN up to `error_ratio` of the batch and with ERROR (blocking) above it."""
    if rule.quarantines and measure.ratio > error_ratio:
        severity = AssetCheckSeverity.ERROR
    else:
        severity = AssetCheckSeverity.WARN
    return AssetCheckResult(
        passed=measure.failed == 0,
        severity=severity,
        metadata={
            **measure_metadata(measure, "event_ids"),
            "error_ratio": MetadataValue.float(error_ratio),
            "action": MetadataValue.text(rule.action),
            "condition": MetadataValue.text(rule.condition),
            "silver_run_id": MetadataValue.text(batch or "all"),
        },
    )


def _latest_rule_measures(run: CheckRun) -> tuple[str | None, dict[str, measures.Measure]]:
    """All rules of the run's silver batch (in an audit: the latest batch) in one Spark pass."""
    spark, lake = run.spark, run.lake
    silver, quarantine = lake.read(spark, t.SILVER_EVENTS), lake.read(spark, t.QUARANTINE)
    runs = run.scope.runs
    batch = [*runs] if runs else measures.latest_silver_batch(silver, quarantine)
    measured = measures.rule_measures(silver, quarantine, batch, run.policy.sample_size)
    return (", ".join(batch) if isinstance(batch, list) else batch), measured


def _rule_check(rule: QualityRule) -> Check:
    def evaluate(run: CheckRun) -> AssetCheckResult:
        batch, measured = run.once("rule measures", lambda: _latest_rule_measures(run))
        return rule_check_result(rule, measured[rule.name], run.policy.error_ratio, batch)

    return Check(
        rule.name,
        t.SILVER_EVENTS.key,
        f"{rule.description} ({rule.action}; valid when: {rule.condition})",
        evaluate,
        blocking=True,
    )


def silver_reconciles_with_bronze(run: CheckRun) -> AssetCheckResult:
    """Over the event ids the run's batch holds in any of the three tables (in an audit, over
    all of them)."""
    spark, lake = run.spark, run.lake
    scope = run.scope
    bronze, silver, quarantine = (
        lake.read(spark, table) for table in (t.BRONZE_EVENTS, t.SILVER_EVENTS, t.QUARANTINE)
    )
    ids = (
        None
        if scope.audit
        else scope.keys(
            scope.stamped(bronze, "ingest_run_id")
            .select("event_id")
            .unionByName(scope.stamped(silver, "silver_run_id").select("event_id"))
            .unionByName(scope.stamped(quarantine, "silver_run_id").select("event_id")),
            "event_id",
        )
    )
    counts = measures.reconciliation(
        *(only(rows, "event_id", ids) for rows in (bronze, silver, quarantine))
    )
    problems = (
        counts["missing_from_silver_and_quarantine"]
        + counts["in_more_than_one_place"]
        + counts["unknown_to_bronze"]
    )
    balanced = counts["bronze_rows"] == (
        counts["silver_rows"] + counts["quarantine_rows"] + counts["duplicates"]
    )
    return AssetCheckResult(
        passed=problems == 0 and balanced,
        severity=AssetCheckSeverity.ERROR,
        metadata={name: MetadataValue.int(value) for name, value in counts.items()},
    )


SILVER_CHECKS = [
    *(_rule_check(rule) for rule in RULES),
    Check(
        "silver_reconciles_with_bronze",
        t.SILVER_EVENTS.key,
        "Nothing lost: every distinct bronze event_id is in exactly one of silver and "
        "quarantine, and neither holds an event bronze does not know (bronze rows = silver + "
        "quarantine + duplicates).",
        silver_reconciles_with_bronze,
        blocking=True,
    ),
]

"""Dagster asset checks: one per quality rule (generated from RULES), gold integrity checks, the
reconciliation checks that prove nothing was lost between layers, and KPI consistency checks.

Each check is declared once (`Check`: name, asset, description, blocking, evaluate). They run in
six steps, one per group of tables they guard (CHECK_STEPS), so a run pays one step per group
rather than one per check (on Databricks every step is a remote job run). The steps are separate from the assets, so they can run against the existing
tables without re-materializing (the `patient_flow_checks` job), and they are subsettable: a
selection runs only its checks. The checks that guard gold are blocking: when one fails with
ERROR severity its step fails after reporting every result, and Dagster does not run the
downstream assets.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)
from pyspark.sql import functions as F

from patient_flow_dagster.assets.common import (
    BRONZE_KEY,
    CURRENT_OCCUPANCY_KEY,
    DAILY_FLOW_KEY,
    DEPARTMENT_CENSUS_HOURLY_KEY,
    DIM_DEPARTMENT_KEY,
    DIM_PATIENT_KEY,
    FACT_ADMISSIONS_KEY,
    LENGTH_OF_STAY_STATS_KEY,
    SILVER_KEY,
    SPARK_RESOURCES,
    markdown_table,
)
from patient_flow_dagster.quality import measures
from patient_flow_dagster.quality.rules import RULES, QualityRule
from patient_flow_dagster.resources import lake as t

CHECK_RESOURCES = SPARK_RESOURCES | {"quality"}


@dataclass(frozen=True)
class Check:
    """One asset check: what it guards, whether it blocks downstream, how it is evaluated."""

    name: str
    asset: AssetKey
    description: str
    evaluate: Callable[..., AssetCheckResult]  # (context) -> result of this check
    blocking: bool = False

    @property
    def spec(self) -> AssetCheckSpec:
        return AssetCheckSpec(self.name, asset=self.asset, description=self.description,
                              blocking=self.blocking)


def check_step(name: str, description: str, checks: list[Check],
               resources: set[str] = CHECK_RESOURCES) -> AssetChecksDefinition:
    """One subsettable step evaluating the selected `checks` in order."""

    @multi_asset_check(name=name, description=description, specs=[c.spec for c in checks],
                       can_subset=True, required_resource_keys=resources)
    def _step(context: AssetCheckExecutionContext):
        selected = {key.name for key in context.selected_asset_check_keys}
        for check in checks:
            if check.name in selected:
                yield check.evaluate(context)._replace(asset_key=check.asset,
                                                       check_name=check.name)

    return _step


def _spark_lake(context):
    return context.resources.pyspark.spark_session, context.resources.lake


# -- ingestion: the rules of silver, and nothing lost between landing, bronze and silver --------


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
            "evaluated": MetadataValue.int(measure.evaluated),
            "failed": MetadataValue.int(measure.failed),
            "failed_ratio": MetadataValue.float(round(measure.ratio, 6)),
            "error_ratio": MetadataValue.float(error_ratio),
            "action": MetadataValue.text(rule.action),
            "condition": MetadataValue.text(rule.condition),
            "sample_failing_event_ids": MetadataValue.json(measure.samples),
            "silver_run_id": MetadataValue.text(batch or "all"),
        },
    )


_rule_measure_cache: dict = {}


def _latest_rule_measures(context) -> tuple[str | None, dict[str, measures.Measure]]:
    """All rules measured in one Spark pass, shared by the rule checks of the same step (they
    run one after the other in one run, when nothing writes silver)."""
    spark, lake = _spark_lake(context)
    policy = context.resources.quality
    key = (context.run.run_id, lake.location(t.SILVER_EVENTS), policy.sample_size)
    if key not in _rule_measure_cache:
        silver, quarantine = lake.read(spark, t.SILVER_EVENTS), lake.read(spark, t.QUARANTINE)
        batch = measures.latest_silver_batch(silver, quarantine)
        _rule_measure_cache.clear()
        _rule_measure_cache[key] = (
            batch,
            measures.rule_measures(silver, quarantine, batch, policy.sample_size),
        )
    return _rule_measure_cache[key]


def _rule_check(rule: QualityRule) -> Check:
    def evaluate(context) -> AssetCheckResult:
        batch, measured = _latest_rule_measures(context)
        return rule_check_result(
            rule, measured[rule.name], context.resources.quality.error_ratio, batch
        )

    return Check(rule.name, SILVER_KEY,
                 f"{rule.description} ({rule.action}; valid when: {rule.condition})",
                 evaluate, blocking=True)


def silver_reconciles_with_bronze(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    counts = measures.reconciliation(
        lake.read(spark, t.BRONZE_EVENTS), lake.read(spark, t.SILVER_EVENTS),
        lake.read(spark, t.QUARANTINE),
    )
    problems = (counts["missing_from_silver_and_quarantine"] + counts["in_more_than_one_place"]
                + counts["unknown_to_bronze"])
    balanced = counts["bronze_rows"] == (
        counts["silver_rows"] + counts["quarantine_rows"] + counts["duplicates"]
    )
    return AssetCheckResult(
        passed=problems == 0 and balanced,
        severity=AssetCheckSeverity.ERROR,
        metadata={name: MetadataValue.int(value) for name, value in counts.items()},
    )


def every_landing_file_ingested(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    audit = lake.read(spark, t.LANDING_FILES)
    per_file = (
        lake.read(spark, t.BRONZE_EVENTS)
        .groupBy(F.element_at(F.split("source_file", "/"), -1).alias("file_name"))
        .agg(F.count(F.lit(1)).alias("bronze_rows"))
    )
    files = audit.join(per_file, "file_name", "left").fillna(0, ["bronze_rows"]).collect()
    audited = {row.file_name for row in files}
    pending = [f.name for f in context.resources.landing.list_files() if f.name not in audited]
    short = [row for row in files if row.status == "ingested" and row.bronze_rows != row.footer_rows]
    rejected = [row for row in files if row.status == "rejected"]
    latest_audit = max((row.audited_at for row in files), default=None)
    rejected_now = [row for row in rejected if row.audited_at == latest_audit]
    if short:
        passed, severity = False, AssetCheckSeverity.ERROR
    else:
        passed, severity = not rejected_now, AssetCheckSeverity.WARN
    return AssetCheckResult(
        passed=passed,
        severity=severity,
        metadata={
            "files_audited": MetadataValue.int(len(files)),
            "files_ingested": MetadataValue.int(len(files) - len(rejected)),
            "files_rejected": MetadataValue.int(len(rejected)),
            "files_with_missing_rows": MetadataValue.int(len(short)),
            "files_not_yet_ingested": MetadataValue.int(len(pending)),
            "rejected": MetadataValue.md(markdown_table(
                [r.asDict() for r in rejected[:20]], ["file_name", "reason"]) if rejected else "none"),
            "missing_rows": MetadataValue.md(markdown_table(
                [r.asDict() for r in short[:20]], ["file_name", "footer_rows", "bronze_rows"])
                if short else "none"),
        },
    )


INGESTION_CHECKS = [
    *(_rule_check(rule) for rule in RULES),
    Check("silver_reconciles_with_bronze", SILVER_KEY,
          "Nothing lost: every distinct bronze event_id is in exactly one of silver and "
          "quarantine, and neither holds an event bronze does not know (bronze rows = silver + "
          "quarantine + duplicates).", silver_reconciles_with_bronze, blocking=True),
    Check("every_landing_file_ingested", BRONZE_KEY,
          "Every landing file is ingested with all the rows its footer announces, or recorded "
          "as rejected with a reason (WARN when the latest ingestion rejected files).",
          every_landing_file_ingested),
]


# -- gold integrity -------------------------------------------------------------------------------


def _integrity_result(measure: measures.Measure, what: str) -> AssetCheckResult:
    return AssetCheckResult(
        passed=measure.failed == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "evaluated": MetadataValue.int(measure.evaluated),
            "failed": MetadataValue.int(measure.failed),
            "failed_ratio": MetadataValue.float(round(measure.ratio, 6)),
            f"sample_failing_{what}": MetadataValue.json(measure.samples),
        },
    )


def _foreign_key(name: str, key: str, dimension: t.Table) -> Check:
    """Blocking check that every fact row's `key` exists in `dimension`."""

    def evaluate(context) -> AssetCheckResult:
        spark, lake = _spark_lake(context)
        return _integrity_result(measures.orphaned_keys(
            lake.read(spark, t.FACT_ADMISSIONS), key, lake.read(spark, dimension),
            context.resources.quality.sample_size), "event_ids")

    return Check(name, FACT_ADMISSIONS_KEY,
                 f"Every admission points to an existing {dimension.name} row.", evaluate,
                 blocking=True)


def non_negative_stay(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    return _integrity_result(measures.negative_stays(
        lake.read(spark, t.FACT_ADMISSIONS), context.resources.quality.sample_size), "event_ids")


def one_current_row_per_patient(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    return _integrity_result(measures.patients_without_one_current_row(
        lake.read(spark, t.DIM_PATIENT), context.resources.quality.sample_size), "patient_sks")


def non_overlapping_validity(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    return _integrity_result(measures.overlapping_versions(
        lake.read(spark, t.DIM_PATIENT), context.resources.quality.sample_size), "patient_sks")


def unique_department_key(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    dim = lake.read(spark, t.DIM_DEPARTMENT)
    size = context.resources.quality.sample_size
    pair = measures.duplicate_keys(dim, ["department", "hospital_id"], size)
    key = measures.duplicate_keys(dim, ["department_sk"], size)
    return _integrity_result(
        measures.Measure(pair.evaluated, pair.failed + key.failed, pair.samples + key.samples),
        "keys",
    )


GOLD_CHECKS = [
    _foreign_key("valid_patient_fk", "patient_sk", t.DIM_PATIENT),
    _foreign_key("valid_department_fk", "department_sk", t.DIM_DEPARTMENT),
    Check("non_negative_stay", FACT_ADMISSIONS_KEY, "No admission has a negative length of stay.",
          non_negative_stay, blocking=True),
    Check("one_current_row_per_patient", DIM_PATIENT_KEY,
          "Exactly one current version per patient_id.", one_current_row_per_patient,
          blocking=True),
    Check("non_overlapping_validity", DIM_PATIENT_KEY,
          "A patient's versions neither overlap nor leave gaps: each ends where the next starts.",
          non_overlapping_validity, blocking=True),
    Check("unique_department_key", DIM_DEPARTMENT_KEY,
          "(department, hospital_id) is unique, and so is department_sk.", unique_department_key,
          blocking=True),
]


# -- patient-flow KPIs ----------------------------------------------------------------------------


def _count_result(checks: dict[str, tuple[int, int]]) -> AssetCheckResult:
    """Passed when every (actual, expected) pair matches; each pair goes into the metadata."""
    metadata = {}
    for name, (actual, expected) in checks.items():
        metadata[f"{name}_actual"] = MetadataValue.int(int(actual))
        metadata[f"{name}_expected"] = MetadataValue.int(int(expected))
    return AssetCheckResult(
        passed=all(actual == expected for actual, expected in checks.values()),
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


def _stays(spark, lake):
    from patient_flow_dagster.transforms import flow

    return flow.stays(lake.read(spark, t.FACT_ADMISSIONS), lake.read(spark, t.DIM_DEPARTMENT))


def census_not_negative(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    census = lake.read(spark, t.DEPARTMENT_CENSUS_HOURLY)
    bad = census.filter("present_at_end < 0 OR occupancy < 0").withColumn(
        "_key", F.concat_ws("/", "hospital_id", "department", F.col("hour_start").cast("string")))
    return _integrity_result(
        measures._measure(census.count(), bad, "_key", context.resources.quality.sample_size),
        "hours")


def census_flow_conservation(context) -> AssetCheckResult:
    from patient_flow_dagster.transforms import flow

    spark, lake = _spark_lake(context)
    census = lake.read(spark, t.DEPARTMENT_CENSUS_HOURLY)
    breaks = flow.conservation_breaks(census).count()
    # Timestamps cross to Python as UTC text: collected datetimes would be in the driver's zone.
    text = F.date_format("hour_end", "yyyy-MM-dd HH:mm:ss")
    hours = [r[0] for r in census.select(text.alias("h")).distinct().orderBy(
        F.col("h").desc()).limit(2).collect()]
    checked = {"conservation_breaks": (breaks, 0)}
    if len(hours) == 2:
        last_complete = hours[1]  # the latest hour may end after the census clock
        row = census.filter(text == last_complete).agg(F.sum("present_at_end")).first()[0] or 0
        instant = datetime.fromisoformat(last_complete).replace(tzinfo=timezone.utc)
        direct = flow.present_at(_stays(spark, lake), instant).agg(
            F.sum("present")).first()[0] or 0
        checked["present_at_last_complete_hour"] = (row, direct)
    return _count_result(checked)


def daily_flow_matches_fact(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    totals = lake.read(spark, t.DAILY_FLOW).agg(
        F.sum("admissions"), F.sum("discharges")).first()
    fact = lake.read(spark, t.FACT_ADMISSIONS)
    return _count_result({
        "admissions": (totals[0] or 0, fact.count()),
        "discharges": (totals[1] or 0, fact.filter("discharge_time_ts IS NOT NULL").count()),
    })


def length_of_stay_stats_consistent(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    stats = lake.read(spark, t.LENGTH_OF_STAY_STATS)
    completed = stats.agg(F.sum("completed_stays")).first()[0] or 0
    expected = lake.read(spark, t.FACT_ADMISSIONS).filter("length_of_stay_hours IS NOT NULL").count()
    unordered = stats.filter("NOT (median_hours <= p90_hours AND p90_hours <= max_hours)").count()
    return _count_result({"completed_stays": (completed, expected), "unordered_rows": (unordered, 0)})


def current_occupancy_consistent(context) -> AssetCheckResult:
    spark, lake = _spark_lake(context)
    snapshot = lake.read(spark, t.CURRENT_OCCUPANCY)
    negative = snapshot.filter("present < 0 OR occupancy < 0").count()
    sums = snapshot.groupBy("hospital_id").pivot("scope", ["department", "hospital"]).sum("present")
    mismatched = sums.filter("NOT (department <=> hospital)").count()
    return _count_result({"negative_rows": (negative, 0), "hospital_total_mismatches": (mismatched, 0)})


KPI_CHECKS = [
    Check("census_not_negative", DEPARTMENT_CENSUS_HOURLY_KEY,
          "Occupancy and patients present are never negative.", census_not_negative),
    Check("census_flow_conservation", DEPARTMENT_CENSUS_HOURLY_KEY,
          "Flow conservation: present at the end of hour h = present at the end of h-1 + "
          "admissions in h - discharges in h, and the census agrees with a direct count of open "
          "stays from the fact at the end of the last complete hour.", census_flow_conservation),
    Check("daily_flow_matches_fact", DAILY_FLOW_KEY,
          "Admissions and discharges add up to the fact table's totals.", daily_flow_matches_fact),
    Check("length_of_stay_stats_consistent", LENGTH_OF_STAY_STATS_KEY,
          "Completed stays add up to the fact's, and median <= p90 <= max.",
          length_of_stay_stats_consistent),
    Check("current_occupancy_consistent", CURRENT_OCCUPANCY_KEY,
          "Current occupancy is never negative and each hospital total is the sum of its "
          "departments.", current_occupancy_consistent),
]


# One step per group. A group's checks guard assets that do not depend on each other: a step
# spanning an asset and its downstream would make Dagster split it (its blocking checks must run
# before the downstream asset), and a split step re-run remotely would evaluate every check.
CHECK_STEPS = {
    "landing_files_quality": ("Every landing file ingested, or rejected with a reason.",
                              [c for c in INGESTION_CHECKS if c.asset == BRONZE_KEY]),
    "silver_quality": ("The quality rules of silver and the 'nothing lost' reconciliation with "
                       "bronze.", [c for c in INGESTION_CHECKS if c.asset == SILVER_KEY]),
    "dimension_integrity": ("Keys and SCD validity of the gold dimensions.",
                            [c for c in GOLD_CHECKS if c.asset != FACT_ADMISSIONS_KEY]),
    "fact_integrity": ("Foreign keys and stays of fact_admissions.",
                       [c for c in GOLD_CHECKS if c.asset == FACT_ADMISSIONS_KEY]),
    "kpi_consistency": ("The patient-flow KPIs agree with the fact and with themselves.",
                        [c for c in KPI_CHECKS if c.asset != CURRENT_OCCUPANCY_KEY]),
    "occupancy_consistency": ("Current occupancy agrees with itself.",
                              [c for c in KPI_CHECKS if c.asset == CURRENT_OCCUPANCY_KEY]),
}

ALL_CHECKS = [
    check_step(name, description, checks,
               CHECK_RESOURCES | ({"landing"} if name == "landing_files_quality" else set()))
    for name, (description, checks) in CHECK_STEPS.items()
]

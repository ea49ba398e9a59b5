"""Dagster asset checks: one per quality rule (generated from RULES), gold integrity checks, the
reconciliation checks that prove nothing was lost between layers, and KPI consistency checks.

Each check is declared once (`Check`: name, asset, description, blocking, evaluate). The asset
steps carry the checks of their tables (`check_specs`) and evaluate them after writing
(`run_checks`), so a run pays no step for its checks (on Databricks every step is a remote job
run). The steps are subsettable: selecting only checks evaluates them against the existing
tables without writing anything (the `patient_flow_checks` job). The checks that guard gold are
blocking: when one fails with ERROR severity its step fails after reporting every result, and
Dagster does not run the downstream assets.

A check reads what its step's run wrote (`Scope`): the rows of the run's batch, and the
encounters, patients, beds and hours they touch, so a batch's checks cost what the batch
touched, not the history. Checked without writing (the `patient_flow_checks` job, nightly) a
check reads its whole table: the audit. A few checks compare whole tables by nature (a KPI kept
as totals against the fact): they are `audit_only`, left out of the pipeline's runs.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
)
from pyspark.sql import functions as F

from patient_flow_dagster.assets.check_scope import (
    Scope,
    only,
    scoped,
    shared_per_run,
    spark_lake,
)
from patient_flow_dagster.assets.common import (
    SPARK_RESOURCES,
    markdown_table,
    side_by_side,
)
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.model.rules import RULES, QualityRule
from patient_flow_dagster.quality import measures
from patient_flow_dagster.resources.landing import unseen
from patient_flow_dagster.resources.landing_ledger import PENDING
from patient_flow_dagster.transforms import census, times

CHECK_RESOURCES = SPARK_RESOURCES | {"quality"}


@dataclass(frozen=True)
class Check:
    """One asset check: what it guards, whether it blocks downstream, how it is evaluated."""

    name: str
    asset: AssetKey
    description: str
    evaluate: Callable[..., AssetCheckResult]  # (context) -> result of this check
    blocking: bool = False
    audit_only: bool = False  # compares whole tables: the nightly audit, not every batch

    @property
    def key(self) -> AssetCheckKey:
        return AssetCheckKey(self.asset, self.name)

    @property
    def spec(self) -> AssetCheckSpec:
        return AssetCheckSpec(
            self.name, asset=self.asset, description=self.description, blocking=self.blocking
        )


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
            **measure_metadata(measure, "event_ids"),
            "error_ratio": MetadataValue.float(error_ratio),
            "action": MetadataValue.text(rule.action),
            "condition": MetadataValue.text(rule.condition),
            "silver_run_id": MetadataValue.text(batch or "all"),
        },
    )


def measure_metadata(measure: measures.Measure, what: str) -> dict:
    """Rows evaluated and failed, the ratio, and samples of the failing `what`."""
    return {
        "evaluated": MetadataValue.int(measure.evaluated),
        "failed": MetadataValue.int(measure.failed),
        "failed_ratio": MetadataValue.float(round(measure.ratio, 6)),
        f"sample_failing_{what}": MetadataValue.json(measure.samples),
    }


@shared_per_run
def _latest_rule_measures(context) -> tuple[str | None, dict[str, measures.Measure]]:
    """All rules of the run's silver batch (in an audit: the latest batch) in one Spark pass."""
    spark, lake = spark_lake(context)
    silver, quarantine = lake.read(spark, t.SILVER_EVENTS), lake.read(spark, t.QUARANTINE)
    runs = Scope.of(context).runs
    batch = [*runs] if runs else measures.latest_silver_batch(silver, quarantine)
    measured = measures.rule_measures(
        silver, quarantine, batch, context.resources.quality.sample_size
    )
    return (", ".join(batch) if isinstance(batch, list) else batch), measured


def _rule_check(rule: QualityRule) -> Check:
    def evaluate(context) -> AssetCheckResult:
        batch, measured = _latest_rule_measures(context)
        return rule_check_result(
            rule, measured[rule.name], context.resources.quality.error_ratio, batch
        )

    return Check(
        rule.name,
        t.SILVER_EVENTS.key,
        f"{rule.description} ({rule.action}; valid when: {rule.condition})",
        evaluate,
        blocking=True,
    )


def silver_reconciles_with_bronze(context) -> AssetCheckResult:
    """Over the event ids the run's batch holds in any of the three tables (in an audit, over
    all of them)."""
    spark, lake = spark_lake(context)
    scope = Scope.of(context)
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


def every_landing_file_ingested(context) -> AssetCheckResult:
    """Per file name, bronze holds exactly the rows the footers of its ingested versions
    announce; every listed version is in the ledger. A run checks the versions it audited and
    the files still listed in landing; an audit, every version the ledger holds."""
    spark, lake = spark_lake(context)
    scope = Scope.of(context)
    listed = context.resources.landing.list_files()
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


INGESTION_CHECKS = [
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
    Check(
        "every_landing_file_ingested",
        t.BRONZE_EVENTS.key,
        "Every version of every landing file is ingested with all the rows its footer "
        "announces, or recorded as rejected with a reason (WARN when the latest ingestion "
        "rejected files).",
        every_landing_file_ingested,
    ),
]


# -- gold integrity -------------------------------------------------------------------------------


def _integrity_result(
    measure: measures.Measure, what: str, severity: AssetCheckSeverity = AssetCheckSeverity.ERROR
) -> AssetCheckResult:
    return AssetCheckResult(
        passed=measure.failed == 0, severity=severity, metadata=measure_metadata(measure, what)
    )


@shared_per_run
def _measure_fact(context) -> dict[str, measures.Measure]:
    spark, lake = spark_lake(context)
    return measures.fact_integrity(
        scoped(context, t.FACT_ADMISSIONS, "encounter_id"),
        lake.read(spark, t.DIM_PATIENT),
        lake.read(spark, t.DIM_DEPARTMENT),
        context.resources.quality.sample_size,
    )


@shared_per_run
def _measure_patient_history(context) -> dict[str, measures.Measure]:
    return measures.patient_history(
        scoped(context, t.DIM_PATIENT, "patient_id"), context.resources.quality.sample_size
    )


def _one_pass_check(name: str, measure: Callable, what: str) -> Callable[..., AssetCheckResult]:
    """A check whose result is one of the measures `measure(context)` takes in one pass,
    shared with the other checks of its step."""

    def evaluate(context) -> AssetCheckResult:
        return _integrity_result(measure(context)[name], what)

    return evaluate


@shared_per_run
def _measure_movements(context) -> dict[str, measures.Measure]:
    return measures.movement_integrity(
        scoped(context, t.FACT_MOVEMENTS, "encounter_id"),
        scoped(context, t.FACT_ADMISSIONS, "encounter_id"),
        context.resources.quality.sample_size,
    )


def one_patient_per_bed(context) -> AssetCheckResult:
    """Over the beds the run's encounters were in (every bed in an audit)."""
    spark, lake = spark_lake(context)
    bed = F.concat_ws("/", "hospital_id", "bed_id").alias("_bed")
    movements = lake.read(spark, t.FACT_MOVEMENTS)
    if not Scope.of(context).audit:
        beds = scoped(context, t.FACT_MOVEMENTS, "encounter_id").select(bed)
        movements = only(movements.withColumn("_bed", bed), "_bed", Scope.keys(beds, "_bed")).drop(
            "_bed"
        )
    measure = measures.beds_shared(movements, context.resources.quality.sample_size)
    return _integrity_result(measure, "beds", AssetCheckSeverity.WARN)


def encounters_waiting_for_admission(context) -> AssetCheckResult:
    grace = context.resources.quality.admission_grace_seconds
    older_than = F.current_timestamp() - F.make_dt_interval(secs=F.lit(grace))
    measure = measures.waiting_for_admission(
        scoped(context, t.SILVER_EVENTS, "encounter_id"),
        older_than,
        context.resources.quality.sample_size,
    )
    return AssetCheckResult(
        passed=measure.failed == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "encounters_waiting": MetadataValue.int(measure.evaluated),
            "waiting_longer_than_grace": MetadataValue.int(measure.failed),
            "grace_seconds": MetadataValue.float(float(grace)),
            "sample_waiting_encounters": MetadataValue.json(measure.samples),
        },
    )


def unique_department_key(context) -> AssetCheckResult:
    spark, lake = spark_lake(context)
    # A dimension of departments x hospitals: a few hundred rows at most, checked in Python.
    rows = (
        lake.read(spark, t.DIM_DEPARTMENT)
        .select("department", "hospital_id", "department_sk")
        .collect()
    )
    size = context.resources.quality.sample_size
    pair = measures.duplicate_keys(rows, ["department", "hospital_id"], size)
    key = measures.duplicate_keys(rows, ["department_sk"], size)
    return _integrity_result(
        measures.Measure(pair.evaluated, pair.failed + key.failed, pair.samples + key.samples),
        "keys",
    )


GOLD_CHECKS = [
    Check(
        "valid_patient_fk",
        t.FACT_ADMISSIONS.key,
        "Every encounter points to an existing dim_patient row.",
        _one_pass_check("valid_patient_fk", _measure_fact, "encounters"),
        blocking=True,
    ),
    Check(
        "valid_department_fk",
        t.FACT_ADMISSIONS.key,
        "Every encounter's admitting and current departments exist in dim_department.",
        _one_pass_check("valid_department_fk", _measure_fact, "encounters"),
        blocking=True,
    ),
    Check(
        "non_negative_stay",
        t.FACT_ADMISSIONS.key,
        "No encounter has a negative length of stay.",
        _one_pass_check("non_negative_stay", _measure_fact, "encounters"),
        blocking=True,
    ),
    Check(
        "encounters_waiting_for_admission",
        t.FACT_ADMISSIONS.key,
        "Events wait for their encounter's admission (a discharge may arrive before it); WARN "
        "when an encounter has waited longer than PATIENT_FLOW_ADMISSION_GRACE.",
        encounters_waiting_for_admission,
    ),
    Check(
        "movements_belong_to_encounters",
        t.FACT_MOVEMENTS.key,
        "Every segment belongs to an encounter of the fact that is not cancelled.",
        _one_pass_check("movements_belong_to_encounters", _measure_movements, "encounters"),
        blocking=True,
    ),
    Check(
        "segments_tile_encounters",
        t.FACT_MOVEMENTS.key,
        "An encounter's segments tile its stay: the first starts at the admission, each next "
        "one where the previous ended (no overlap, no gap), only the last may be open, and "
        "it ends at the discharge.",
        _one_pass_check("segments_tile_encounters", _measure_movements, "encounters"),
        blocking=True,
    ),
    Check(
        "one_patient_per_bed",
        t.FACT_MOVEMENTS.key,
        "A bed holds at most one patient at a time (WARN: a late transfer or a source's "
        "bed bookkeeping can overlap briefly).",
        one_patient_per_bed,
    ),
    Check(
        "one_current_row_per_patient",
        t.DIM_PATIENT.key,
        "Exactly one current version per patient_id.",
        _one_pass_check("one_current_row_per_patient", _measure_patient_history, "patient_sks"),
        blocking=True,
    ),
    Check(
        "non_overlapping_validity",
        t.DIM_PATIENT.key,
        "A patient's versions neither overlap nor leave gaps: each ends where the next starts.",
        _one_pass_check("non_overlapping_validity", _measure_patient_history, "patient_sks"),
        blocking=True,
    ),
    Check(
        "unique_department_key",
        t.DIM_DEPARTMENT.key,
        "(department, hospital_id) is unique, and so is department_sk.",
        unique_department_key,
        blocking=True,
    ),
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


CENSUS_HOURS_COMPARED = 48


@shared_per_run
def _census_measures(context):
    """Negative figures and flow-conservation breaks of the census, in one pass: over the last
    CENSUS_HOURS_COMPARED hours in a run (those the board shows), every hour in an audit."""
    spark, lake = spark_lake(context)
    hourly = lake.read(spark, t.DEPARTMENT_CENSUS_HOURLY)
    rows = census.with_conservation_flag(hourly)
    if not Scope.of(context).audit:
        since = F.col("_latest") - F.make_dt_interval(hours=F.lit(CENSUS_HOURS_COMPARED))
        recent = hourly.crossJoin(hourly.agg(F.max("hour_start").alias("_latest")))
        # The hour before the window too: each hour is compared with the one before it.
        rows = (
            census.with_conservation_flag(
                recent.filter(F.col("hour_start") >= since - F.expr("INTERVAL 1 HOUR"))
            )
            .filter(F.col("hour_start") >= since)
            .drop("_latest")
        )
    rows = rows.withColumn(
        "_key", F.concat_ws("/", "hospital_id", "department", F.col("hour_start").cast("string"))
    )
    return measures.measure_in_one_pass(
        rows,
        {
            "negative": (F.col("present_at_end") < 0) | (F.col("occupancy") < 0),
            "conservation_breaks": F.col("breaks_conservation"),
        },
        "_key",
        context.resources.quality.sample_size,
    )


def census_not_negative(context) -> AssetCheckResult:
    return _integrity_result(_census_measures(context)["negative"], "hours")


def census_flow_conservation(context) -> AssetCheckResult:
    breaks = _census_measures(context)["conservation_breaks"].failed
    return _count_result({"conservation_breaks": (breaks, 0)})


def census_matches_movements(context) -> AssetCheckResult:
    spark, lake = spark_lake(context)
    hourly = lake.read(spark, t.DEPARTMENT_CENSUS_HOURLY)
    # The latest hour may end after the census clock: compare the complete hours before it.
    # Timestamps cross to Python as UTC text: collected datetimes would be in the driver's zone.
    # The census has every hour of every unit (census_flow_conservation): the hour ends
    # before the latest are consecutive, computed here rather than sorted out of the table.
    latest = times.utc_text_to_datetime(
        hourly.agg(F.date_format(F.max("hour_end"), "yyyy-MM-dd HH:mm:ss")).first()[0]
    )
    ends = (
        []
        if latest is None
        else [
            (latest - timedelta(hours=k)).strftime("%Y-%m-%d %H:%M:%S")
            for k in range(1, CENSUS_HOURS_COMPARED + 1)
        ]
    )
    placements = census.placements(
        lake.read(spark, t.FACT_MOVEMENTS), lake.read(spark, t.DIM_DEPARTMENT)
    )
    measure = measures.census_against_placements(
        hourly, placements, ends, context.resources.quality.sample_size
    )
    return _integrity_result(measure, "hours")


@shared_per_run
def _fact_totals(context) -> dict[str, int]:
    """Admissions, discharges and completed stays of the encounters the KPIs count (all but
    the cancelled), in one pass."""
    spark, lake = spark_lake(context)
    row = (
        census.counted(lake.read(spark, t.FACT_ADMISSIONS))
        .agg(
            F.count(F.lit(1)).alias("admissions"),
            F.count_if(F.col("discharge_time_ts").isNotNull()).alias("discharges"),
            F.count_if(F.col("length_of_stay_hours").isNotNull()).alias("completed_stays"),
        )
        .collect()[0]
    )
    return {name: int(row[name] or 0) for name in row.asDict()}


def length_of_stay_stats_consistent(context) -> AssetCheckResult:
    spark, lake = spark_lake(context)
    row = (
        lake.read(spark, t.LENGTH_OF_STAY_STATS)
        .agg(
            F.sum("completed_stays").alias("completed"),
            F.count_if(F.expr("NOT (median_hours <= p90_hours AND p90_hours <= max_hours)")).alias(
                "unordered"
            ),
        )
        .first()
    )
    completed_segments = (
        lake.read(spark, t.FACT_MOVEMENTS).filter(F.col("length_of_stay_hours").isNotNull()).count()
    )
    return _count_result(
        {
            "completed_stays": (row["completed"] or 0, completed_segments),
            "unordered_rows": (row["unordered"] or 0, 0),
        }
    )


def sums_match_fact(table: t.Table, columns: dict[str, str]) -> Callable[..., AssetCheckResult]:
    """A KPI table's column sums equal the fact's totals (`columns`: fact total -> column): its
    figures, kept by adding the fact's changes, have not drifted from the fact."""

    def evaluate(context) -> AssetCheckResult:
        spark, lake = spark_lake(context)
        row = (
            lake.read(spark, table)
            .agg(*(F.sum(column).alias(total) for total, column in columns.items()))
            .first()
        )
        fact = _fact_totals(context)
        return _count_result({total: (row[total] or 0, fact[total]) for total in columns})

    return evaluate


_CUBE_SUMS = {"admissions": "num_admissions", "completed_stays": "completed_stays"}
_CUBE_SUMS_DESCRIPTION = (
    "Admissions and completed stays add up to the fact's (the totals kept "
    "from the fact's changes have not drifted)."
)


def current_occupancy_consistent(context) -> AssetCheckResult:
    spark, lake = spark_lake(context)
    snapshot = lake.read(spark, t.CURRENT_OCCUPANCY)
    negative = snapshot.filter("present < 0 OR occupancy < 0").count()
    sums = snapshot.groupBy("hospital_id").pivot("scope", ["department", "hospital"]).sum("present")
    mismatched = sums.filter("NOT (department <=> hospital)").count()
    return _count_result(
        {"negative_rows": (negative, 0), "hospital_total_mismatches": (mismatched, 0)}
    )


KPI_CHECKS = [
    Check(
        "census_not_negative",
        t.DEPARTMENT_CENSUS_HOURLY.key,
        "Occupancy and patients present are never negative.",
        census_not_negative,
    ),
    Check(
        "census_flow_conservation",
        t.DEPARTMENT_CENSUS_HOURLY.key,
        "Flow conservation: present at the end of hour h = present at the end of h-1 + "
        "arrivals in h - departures in h, and no unit misses an hour.",
        census_flow_conservation,
    ),
    Check(
        "census_matches_movements",
        t.DEPARTMENT_CENSUS_HOURLY.key,
        f"At the end of each of the last {CENSUS_HOURS_COMPARED} complete hours, patients "
        "present per department = the movement segments open at that instant, counted "
        "directly.",
        census_matches_movements,
    ),
    Check(
        "gender_department_cube_matches_fact",
        t.CUBE_GENDER_DEPARTMENT.key,
        _CUBE_SUMS_DESCRIPTION,
        sums_match_fact(t.CUBE_GENDER_DEPARTMENT, _CUBE_SUMS),
        audit_only=True,
    ),
    Check(
        "department_hospital_cube_matches_fact",
        t.CUBE_DEPARTMENT_HOSPITAL.key,
        _CUBE_SUMS_DESCRIPTION,
        sums_match_fact(t.CUBE_DEPARTMENT_HOSPITAL, _CUBE_SUMS),
        audit_only=True,
    ),
    Check(
        "daily_flow_matches_fact",
        t.DAILY_FLOW.key,
        "Admissions and discharges add up to the fact table's totals.",
        sums_match_fact(t.DAILY_FLOW, {"admissions": "admissions", "discharges": "discharges"}),
        audit_only=True,
    ),
    Check(
        "length_of_stay_stats_consistent",
        t.LENGTH_OF_STAY_STATS.key,
        "Completed stays add up to the completed movement segments, and median <= p90 <= max.",
        length_of_stay_stats_consistent,
        audit_only=True,
    ),
    Check(
        "current_occupancy_consistent",
        t.CURRENT_OCCUPANCY.key,
        "Current occupancy is never negative and each hospital total is the sum of its "
        "departments.",
        current_occupancy_consistent,
    ),
]


ALL_CHECKS = [*INGESTION_CHECKS, *GOLD_CHECKS, *KPI_CHECKS]
AUDIT_ONLY = [check.key for check in ALL_CHECKS if check.audit_only]


def checks_on(*tables: t.Table) -> list[Check]:
    """The checks of `tables`, in declaration order: what their asset step evaluates."""
    keys = {table.key for table in tables}
    return [check for check in ALL_CHECKS if check.asset in keys]


def write_then_check(context, write: Callable[[], list], checks: list[Check]) -> Iterator:
    """A step whose tables are written together: `write()` when any of its assets is selected
    (reporting the selected ones), then the selected checks; with only checks selected (the
    checks-only job), nothing is written."""
    if context.selected_asset_keys:
        yield from (r for r in write() if r.asset_key in context.selected_asset_keys)
    yield from run_checks(context, checks)


def run_checks(context, checks: list[Check]) -> Iterator[AssetCheckResult]:
    """Evaluate the selected `checks` side by side (concurrent Spark jobs), after the step's
    tables are written; record them in the quality history; results in declaration order."""
    selected = [check for check in checks if check.key in context.selected_asset_check_keys]
    results = list(side_by_side(lambda c: c.evaluate(context), selected))
    if selected:
        record_results(context, selected, results)
    for check, result in zip(selected, results, strict=True):
        yield AssetCheckResult(
            asset_key=check.asset,
            check_name=check.name,
            passed=result.passed,
            severity=result.severity,
            metadata=result.metadata,
            description=result.description,
        )


def record_results(context, checks: list[Check], results: list) -> None:
    """Append one row per evaluation to the quality history (`quality.check_results`): the
    figures only, the Delta version of the table each check read, one commit per step."""
    spark, lake = spark_lake(context)
    versions = {
        table: lake.version(spark, table) for table in {t.BY_KEY[check.asset] for check in checks}
    }
    now = datetime.now(timezone.utc)

    def figure(result, name):
        value = result.metadata.get(name)
        return None if value is None else value.value

    rows = [
        (
            context.run_id,
            check.name,
            check.asset.to_user_string(),
            versions[t.BY_KEY[check.asset]],
            figure(result, "evaluated"),
            figure(result, "failed"),
            figure(result, "failed_ratio"),
            result.passed,
            result.severity.value,
            now,
        )
        for check, result in zip(checks, results, strict=True)
    ]
    lake.append(spark.createDataFrame(rows, t.CHECK_RESULTS.spark_schema), t.CHECK_RESULTS)

"""Silver: typed, validated, de-duplicated events, and the quarantine of rule breakers."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from patient_flow_dagster.assets.charts import line_chart
from patient_flow_dagster.assets.checking import CHECK_RESOURCES, write_then_check
from patient_flow_dagster.assets.common import (
    LAKE_POOL,
    OWNERS,
    SPARK_KINDS,
    RefreshConfig,
    apply_full_refresh,
    markdown_table,
    side_by_side,
    table_metadata,
)
from patient_flow_dagster.assets.silver_checks import SILVER_CHECKS
from patient_flow_dagster.model.rules import RULES, QualityRule, with_departments
from patient_flow_dagster.model.tables import (
    BRONZE_EVENTS,
    CHECK_RESULTS,
    QUARANTINE,
    SILVER_EVENTS,
)
from patient_flow_dagster.quality.measures import rate_history
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.transforms.silver import (
    evaluate_rules,
    first_per_event_id,
    split_silver_and_quarantine,
    type_and_enrich,
)
from patient_flow_dagster.transforms.times import utc_text_to_datetime


@dataclass
class SilverRunCounts:
    """What one run did with the bronze rows it read: the reconciliation of
    docs/architecture.md, "The lake"."""

    bronze_rows: int = 0
    silver_rows: int = 0
    quarantined_rows: int = 0
    per_rule: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)

    @property
    def duplicates_removed(self) -> int:
        return self.bronze_rows - self.silver_rows - self.quarantined_rows


def ensure_silver_tables(spark: SparkSession, lake: DeltaLake) -> None:
    """Create silver and quarantine empty, with the schemas the transforms produce."""
    empty_bronze = lake.read(spark, BRONZE_EVENTS).limit(0)
    valid, quarantined = split_silver_and_quarantine(
        evaluate_rules(type_and_enrich(empty_bronze)), run_id=""
    )
    lake.ensure(spark, SILVER_EVENTS, valid.schema)
    lake.ensure(spark, QUARANTINE, quarantined.schema)


def process_bronze_batch(
    spark: SparkSession,
    lake: DeltaLake,
    batch: DataFrame,
    batch_id: int,
    run_id: str,
    counts: SilverRunCounts,
    rules: Sequence[QualityRule] = RULES,
) -> None:
    """Validate one micro-batch of bronze rows and append it to silver or quarantine.

    A row whose event_id was already seen (in this batch, silver or quarantine) is a duplicate.
    The appends carry a Delta transaction id, so a batch replayed after a crash is not written
    twice.
    """
    evaluated = evaluate_rules(type_and_enrich(batch), rules)
    # The batch's ids already in silver or quarantine: a semi-join lets Spark broadcast a small
    # batch's ids into a scan of the stored ones, instead of shuffling every id ever seen.
    seen = (
        lake.read(spark, SILVER_EVENTS)
        .select("event_id")
        .unionByName(lake.read(spark, QUARANTINE).select("event_id"))
        .join(batch.select("event_id"), "event_id", "left_semi")
    )
    # One pass over the batch and the seen ids, cached and materialized (count) before writing:
    # `fresh` is defined against the tables being written, and both sides are split from it.
    fresh = first_per_event_id(evaluated).join(seen, "event_id", "left_anti")
    fresh = fresh.persist()
    try:
        outcome = _outcome(fresh)  # also fills the cache both appends read
        valid, quarantined = split_silver_and_quarantine(fresh, run_id)
        txn = (SILVER_EVENTS.checkpoint, batch_id)
        # Two tables, two commits, side by side: one's Delta commit overlaps the other's write.
        list(
            side_by_side(
                lambda append: lake.append(append[0], append[1], txn=txn),
                [(valid, SILVER_EVENTS), (quarantined, QUARANTINE)],
            )
        )
    finally:
        fresh.unpersist()
    counts.bronze_rows += batch.count()
    counts.silver_rows += outcome.pop("_silver")
    counts.quarantined_rows += outcome.pop("_quarantined")
    for rule in RULES:
        (counts.per_rule if rule.quarantines else counts.warnings)[rule.name] += outcome[rule.name]


def _outcome(fresh: DataFrame) -> dict[str, int]:
    """Rows to silver, rows to quarantine, and rows per rule (quarantine rules: broken by
    quarantined rows; warn rules: raised on silver rows), in one aggregate over the batch."""
    broken = F.size("broken_rules") > 0
    counted = [F.count_if(~broken).alias("_silver"), F.count_if(broken).alias("_quarantined")]
    for rule in RULES:
        if rule.quarantines:
            hit = F.array_contains("broken_rules", rule.name)
        else:
            hit = ~broken & F.array_contains("quality_warnings", rule.name)
        counted.append(F.count_if(hit).alias(rule.name))
    return fresh.agg(*counted).collect()[0].asDict()


def process_new_bronze(
    spark: SparkSession, lake: DeltaLake, run_id: str, rules: Sequence[QualityRule] = RULES
) -> SilverRunCounts:
    """Validate the bronze rows added since the last call into silver and quarantine, by
    `rules` (RULES over the hospital's reference departments)."""
    ensure_silver_tables(spark, lake)
    counts = SilverRunCounts()
    lake.process_new_rows(
        spark,
        BRONZE_EVENTS,
        SILVER_EVENTS,
        lambda batch, batch_id: process_bronze_batch(
            spark, lake, batch, batch_id, run_id, counts, rules
        ),
    )
    return counts


TREND_RUNS = 20


def quarantine_rate_chart(
    spark: SparkSession, lake: DeltaLake, counts: SilverRunCounts
) -> MetadataValue:
    """Share of each run's rows quarantined per rule: this run's counts and the earlier runs'
    rule checks from the quality history (the checks of this run are recorded after it)."""
    rules = [rule.name for rule in RULES if rule.quarantines]
    points = []
    if lake.exists(spark, CHECK_RESULTS):
        history = rate_history(
            lake.read(spark, CHECK_RESULTS),
            SILVER_EVENTS.key.to_user_string(),
            rules,
            TREND_RUNS - 1,
        )
        points = [
            (r.check_name, utc_text_to_datetime(r.run_at), r.failed_ratio)
            for r in history.collect()
        ]
    if evaluated := counts.silver_rows + counts.quarantined_rows:
        now = datetime.now(timezone.utc)
        points += [(name, now, counts.per_rule.get(name, 0) / evaluated) for name in rules]
    return line_chart(
        f"Quarantine rate per rule, last {TREND_RUNS} runs", points, "rows quarantined"
    )


@multi_asset(
    specs=[
        AssetSpec(
            SILVER_EVENTS.key,
            deps=[BRONZE_EVENTS.key],
            description=(
                "One row per valid event_id: typed contract fields, parsed UTC times, length of "
                "stay, admission hour/day/month, stay category, quality warnings."
            ),
            group_name="silver",
            kinds=SPARK_KINDS,
            owners=OWNERS,
        ),
        AssetSpec(
            QUARANTINE.key,
            deps=[BRONZE_EVENTS.key],
            description="Every row that broke a quarantine rule, with the rules it broke and why.",
            group_name="silver",
            kinds=SPARK_KINDS,
            owners=OWNERS,
        ),
    ],
    name="silver_patient_events",
    check_specs=[check.spec for check in SILVER_CHECKS],
    can_subset=True,
    required_resource_keys=CHECK_RESOURCES | {"reference"},
    pool=LAKE_POOL,
)
def silver_patient_events(context: AssetExecutionContext, config: RefreshConfig):
    """Silver and its quarantine are written together; then their checks."""
    yield from write_then_check(
        context, lambda: validate_new_bronze(context, config), SILVER_CHECKS
    )


def validate_new_bronze(
    context: AssetExecutionContext, config: RefreshConfig
) -> list[MaterializeResult]:
    """Process the bronze rows added since the last run (Delta streaming source, availableNow)."""
    apply_full_refresh(context, config, [SILVER_EVENTS, QUARANTINE])
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    reference = context.resources.reference.data
    counts = process_new_bronze(
        spark, lake, context.run_id, with_departments(reference.department_names())
    )
    context.log.info(
        f"bronze rows {counts.bronze_rows} = silver {counts.silver_rows} + quarantine "
        f"{counts.quarantined_rows} + duplicates {counts.duplicates_removed}"
    )
    per_rule = [
        {
            "rule": r.name,
            "action": r.action,
            "rows": counts.per_rule.get(r.name, 0)
            if r.quarantines
            else counts.warnings.get(r.name, 0),
        }
        for r in RULES
    ]
    reconciliation = {
        "bronze_rows_read": MetadataValue.int(counts.bronze_rows),
        "silver_rows_added": MetadataValue.int(counts.silver_rows),
        "quarantined_rows_added": MetadataValue.int(counts.quarantined_rows),
        "duplicates_removed": MetadataValue.int(counts.duplicates_removed),
    }
    return [
        MaterializeResult(
            asset_key=SILVER_EVENTS.key,
            metadata={
                **table_metadata(
                    lake.read(spark, SILVER_EVENTS),
                    lake,
                    SILVER_EVENTS,
                    [
                        "event_id",
                        "department",
                        "hospital_id",
                        "length_of_stay_hours",
                        "stay_category",
                        "quality_warnings",
                    ],
                ),
                **reconciliation,
                "rows_per_rule": MetadataValue.md(
                    markdown_table(per_rule, ["rule", "action", "rows"])
                ),
                "quarantine_rate_trend": quarantine_rate_chart(spark, lake, counts),
            },
        ),
        MaterializeResult(
            asset_key=QUARANTINE.key,
            metadata={
                **table_metadata(
                    lake.read(spark, QUARANTINE),
                    lake,
                    QUARANTINE,
                    ["event_id", "department", "hospital_id", "broken_rules"],
                ),
                **reconciliation,
                **{
                    f"quarantined/{rule.name}": MetadataValue.int(counts.per_rule.get(rule.name, 0))
                    for rule in RULES
                    if rule.quarantines
                },
            },
        ),
    ]

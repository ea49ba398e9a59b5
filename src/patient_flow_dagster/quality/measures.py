"""Quality measurements as plain PySpark (no Dagster): what the asset checks report."""
from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from patient_flow_dagster.quality.rules import RULES


@dataclass(frozen=True)
class Measure:
    evaluated: int
    failed: int
    samples: list[str] = field(default_factory=list)  # event ids or keys, never patient data

    @property
    def ratio(self) -> float:
        return self.failed / self.evaluated if self.evaluated else 0.0


def latest_silver_batch(silver: DataFrame, quarantine: DataFrame) -> str | None:
    """The silver_run_id of the most recent silver processing, over both tables."""
    stamps = silver.select("silver_run_id", "silver_processing_time").unionByName(
        quarantine.select("silver_run_id", "silver_processing_time")
    )
    latest = stamps.orderBy(F.col("silver_processing_time").desc()).select("silver_run_id").first()
    return latest[0] if latest else None


def rule_measures(
    silver: DataFrame, quarantine: DataFrame, run_id: str | None, sample_size: int
) -> dict[str, Measure]:
    """Per rule: rows of the batch evaluated, rows breaking it, a few failing event_ids.

    One pass over the batch for all rules: a quarantine rule fails a row when it is in the row's
    `broken_rules`, a warn rule when it is in `quality_warnings`.
    """
    columns = ["event_id", "broken_rules", "quality_warnings"]
    batch = (
        _of_run(silver, run_id)
        .withColumn("broken_rules", F.array().cast("array<string>"))
        .select(*columns)
        .unionByName(_of_run(quarantine, run_id).select(*columns))
    )
    failing = {
        rule.name: F.array_contains(
            F.col("broken_rules" if rule.quarantines else "quality_warnings"), rule.name
        )
        for rule in RULES
    }
    aggregates = [F.count(F.lit(1)).alias("evaluated")]
    for name, condition in failing.items():
        aggregates.append(F.sum(F.when(condition, 1).otherwise(0)).alias(f"failed_{name}"))
        aggregates.append(
            F.slice(F.sort_array(F.collect_list(F.when(condition, F.col("event_id")))), 1,
                    max(sample_size, 1)).alias(f"sample_{name}")
        )
    row = batch.agg(*aggregates).first()
    return {
        name: Measure(
            evaluated=row["evaluated"],
            failed=int(row[f"failed_{name}"] or 0),
            samples=list(row[f"sample_{name}"] or [])[:sample_size],
        )
        for name in failing
    }


def _of_run(rows: DataFrame, run_id: str | None) -> DataFrame:
    return rows if run_id is None else rows.filter(F.col("silver_run_id") == run_id)


def reconciliation(bronze: DataFrame, silver: DataFrame, quarantine: DataFrame) -> dict[str, int]:
    """Bronze = silver + quarantine + duplicates, over the whole tables.

    Every distinct bronze event_id must be in exactly one of silver and quarantine; rows of
    silver or quarantine that bronze does not know, or that both hold, are errors too. One
    shuffle: the event_ids of the three tables, tagged by table, grouped once (no joins).
    """
    def tagged(table: DataFrame, position: int) -> DataFrame:
        flags = [F.lit(int(i == position)).alias(name) for i, name in enumerate(("b", "s", "q"))]
        return table.select("event_id", *flags)

    per_id = (
        tagged(bronze, 0).unionByName(tagged(silver, 1)).unionByName(tagged(quarantine, 2))
        .groupBy("event_id")
        .agg(F.sum("b").alias("b"), (F.sum("s") + F.sum("q")).alias("placed"),
             F.sum("s").alias("s"), F.sum("q").alias("q"))
    )
    row = per_id.agg(
        F.sum("b").alias("bronze_rows"),
        F.count_if(F.col("b") > 0).alias("ids"),
        F.sum("s").alias("silver_rows"),
        F.sum("q").alias("quarantine_rows"),
        F.count_if((F.col("b") > 0) & (F.col("placed") == 0)).alias("missing"),
        F.count_if(F.col("placed") > 1).alias("repeated"),
        F.sum(F.when(F.col("b") == 0, F.col("placed")).otherwise(0)).alias("unknown"),
    ).first()
    value = {name: int(row[name] or 0) for name in row.asDict()}
    return {
        "bronze_rows": value["bronze_rows"],
        "bronze_distinct_event_ids": value["ids"],
        "duplicates": value["bronze_rows"] - value["ids"],
        "silver_rows": value["silver_rows"],
        "quarantine_rows": value["quarantine_rows"],
        "missing_from_silver_and_quarantine": value["missing"],
        "in_more_than_one_place": value["repeated"],
        "unknown_to_bronze": value["unknown"],
    }


def orphaned_keys(fact: DataFrame, key: str, dimension: DataFrame, sample_size: int) -> Measure:
    """Fact rows whose `key` is null or not present in the dimension."""
    keys = dimension.select(key).distinct().withColumn("_known", F.lit(True))
    joined = fact.select("event_id", key).join(keys, key, "left")
    bad = joined.filter(F.col("_known").isNull())
    return _measure(fact.count(), bad, "event_id", sample_size)


def negative_stays(fact: DataFrame, sample_size: int) -> Measure:
    return _measure(fact.count(), fact.filter("length_of_stay_hours < 0"), "event_id", sample_size)


def patients_without_one_current_row(dim_patient: DataFrame, sample_size: int) -> Measure:
    per_patient = dim_patient.groupBy("patient_id").agg(
        F.sum(F.col("is_current").cast("int")).alias("current"),
        F.first("patient_sk").alias("patient_sk"),
    )
    bad = per_patient.filter("current <> 1")
    return _measure(per_patient.count(), bad, "patient_sk", sample_size)


def overlapping_versions(dim_patient: DataFrame, sample_size: int) -> Measure:
    """Versions that do not end exactly where the patient's next version starts (gaps or
    overlaps), or that end before they start."""
    order = Window.partitionBy("patient_id").orderBy("valid_from")
    versions = dim_patient.withColumn("_next", F.lead("valid_from").over(order))
    bad = versions.filter(
        ~F.col("valid_to").eqNullSafe(F.col("_next"))
        | (F.col("valid_to").isNotNull() & (F.col("valid_to") <= F.col("valid_from")))
    )
    return _measure(dim_patient.count(), bad, "patient_sk", sample_size)


def duplicate_keys(table: DataFrame, keys: list[str], sample_size: int) -> Measure:
    groups = table.groupBy(*keys).count()
    bad = groups.filter("count > 1").withColumn("_key", F.concat_ws("/", *keys))
    return _measure(groups.count(), bad, "_key", sample_size)


def _measure(evaluated: int, failing: DataFrame, sample_column: str, sample_size: int) -> Measure:
    failed = failing.count()
    samples = [
        str(r[0]) for r in failing.select(sample_column).orderBy(sample_column).limit(sample_size).collect()
    ] if failed and sample_size else []
    return Measure(evaluated, failed, samples)

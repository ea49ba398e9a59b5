"""Quality measurements as plain PySpark (no Dagster): what the asset checks report."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patient_flow_dagster.model.rules import RULES


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
    return measure_in_one_pass(batch, failing, "event_id", sample_size)


def measure_in_one_pass(
    rows: DataFrame,
    failing: dict[str, Column],
    sample_column: str,
    sample_size: int,
    evaluated: dict[str, Column] | None = None,
) -> dict[str, Measure]:
    """Several measures over the same rows in one aggregation (one Spark job, not two or three
    per measure): per name, the rows evaluated (all, or those where `evaluated[name]` holds),
    the rows where `failing[name]` holds, and the first failing values of `sample_column`."""
    evaluated = evaluated or {}
    aggregates = []
    for i, (name, condition) in enumerate(failing.items()):
        counted = evaluated.get(name)
        condition = F.coalesce(condition, F.lit(False))
        if counted is not None:
            condition = condition & F.coalesce(counted, F.lit(False))
        aggregates += [
            (F.count_if(counted) if counted is not None else F.count(F.lit(1))).alias(f"e{i}"),
            F.count_if(condition).alias(f"f{i}"),
            F.slice(F.sort_array(F.collect_list(F.when(condition, F.col(sample_column).cast(
                "string")))), 1, max(sample_size, 1)).alias(f"s{i}"),
        ]
    row = rows.agg(*aggregates).first()
    return {
        name: Measure(evaluated=int(row[f"e{i}"] or 0), failed=int(row[f"f{i}"] or 0),
                      samples=list(row[f"s{i}"] or [])[:sample_size])
        for i, name in enumerate(failing)
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


def fact_integrity(fact: DataFrame, dim_patient: DataFrame, dim_department: DataFrame,
                   sample_size: int) -> dict[str, Measure]:
    """The fact's foreign keys (null or absent from the dimension) and negative stays, in one
    pass over the fact (the dimensions' keys join it, small or broadcast)."""
    def known(dimension: DataFrame, key: str) -> DataFrame:
        return dimension.select(key).distinct().withColumn(f"_{key}_known", F.lit(True))

    rows = (fact.select("event_id", "patient_sk", "department_sk", "length_of_stay_hours")
            .join(known(dim_patient, "patient_sk"), "patient_sk", "left")
            .join(known(dim_department, "department_sk"), "department_sk", "left"))
    return measure_in_one_pass(rows, {
        "valid_patient_fk": F.col("_patient_sk_known").isNull(),
        "valid_department_fk": F.col("_department_sk_known").isNull(),
        "non_negative_stay": F.col("length_of_stay_hours") < 0,
    }, "event_id", sample_size)


def patient_history(dim_patient: DataFrame, sample_size: int) -> dict[str, Measure]:
    """SCD2 validity of dim_patient in one pass (one shuffle by patient_id):
    `one_current_row_per_patient` (per patient, exactly one current version) and
    `non_overlapping_validity` (each version ends exactly where the patient's next one starts,
    and never before it starts)."""
    patient = Window.partitionBy("patient_id")
    in_order = patient.orderBy("valid_from", "patient_sk")
    versions = dim_patient.select(
        "patient_sk", "valid_from", "valid_to",
        F.lead("valid_from").over(in_order).alias("_next"),
        F.sum(F.col("is_current").cast("int")).over(patient).alias("_current"),
        (F.row_number().over(in_order) == 1).alias("_first"),
    )
    return measure_in_one_pass(versions, {
        "one_current_row_per_patient": F.col("_current") != 1,
        "non_overlapping_validity": ~F.col("valid_to").eqNullSafe(F.col("_next"))
        | (F.col("valid_to").isNotNull() & (F.col("valid_to") <= F.col("valid_from"))),
    }, "patient_sk", sample_size, evaluated={"one_current_row_per_patient": F.col("_first")})


def duplicate_keys(rows: list, keys: list[str], sample_size: int) -> Measure:
    """Key values held by more than one of `rows` (collected rows of a small dimension)."""
    counts = Counter("/".join(str(row[k]) for k in keys) for row in rows)
    duplicated = sorted(key for key, n in counts.items() if n > 1)
    return Measure(len(counts), len(duplicated), duplicated[:sample_size])

"""Quality measurements as plain PySpark (no Dagster): what the asset checks report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patient_flow_dagster.model.contract import ADMITTING
from patient_flow_dagster.model.rules import RULES


@dataclass(frozen=True)
class Measure:
    evaluated: int
    failed: int
    samples: list[str] = field(default_factory=list)  # event ids or keys, never patient data

    @property
    def ratio(self) -> float:
        return self.failed / self.evaluated if self.evaluated else 0.0


RATE_HISTORY_DAYS = 7


def rate_history(
    check_results: DataFrame, table_name: str, checks: list[str], runs: int
) -> DataFrame:
    """The failed ratio of `checks` on `table_name` in the last `runs` runs of the last
    RATE_HISTORY_DAYS that evaluated rows, from the quality history: (check_run_id, check_name,
    run_at as UTC text, failed_ratio). The window keeps a run's read bounded: older files of
    the history are skipped by their statistics."""
    since = F.current_timestamp() - F.make_dt_interval(days=F.lit(RATE_HISTORY_DAYS))
    history = check_results.filter(
        (F.col("evaluated_at") >= since)
        & (F.col("table_name") == table_name)
        & F.col("check_name").isin(checks)
        & (F.col("evaluated") > 0)
    )
    last = (
        history.groupBy("check_run_id")
        .agg(F.max("evaluated_at").alias("run_at"))
        .orderBy(F.desc("run_at"))
        .limit(runs)
    )
    return history.join(last, "check_run_id").select(
        "check_run_id",
        "check_name",
        F.date_format("run_at", "yyyy-MM-dd HH:mm:ss").alias("run_at"),
        "failed_ratio",
    )


def latest_silver_batch(silver: DataFrame, quarantine: DataFrame) -> str | None:
    """The silver_run_id of the most recent silver processing, over both tables."""
    stamps = silver.select("silver_run_id", "silver_processing_time").unionByName(
        quarantine.select("silver_run_id", "silver_processing_time")
    )
    latest = stamps.orderBy(F.col("silver_processing_time").desc()).select("silver_run_id").first()
    return latest[0] if latest else None


def rule_measures(
    silver: DataFrame, quarantine: DataFrame, run_id: str | list[str] | None, sample_size: int
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
            F.slice(
                F.sort_array(
                    F.collect_list(F.when(condition, F.col(sample_column).cast("string")))
                ),
                1,
                max(sample_size, 1),
            ).alias(f"s{i}"),
        ]
    row = rows.agg(*aggregates).collect()[0]
    return {
        name: Measure(
            evaluated=int(row[f"e{i}"] or 0),
            failed=int(row[f"f{i}"] or 0),
            samples=list(row[f"s{i}"] or [])[:sample_size],
        )
        for i, name in enumerate(failing)
    }


def _of_run(rows: DataFrame, run_id: str | list[str] | None) -> DataFrame:
    """The rows of one silver run, or of several (a run and the runs it re-executes)."""
    if run_id is None:
        return rows
    return rows.filter(
        F.col("silver_run_id").isin(*([run_id] if isinstance(run_id, str) else run_id))
    )


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
        tagged(bronze, 0)
        .unionByName(tagged(silver, 1))
        .unionByName(tagged(quarantine, 2))
        .groupBy("event_id")
        .agg(
            F.sum("b").alias("b"),
            (F.sum("s") + F.sum("q")).alias("placed"),
            F.sum("s").alias("s"),
            F.sum("q").alias("q"),
        )
    )
    row = per_id.agg(
        F.sum("b").alias("bronze_rows"),
        F.count_if(F.col("b") > 0).alias("ids"),
        F.sum("s").alias("silver_rows"),
        F.sum("q").alias("quarantine_rows"),
        F.count_if((F.col("b") > 0) & (F.col("placed") == 0)).alias("missing"),
        F.count_if(F.col("placed") > 1).alias("repeated"),
        F.sum(F.when(F.col("b") == 0, F.col("placed")).otherwise(0)).alias("unknown"),
    ).collect()[0]
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


def fact_integrity(
    fact: DataFrame, dim_patient: DataFrame, dim_department: DataFrame, sample_size: int
) -> dict[str, Measure]:
    """The fact's foreign keys (null or absent from the dimension) and negative lengths of stay,
    in one pass over the fact (the dimensions' keys join it, small or broadcast)."""

    def known(dimension: DataFrame, key: str, alias: str) -> DataFrame:
        return (
            dimension.select(F.col(key).alias(alias))
            .distinct()
            .withColumn(f"_{alias}_known", F.lit(True))
        )

    rows = (
        fact.select(
            "encounter_pseudonym",
            "patient_sk",
            "department_sk",
            "current_department_sk",
            "length_of_stay_hours",
        )
        .withColumn("_sample", F.col("encounter_pseudonym"))
        .join(known(dim_patient, "patient_sk", "patient_sk"), "patient_sk", "left")
        .join(known(dim_department, "department_sk", "department_sk"), "department_sk", "left")
        .join(
            known(dim_department, "department_sk", "current_department_sk"),
            "current_department_sk",
            "left",
        )
    )
    return measure_in_one_pass(
        rows,
        {
            "valid_patient_fk": F.col("_patient_sk_known").isNull(),
            "valid_department_fk": F.col("_department_sk_known").isNull()
            | F.col("_current_department_sk_known").isNull(),
            "non_negative_stay": F.col("length_of_stay_hours") < 0,
        },
        "_sample",
        sample_size,
    )


def movement_integrity(
    movements: DataFrame, fact: DataFrame, sample_size: int
) -> dict[str, Measure]:
    """The movements against their encounters, in one pass:
    `movements_belong_to_encounters` (every segment's encounter is in the fact, not cancelled)
    and `segments_tile_encounters` (the first starts at the admission, each next one where the
    previous ended, only the last may be open, and it ends at the discharge)."""
    encounter = Window.partitionBy("encounter_pseudonym").orderBy("segment")
    facts = fact.select(
        "encounter_pseudonym",
        "status",
        "admission_time_ts",
        "discharge_time_ts",
        F.lit(True).alias("_known"),
    )
    rows = (
        movements.select(
            "encounter_pseudonym",
            "segment",
            "start_ts",
            "end_ts",
            F.lag("end_ts").over(encounter).alias("_previous_end"),
            F.lag("segment").over(encounter).alias("_previous"),
            F.lead("segment").over(encounter).alias("_next"),
        )
        .join(facts, "encounter_pseudonym", "left")
        .withColumn("_sample", F.col("encounter_pseudonym"))
    )
    first, last = F.col("_previous").isNull(), F.col("_next").isNull()
    broken = (
        (first & ((F.col("segment") != 1) | (F.col("start_ts") != F.col("admission_time_ts"))))
        | (
            ~first
            & (
                (F.col("_previous") != F.col("segment") - 1)
                | ~F.col("_previous_end").eqNullSafe(F.col("start_ts"))
            )
        )
        | (~last & F.col("end_ts").isNull())
        | (last & ~F.col("end_ts").eqNullSafe(F.col("discharge_time_ts")))
        | (F.col("end_ts") <= F.col("start_ts"))
    )
    return measure_in_one_pass(
        rows,
        {
            "movements_belong_to_encounters": F.col("_known").isNull()
            | (F.col("status") == "cancelled"),
            "segments_tile_encounters": F.col("_known").isNotNull()
            & (F.col("status") != "cancelled")
            & broken,
        },
        "_sample",
        sample_size,
    )


def beds_shared(movements: DataFrame, sample_size: int) -> Measure:
    """Segments that start in a bed while an earlier segment still holds it (two patients in
    one bed at once); samples are hospital/bed numbers."""
    earlier = (
        Window.partitionBy("hospital_id", "bed_id")
        .orderBy("start_ts", "encounter_pseudonym", "segment")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    forever = F.lit("9999-12-31 00:00:00").cast("timestamp")
    rows = movements.withColumn(
        "_busy_until", F.max(F.coalesce("end_ts", forever)).over(earlier)
    ).withColumn("_bed", F.concat_ws("/", "hospital_id", "bed_id"))
    return measure_in_one_pass(
        rows, {"beds": F.col("_busy_until") > F.col("start_ts")}, "_bed", sample_size
    )["beds"]


def waiting_for_admission(silver: DataFrame, older_than, sample_size: int) -> Measure:
    """Encounters with events but no admission yet (evaluated), and those of them whose first
    event arrived before `older_than` (a timestamp Column: now minus the grace time)."""
    per_encounter = (
        silver.groupBy("encounter_pseudonym")
        .agg(
            F.max(F.col("event_type").isin(*ADMITTING)).alias("_admitted"),
            F.min("bronze_ingestion_ts").alias("_first_arrival"),
        )
        .filter(~F.col("_admitted"))
        .withColumn("_sample", F.col("encounter_pseudonym"))
    )
    return measure_in_one_pass(
        per_encounter, {"waiting": F.col("_first_arrival") < older_than}, "_sample", sample_size
    )["waiting"]


def census_against_placements(
    census: DataFrame, placements: DataFrame, hour_ends: list[str], sample_size: int
) -> Measure:
    """Per census row at each of `hour_ends` (UTC text), whether present_at_end equals a direct
    count of the segments open at that instant (started before it, not ended before it)."""
    if not hour_ends:
        return Measure(0, 0)
    ends = census.sparkSession.createDataFrame(
        [(h,) for h in hour_ends], "hour_text string"
    ).select(F.to_timestamp("hour_text").alias("hour_end"))
    first, last = F.lit(min(hour_ends)).cast("timestamp"), F.lit(max(hour_ends)).cast("timestamp")
    recent = placements.filter(
        (F.col("admission_time_ts") < last)
        & (F.col("discharge_time_ts").isNull() | (F.col("discharge_time_ts") >= first))
    )
    direct = (
        recent.crossJoin(ends)
        .filter(
            (F.col("admission_time_ts") < F.col("hour_end"))
            & (
                F.col("discharge_time_ts").isNull()
                | (F.col("discharge_time_ts") >= F.col("hour_end"))
            )
        )
        .groupBy("hospital_id", "department", "hour_end")
        .agg(F.count(F.lit(1)).alias("_direct"))
    )
    stored = census.join(ends, "hour_end", "left_semi").select(
        "hospital_id", "department", "hour_end", "present_at_end"
    )
    compared = stored.join(direct, ["hospital_id", "department", "hour_end"], "full").withColumn(
        "_key", F.concat_ws("/", "hospital_id", "department", F.col("hour_end").cast("string"))
    )
    return measure_in_one_pass(
        compared,
        {
            "census": F.coalesce(F.col("present_at_end"), F.lit(0))
            != F.coalesce(F.col("_direct"), F.lit(0))
        },
        "_key",
        sample_size,
    )["census"]


def patient_history(dim_patient: DataFrame, sample_size: int) -> dict[str, Measure]:
    """SCD2 validity of dim_patient in one pass (one shuffle by patient):
    `one_current_row_per_patient` (per patient, exactly one current version) and
    `non_overlapping_validity` (each version ends exactly where the patient's next one starts,
    and never before it starts)."""
    patient = Window.partitionBy("patient_pseudonym")
    in_order = patient.orderBy("valid_from", "patient_sk")
    versions = dim_patient.select(
        "patient_sk",
        "valid_from",
        "valid_to",
        F.lead("valid_from").over(in_order).alias("_next"),
        F.sum(F.col("is_current").cast("int")).over(patient).alias("_current"),
        (F.row_number().over(in_order) == 1).alias("_first"),
    )
    return measure_in_one_pass(
        versions,
        {
            "one_current_row_per_patient": F.col("_current") != 1,
            "non_overlapping_validity": ~F.col("valid_to").eqNullSafe(F.col("_next"))
            | (F.col("valid_to").isNotNull() & (F.col("valid_to") <= F.col("valid_from"))),
        },
        "patient_sk",
        sample_size,
        evaluated={"one_current_row_per_patient": F.col("_first")},
    )


def duplicate_keys(rows: list, keys: list[str], sample_size: int) -> Measure:
    """Key values held by more than one of `rows` (collected rows of a small dimension)."""
    counts = Counter("/".join(str(row[k]) for k in keys) for row in rows)
    duplicated = sorted(key for key, n in counts.items() if n > 1)
    return Measure(len(counts), len(duplicated), duplicated[:sample_size])

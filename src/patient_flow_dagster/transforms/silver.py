"""Silver: typed, validated, enriched events; rule breakers split off to quarantine."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patient_flow_dagster.model.contract import ADMITTING, DISCHARGE, IDENTIFYING, STAY
from patient_flow_dagster.model.rules import RULES, QualityRule
from patient_flow_dagster.model.tables import QUARANTINE, REASON_TYPE, SILVER_EVENTS
from patient_flow_dagster.transforms.keys import surrogate_key

SHORT_STAY_HOURS = 24
MEDIUM_STAY_HOURS = 72


def _utc_timestamp(column: str | Column) -> Column:
    """ISO-8601 text -> timestamp; naive values are UTC (session zone), bad text becomes null."""
    return F.try_to_timestamp(F.trim(F.col(column) if isinstance(column, str) else column))


def _text(column: str) -> Column:
    """Trimmed text; an empty value is null (absent)."""
    return F.nullif(F.trim(column), F.lit(""))


def length_of_stay_hours(admission: Column, discharge: Column) -> Column:
    """Hours between admission and discharge, rounded to 2 decimals; null while admitted."""
    micros = F.unix_micros(discharge) - F.unix_micros(admission)
    return F.round(micros / F.lit(3_600_000_000.0), 2)


def stay_category(hours: Column) -> Column:
    """< 24 h Short, < 72 h Medium, otherwise Long; null while the patient is still admitted."""
    return (
        F.when(hours.isNull(), F.lit(None).cast("string"))
        .when(hours < SHORT_STAY_HOURS, "Short Stay")
        .when(hours < MEDIUM_STAY_HOURS, "Medium Stay")
        .otherwise("Long Stay")
    )


def derived_encounter_id(hospital_id: Column, patient_id: Column, admitted: Column) -> Column:
    """The encounter of a record without an encounter_id: its hospital, patient and admission
    time, so that the open and the discharged record of one stay meet. Null without an
    admission time."""
    key = surrogate_key(
        hospital_id, patient_id, F.date_format(admitted, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")
    )
    return F.when(admitted.isNotNull(), F.concat(F.lit("derived-"), key.cast("string")))


def _event_time(event_type: Column, given: Column, admitted: Column, discharged: Column) -> Column:
    """When the event happened: as sent, or else the admission time (stay records and
    admissions) or the discharge time (discharges). A sent time that does not parse stays
    null (a rule quarantines it) rather than falling back."""
    fallback = F.when(event_type.isin(*ADMITTING), admitted).when(
        event_type == DISCHARGE, discharged
    )
    return F.when(given.isNull(), fallback).otherwise(_utc_timestamp(given))


def type_and_enrich(bronze: DataFrame) -> DataFrame:
    """Cast bronze text/bigint columns to the silver types and add the derived stay attributes.

    Uses only `try_` casts so that a bad value becomes null (and a rule quarantines it) instead
    of failing the run under ANSI SQL. A record without event_type is a v1 stay record (STAY);
    one without encounter_id gets the encounter derived from its hospital, patient and
    admission time.
    """
    patient_id = _text("patient_id")
    hospital_id = F.expr("try_cast(hospital_id AS INT)")
    admitted, discharged = _utc_timestamp("admission_time"), _utc_timestamp("discharge_time")
    event_type = F.coalesce(F.upper(_text("event_type")), F.lit(STAY))
    encounter_id = F.coalesce(
        _text("encounter_id"), derived_encounter_id(hospital_id, patient_id, admitted)
    )
    event_time = _text("event_time")
    typed = bronze.select(
        "event_id",
        patient_id.alias("patient_id"),
        F.trim("gender").alias("gender"),
        F.expr("try_cast(age AS INT)").alias("age"),
        F.trim("department").alias("department"),
        "admission_time",
        "discharge_time",
        F.expr("try_cast(bed_id AS INT)").alias("bed_id"),
        hospital_id.alias("hospital_id"),
        event_type.alias("event_type"),
        encounter_id.alias("encounter_id"),
        event_time.alias("event_time"),
        F.col("sequence").alias("sequence"),
        admitted.alias("admission_time_ts"),
        discharged.alias("discharge_time_ts"),
        _event_time(event_type, event_time, admitted, discharged).alias("event_time_ts"),
        "bronze_ingestion_ts",
        "source_file",
        "ingest_run_id",
    )
    hours = length_of_stay_hours(F.col("admission_time_ts"), F.col("discharge_time_ts"))
    return (
        typed.withColumn("length_of_stay_hours", hours)
        .withColumn("admission_hour", F.hour("admission_time_ts"))
        .withColumn("admission_day_of_week", F.dayofweek("admission_time_ts"))
        .withColumn("admission_month", F.month("admission_time_ts"))
        .withColumn("stay_category", stay_category(F.col("length_of_stay_hours")))
    )


def _breaks(rule: QualityRule) -> Column:
    """True when the row breaks `rule`: its condition is not TRUE (null counts as broken)."""
    return ~F.coalesce(F.expr(rule.condition), F.lit(False))


def _broken(rules: Sequence[QualityRule]) -> Column:
    """Array of the names of `rules` the row breaks."""
    if not rules:
        return F.array().cast("array<string>")
    flags = [F.when(_breaks(rule), F.lit(rule.name)) for rule in rules]
    return F.filter(F.array(*flags), lambda name: name.isNotNull())


def _quoted(column: str) -> Column:
    """A column's value as text for a quarantine reason; an identifying one only as present."""
    value = F.col(column).cast("string")
    if column in IDENTIFYING:
        value = F.when(F.trim(value) != "", F.lit("<present>")).otherwise(value)
    return value


def _reasons(rules: Sequence[QualityRule]) -> Column:
    """Array of (rule, columns, value, message) of the `rules` the row breaks: which values
    broke what, so that a steward can fix the source without re-reading the rule's SQL. The
    value is a JSON object of the rule's columns as they arrived (nulls kept)."""
    if not rules:
        return F.array().cast(REASON_TYPE)
    reasons = [
        F.when(
            _breaks(rule),
            F.struct(
                F.lit(rule.name).alias("rule"),
                F.array(*[F.lit(c) for c in rule.columns]).alias("columns"),
                F.to_json(
                    F.struct(*[_quoted(c).alias(c) for c in rule.columns]),
                    {"ignoreNullFields": "false"},
                ).alias("value"),
                F.lit(rule.description).alias("message"),
            ),
        )
        for rule in rules
    ]
    # Cast to the declared type: nullable fields, as Delta stores structs inside arrays.
    return F.filter(F.array(*reasons), lambda reason: reason.isNotNull()).cast(REASON_TYPE)


def evaluate_rules(typed: DataFrame, rules: Sequence[QualityRule] = RULES) -> DataFrame:
    """Add `broken_rules` (quarantine rules broken), `quarantine_reasons` (the same, with the
    offending values) and `quality_warnings` (warn rules broken)."""
    quarantining = [r for r in rules if r.quarantines]
    return (
        typed.withColumn("broken_rules", _broken(quarantining))
        .withColumn("quarantine_reasons", _reasons(quarantining))
        .withColumn("quality_warnings", _broken([r for r in rules if not r.quarantines]))
    )


def first_per_event_id(events: DataFrame) -> DataFrame:
    """Keep one row per event_id: the first ingested (ties broken by file, then content)."""
    order = Window.partitionBy("event_id").orderBy(
        "bronze_ingestion_ts", "source_file", "admission_time", "patient_id", "event_time"
    )
    return (
        events.withColumn("_rank", F.row_number().over(order))
        .filter(F.col("_rank") == 1)
        .drop("_rank")
    )


def split_silver_and_quarantine(
    evaluated: DataFrame, run_id: str, processed_at: Column | None = None
) -> tuple[DataFrame, DataFrame]:
    """Valid rows (no quarantine rule broken) and quarantined rows, in their table layouts."""
    processed_at = processed_at if processed_at is not None else F.current_timestamp()
    stamped = evaluated.withColumn("silver_run_id", F.lit(run_id)).withColumn(
        "silver_processing_time", processed_at
    )
    valid = stamped.filter(F.size("broken_rules") == 0).select(*SILVER_EVENTS.column_names)
    quarantined = stamped.filter(F.size("broken_rules") > 0).select(*QUARANTINE.column_names)
    return valid, quarantined

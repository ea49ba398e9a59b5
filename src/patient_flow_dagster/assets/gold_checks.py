"""The checks of the gold dimensions and facts: keys, history and how encounters, segments and
beds fit together, over the encounters and patients the run touched (everything in an audit)."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue
from pyspark.sql import functions as F

from patient_flow_dagster.assets.checking import (
    Check,
    CheckRun,
    Scope,
    integrity_result,
    one_of,
    only,
)
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.quality import measures
from patient_flow_dagster.transforms.keys import with_pseudonyms


def _measure_fact(run: CheckRun) -> dict[str, measures.Measure]:
    spark, lake = run.spark, run.lake
    return measures.fact_integrity(
        run.scoped(t.FACT_ADMISSIONS, "encounter_pseudonym"),
        lake.read(spark, t.DIM_PATIENT),
        lake.read(spark, t.DIM_DEPARTMENT),
        run.policy.sample_size,
    )


def _measure_patient_history(run: CheckRun) -> dict[str, measures.Measure]:
    return measures.patient_history(
        run.scoped(t.DIM_PATIENT, "patient_pseudonym"), run.policy.sample_size
    )


def _measure_movements(run: CheckRun) -> dict[str, measures.Measure]:
    return measures.movement_integrity(
        run.scoped(t.FACT_MOVEMENTS, "encounter_pseudonym"),
        run.scoped(t.FACT_ADMISSIONS, "encounter_pseudonym"),
        run.policy.sample_size,
    )


def one_patient_per_bed(run: CheckRun) -> AssetCheckResult:
    """Over the beds the run's encounters were in (every bed in an audit)."""
    spark, lake = run.spark, run.lake
    bed = F.concat_ws("/", "hospital_id", "bed_id").alias("_bed")
    movements = lake.read(spark, t.FACT_MOVEMENTS)
    if not run.scope.audit:
        beds = run.scoped(t.FACT_MOVEMENTS, "encounter_pseudonym").select(bed)
        movements = only(movements.withColumn("_bed", bed), "_bed", Scope.keys(beds, "_bed")).drop(
            "_bed"
        )
    measure = measures.beds_shared(movements, run.policy.sample_size)
    return integrity_result(measure, "beds", AssetCheckSeverity.WARN)


def encounters_waiting_for_admission(run: CheckRun) -> AssetCheckResult:
    grace = run.policy.admission_grace_seconds
    older_than = F.current_timestamp() - F.make_dt_interval(secs=F.lit(grace))
    measure = measures.waiting_for_admission(
        with_pseudonyms(run.scoped(t.SILVER_EVENTS, "encounter_id"), run.key),
        older_than,
        run.policy.sample_size,
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


def unique_department_key(run: CheckRun) -> AssetCheckResult:
    spark, lake = run.spark, run.lake
    # A dimension of departments x hospitals: a few hundred rows at most, checked in Python.
    rows = (
        lake.read(spark, t.DIM_DEPARTMENT)
        .select("department", "hospital_id", "department_sk")
        .collect()
    )
    size = run.policy.sample_size
    pair = measures.duplicate_keys(rows, ["department", "hospital_id"], size)
    key = measures.duplicate_keys(rows, ["department_sk"], size)
    return integrity_result(
        measures.Measure(pair.evaluated, pair.failed + key.failed, pair.samples + key.samples),
        "keys",
    )


FACT_CHECKS = [
    Check(
        "valid_patient_fk",
        t.FACT_ADMISSIONS.key,
        "Every encounter points to an existing dim_patient row.",
        one_of("valid_patient_fk", _measure_fact, "encounters"),
        blocking=True,
    ),
    Check(
        "valid_department_fk",
        t.FACT_ADMISSIONS.key,
        "Every encounter's admitting and current departments exist in dim_department.",
        one_of("valid_department_fk", _measure_fact, "encounters"),
        blocking=True,
    ),
    Check(
        "non_negative_stay",
        t.FACT_ADMISSIONS.key,
        "No encounter has a negative length of stay.",
        one_of("non_negative_stay", _measure_fact, "encounters"),
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
        one_of("movements_belong_to_encounters", _measure_movements, "encounters"),
        blocking=True,
    ),
    Check(
        "segments_tile_encounters",
        t.FACT_MOVEMENTS.key,
        "An encounter's segments tile its stay: the first starts at the admission, each next "
        "one where the previous ended (no overlap, no gap), only the last may be open, and "
        "it ends at the discharge.",
        one_of("segments_tile_encounters", _measure_movements, "encounters"),
        blocking=True,
    ),
    Check(
        "one_patient_per_bed",
        t.FACT_MOVEMENTS.key,
        "A bed holds at most one patient at a time (WARN: a late transfer or a source's "
        "bed bookkeeping can overlap briefly).",
        one_patient_per_bed,
    ),
]

DIMENSION_CHECKS = [
    Check(
        "one_current_row_per_patient",
        t.DIM_PATIENT.key,
        "Exactly one current version per patient.",
        one_of("one_current_row_per_patient", _measure_patient_history, "patient_sks"),
        blocking=True,
    ),
    Check(
        "non_overlapping_validity",
        t.DIM_PATIENT.key,
        "A patient's versions neither overlap nor leave gaps: each ends where the next starts.",
        one_of("non_overlapping_validity", _measure_patient_history, "patient_sks"),
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

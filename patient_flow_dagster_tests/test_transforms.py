"""Transforms on small frames, with exact expected values."""

import hashlib
import json
from datetime import datetime

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F

from patient_flow_dagster.model.contract import LANDING_SCHEMA
from patient_flow_dagster.model.rules import RULES, RULES_BY_NAME
from patient_flow_dagster.transforms.bronze import derived_event_id
from patient_flow_dagster.transforms.dimensions import patient_versions
from patient_flow_dagster.transforms.keys import surrogate_key
from patient_flow_dagster.transforms.silver import (
    evaluate_rules,
    first_per_event_id,
    type_and_enrich,
)

INGESTED = "2025-06-01 00:00:00"


def bronze_rows(spark, *events: dict):
    """Bronze-shaped rows: contract fields + ingest metadata, defaults for what is not given."""
    base = {
        "event_id": None,
        "patient_id": "p1",
        "gender": "Female",
        "age": 40,
        "department": "Surgery",
        "admission_time": "2025-01-05T14:30:00",
        "discharge_time": None,
        "bed_id": 7,
        "hospital_id": 3,
    }
    rows = [{**base, **e} for e in events]
    df = spark.createDataFrame(rows, LANDING_SCHEMA)
    return (
        df.withColumn(
            "event_id", F.coalesce("event_id", F.monotonically_increasing_id().cast("string"))
        )
        .withColumn("bronze_ingestion_ts", F.lit(INGESTED).cast("timestamp"))
        .withColumn("source_file", F.lit("file:/landing/a.parquet"))
        .withColumn("ingest_run_id", F.lit("run-1"))
    )


def silver_of(spark, *events: dict) -> list[Row]:
    typed = type_and_enrich(bronze_rows(spark, *events))
    return evaluate_rules(typed).orderBy("event_id").collect()


def test_length_of_stay_hours(spark):
    rows = silver_of(
        spark,
        {
            "event_id": "a",
            "admission_time": "2025-01-05T08:00:00",
            "discharge_time": "2025-01-05T11:00:00",
        },
        {
            "event_id": "b",
            "admission_time": "2025-01-05T08:00:00+00:00",
            "discharge_time": "2025-01-05T20:00:00.000000+00:00",
        },
        {"event_id": "c", "admission_time": "2025-01-05T08:00:00", "discharge_time": None},
    )
    assert [r.length_of_stay_hours for r in rows] == [3.0, 12.0, None]


@pytest.mark.parametrize(
    "hours, category",
    [
        (5, "Short Stay"),
        (23.99, "Short Stay"),
        (24, "Medium Stay"),
        (48, "Medium Stay"),
        (72, "Long Stay"),
        (100, "Long Stay"),
    ],
)
def test_stay_category_boundaries(spark, hours, category):
    df = bronze_rows(spark, {"event_id": "x", "admission_time": "2025-01-01T00:00:00"})
    df = df.withColumn(
        "discharge_time",
        # 1735689600 = 2025-01-01T00:00:00Z
        F.date_format(
            F.timestamp_seconds(F.lit(1735689600 + round(hours * 3600))), "yyyy-MM-dd'T'HH:mm:ss"
        ),
    )
    row = type_and_enrich(df).first()
    assert row.length_of_stay_hours == hours
    assert row.stay_category == category


def test_still_admitted_has_no_category(spark):
    row = silver_of(spark, {"event_id": "a", "discharge_time": None})[0]
    assert row.stay_category is None and row.length_of_stay_hours is None


def test_temporal_attributes_in_utc(spark):
    """2025-01-05 14:30 UTC is a Sunday: hour 14, day_of_week 1, month 1, whatever the zone."""
    for text in ("2025-01-05T14:30:00", "2025-01-05T14:30:00.123456+00:00"):
        row = silver_of(spark, {"event_id": "a", "admission_time": text})[0]
        assert (row.admission_hour, row.admission_day_of_week, row.admission_month) == (14, 1, 1)
    typed = type_and_enrich(bronze_rows(spark, {"event_id": "a"}))
    text = typed.select(F.date_format("admission_time_ts", "yyyy-MM-dd HH:mm").alias("t")).first().t
    assert text == "2025-01-05 14:30"


def test_bad_values_become_null_not_errors(spark):
    row = silver_of(spark, {"event_id": "a", "admission_time": "not a time", "age": 10**12})[0]
    assert row.admission_time_ts is None and row.age is None
    assert set(row.broken_rules) == {"valid_admission_time", "valid_age"}


def expected_key(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def test_surrogate_key_formula(spark):
    df = spark.createDataFrame(
        [("p-1", 30, "Male", "ICU", 4)],
        "patient_id string, age int, gender string, department string, hospital_id int",
    )
    row = df.select(
        surrogate_key("patient_id", "age", "gender").alias("patient_sk"),
        surrogate_key("department", "hospital_id").alias("department_sk"),
    ).first()
    assert row.patient_sk == expected_key("p-1||30||Male")
    assert row.department_sk == expected_key("ICU||4")
    assert 0 <= row.patient_sk < 2**60


@pytest.mark.parametrize(
    "changes, broken",
    [
        ({"age": 120}, ["valid_age"]),
        ({"age": None}, ["valid_age"]),
        ({"admission_time": None}, ["valid_admission_time"]),
        ({"admission_time": "2099-01-01T00:00:00"}, ["admission_not_in_future"]),
        ({"admission_time": "2025-06-01T00:04:00"}, []),  # within the 5 min tolerance
        ({"discharge_time": "2025-01-05T14:00:00"}, ["valid_discharge_time"]),
        ({"discharge_time": "2025-01-05T14:30:00"}, ["valid_discharge_time"]),  # equal: invalid
        ({"discharge_time": "garbage"}, ["valid_discharge_time"]),
        ({"patient_id": None}, ["required_ids"]),
        ({"patient_id": "  "}, ["required_ids"]),
        ({"bed_id": None}, ["required_ids"]),
        ({"hospital_id": None}, ["required_ids"]),
        ({"department": None}, ["required_ids"]),
        ({"department": "Radiology"}, ["known_department"]),
        ({}, []),
    ],
)
def test_each_rule_names_its_defect(spark, changes, broken):
    row = silver_of(spark, {"event_id": "a", **changes})[0]
    assert row.broken_rules == broken
    assert row.quality_warnings == []


def test_quarantine_reasons_quote_the_offending_values(spark):
    too_old, no_patient, late = silver_of(
        spark,
        {"event_id": "a", "age": 150},
        {"event_id": "b", "patient_id": "  ", "bed_id": None},
        {"event_id": "c", "patient_id": "p9", "department": "Radiology", "age": None},
    )
    [reason] = too_old.quarantine_reasons
    assert (reason.rule, reason.columns, reason.value) == ("valid_age", ["age"], '{"age":"150"}')
    assert reason.message == RULES_BY_NAME["valid_age"].description
    [reason] = no_patient.quarantine_reasons
    assert reason.rule == "required_ids"
    assert json.loads(reason.value) == {
        "patient_id": None,
        "department": "Surgery",
        "hospital_id": "3",
        "bed_id": None,
    }
    # Both rules, in declaration order; a present patient_id is never quoted.
    assert [(r.rule, json.loads(r.value)) for r in late.quarantine_reasons] == [
        ("valid_age", {"age": None}),
        ("known_department", {"department": "Radiology"}),
    ]
    assert all("p9" not in r.value for r in late.quarantine_reasons)
    clean = silver_of(spark, {"event_id": "d", "patient_id": "p9"})[0]
    assert clean.quarantine_reasons == []


def test_reasons_mask_a_present_patient_id(spark):
    [row] = silver_of(spark, {"event_id": "a", "patient_id": "p9", "bed_id": None})
    assert json.loads(row.quarantine_reasons[0].value)["patient_id"] == "<present>"


def test_warn_rule_does_not_quarantine(spark):
    row = silver_of(spark, {"event_id": "a", "department": "Pediatrics", "age": 30})[0]
    assert row.broken_rules == [] and row.quality_warnings == ["valid_pediatric_age"]


def test_rules_are_declared_once_with_an_action():
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert all(rule.columns for rule in RULES)
    assert {rule.action for rule in RULES} == {"quarantine", "warn"}


def test_first_per_event_id_keeps_the_earliest(spark):
    df = bronze_rows(
        spark, {"event_id": "a", "age": 1}, {"event_id": "a", "age": 2}, {"event_id": "b"}
    )
    df = df.withColumn(
        "bronze_ingestion_ts",
        F.when(F.col("age") == 2, F.lit("2025-05-01").cast("timestamp")).otherwise(
            F.col("bronze_ingestion_ts")
        ),
    )
    rows = first_per_event_id(df).orderBy("event_id").collect()
    assert [(r.event_id, r.age) for r in rows] == [("a", 2), ("b", 40)]


def test_derived_event_id_is_deterministic_and_content_based(spark):
    df = bronze_rows(
        spark,
        {"patient_id": "p1"},
        {"patient_id": "p1"},
        {"patient_id": "p2"},
        {"patient_id": "p1", "discharge_time": ""},
    )
    ids = [r.id for r in df.select(derived_event_id().alias("id")).collect()]
    assert ids[0] == ids[1] and len(set(ids)) == 3


def history(spark, *stays):
    rows = [
        Row(
            patient_pseudonym=p,
            gender=g,
            age=a,
            event_type="STAY",
            event_time_ts=datetime.fromisoformat(t),
            event_id=e,
        )
        for p, g, a, t, e in stays
    ]
    df = spark.createDataFrame(rows)
    return [
        (
            r.age,
            r.gender,
            str(r.valid_from),
            None if r.valid_to is None else str(r.valid_to),
            r.is_current,
        )
        for r in patient_versions(df).orderBy("valid_from").collect()
    ]


def test_scd2_history_follows_event_time_including_a_late_stay(spark):
    in_arrival_order = [
        ("p1", "Male", 30, "2024-01-10 08:00:00", "e1"),
        ("p1", "Male", 32, "2025-03-01 08:00:00", "e3"),
        ("p1", "Male", 31, "2024-06-15 08:00:00", "e2"),  # arrives late, belongs in the middle
    ]
    assert history(spark, *in_arrival_order) == [
        (30, "Male", "2024-01-10 08:00:00", "2024-06-15 08:00:00", False),
        (31, "Male", "2024-06-15 08:00:00", "2025-03-01 08:00:00", False),
        (32, "Male", "2025-03-01 08:00:00", None, True),
    ]


def test_scd2_collapses_unchanged_stays_and_tracks_gender_correction(spark):
    assert history(
        spark,
        ("p1", "Male", 30, "2024-01-10 08:00:00", "e1"),
        ("p1", "Male", 30, "2024-02-10 08:00:00", "e2"),
        ("p1", "Female", 30, "2024-03-10 08:00:00", "e3"),
        ("p2", "Female", 5, "2024-03-10 08:00:00", "e4"),
    ) == [
        (30, "Male", "2024-01-10 08:00:00", "2024-03-10 08:00:00", False),
        (30, "Female", "2024-03-10 08:00:00", None, True),
        (5, "Female", "2024-03-10 08:00:00", None, True),
    ]

"""Bad landing files: a clear, recorded rejection or quarantine, and the other files still load."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from patient_flow_dagster.assets.bronze import bronze_patient_events
from patient_flow_dagster.assets.silver import silver_patient_events
from patient_flow_dagster.ingestion.landing_writer import (
    events_table,
    write_landing_file,
)
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster_tests.conftest import recent_now

pytestmark = pytest.mark.faults


def test_damaged_files_are_rejected_with_a_reason_and_the_rest_is_ingested(lakehouse):
    sim = simulate(
        300,
        seed=3,
        now=recent_now(),
        dirty_rates={
            k: 0
            for k in (
                "bad_age",
                "future_admission",
                "discharge_before_admission",
                "missing_field",
                "unknown_department",
                "duplicate",
                "late",
                "adult_in_pediatrics",
            )
        },
    )
    good, wide, no_department = sim.events[:100], sim.events[100:200], sim.events[200:]
    landing = lakehouse.landing_dir
    write_landing_file(events_table(good), landing, "a-good-int32.parquet")
    # Another producer: int64 integers and every time with an explicit +00:00 offset.
    wide_schema = pa.schema(
        [
            (f.name, pa.int64() if pa.types.is_integer(f.type) else f.type)
            for f in events_table(wide).schema
        ]
    )
    wide_rows = [{**e, "admission_time": e["admission_time"][:26] + "+00:00"} for e in wide]
    write_landing_file(events_table(wide_rows, wide_schema), landing, "b-good-int64.parquet")
    # A producer that forgot a column: its rows land and are quarantined, none is lost.
    pq.write_table(
        events_table(no_department).drop(["department"]), landing / "c-no-department.parquet"
    )
    # Damaged files: not Parquet at all, and a column of the wrong type.
    (landing / "d-corrupt.parquet").write_bytes(b"PAR1 this is not really parquet")
    pq.write_table(
        pa.table({"event_id": ["x1", "x2"], "age": ["forty", "fifty"]}),
        landing / "e-age-as-text.parquet",
    )
    # A file still being written under its temporary name is not a landing file yet.
    (landing / ".f-in-progress.parquet.tmp").write_bytes(b"partial")

    result = lakehouse.materialize(
        [bronze_patient_events, silver_patient_events], raise_on_error=False
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    # A third of the silver batch has no department: far above the 10% ratio, so the blocking
    # check fails with ERROR (gold would not be updated) while every row is accounted for.
    assert not checks["required_ids"].passed
    assert checks["required_ids"].severity.value == "ERROR"
    assert checks["required_ids"].metadata["failed"].value == 100
    assert checks["silver_reconciles_with_bronze"].passed
    landing_check = checks["every_landing_file_ingested"]
    assert not landing_check.passed and landing_check.severity.value == "WARN"
    assert landing_check.metadata["files_rejected"].value == 2
    assert landing_check.metadata["files_with_missing_rows"].value == 0

    audit = {r.file_name: r for r in lakehouse.table(t.LANDING_FILES).collect()}
    assert set(audit) == {
        "a-good-int32.parquet",
        "b-good-int64.parquet",
        "c-no-department.parquet",
        "d-corrupt.parquet",
        "e-age-as-text.parquet",
    }
    assert audit["d-corrupt.parquet"].status == "rejected"
    assert "not a readable Parquet file" in audit["d-corrupt.parquet"].reason
    assert audit["e-age-as-text.parquet"].status == "rejected"
    assert "column age has type string" in audit["e-age-as-text.parquet"].reason
    assert {
        audit[n].status
        for n in ("a-good-int32.parquet", "b-good-int64.parquet", "c-no-department.parquet")
    } == {"ingested"}
    assert audit["c-no-department.parquet"].reason == "missing column department"
    assert audit["a-good-int32.parquet"].reason is None

    bronze = lakehouse.table(t.BRONZE_EVENTS)
    per_file = {
        r.name: r["count"]
        for r in bronze.groupBy(F.element_at(F.split("source_file", "/"), -1).alias("name"))
        .count()
        .collect()
    }
    assert per_file == {
        "a-good-int32.parquet": 100,
        "b-good-int64.parquet": 100,
        "c-no-department.parquet": 100,
    }

    [mat] = [m for m in result.asset_materializations_for_node("bronze_patient_events")]
    assert mat.metadata["rejected_files"].value == 2
    assert "e-age-as-text.parquet" in mat.metadata["rejected_file_reasons"].value

    silver_ids = {r.event_id for r in lakehouse.table(t.SILVER_EVENTS).collect()}
    assert silver_ids == {e["event_id"] for e in good + wide}
    quarantine = lakehouse.table(t.QUARANTINE).collect()
    assert {r.event_id for r in quarantine} == {e["event_id"] for e in no_department}
    assert all(r.broken_rules == ["required_ids"] for r in quarantine)
    assert all(
        [(x.rule, json.loads(x.value)["department"]) for x in r.quarantine_reasons]
        == [("required_ids", None)]
        for r in quarantine
    )

    # Times with and without the offset parse to the same instants.
    parsed = lakehouse.table(t.SILVER_EVENTS).filter(F.col("admission_time").endswith("+00:00"))
    assert parsed.filter("admission_time_ts IS NULL").count() == 0
    assert parsed.count() >= 100

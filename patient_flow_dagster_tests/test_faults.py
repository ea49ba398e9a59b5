"""Faults a landing zone really sees: a file rewritten under its name, a file touched on
purpose, columns that drift. Nothing is lost: every landed event is in bronze, and exactly once
in silver or the quarantine, and the ledger says what happened to each version of each file."""

import json
import os

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

CLEAN = {
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
}


def _ledger(lakehouse, name):
    rows = (
        lakehouse.table(t.LANDING_FILES)
        .filter(F.col("file_name") == name)
        .select(
            "status",
            "reason",
            "file_size",
            "footer_rows",
            F.unix_micros("file_modified").alias("modified_us"),
        )
        .orderBy("audited_at")
        .collect()
    )
    return [r.asDict() for r in rows]


def _bronze_rows(lakehouse, name):
    return (
        lakehouse.table(t.BRONZE_EVENTS).filter(F.col("source_file").endswith("/" + name)).count()
    )


def _later_mtime(path, seconds=60):
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + seconds))


def test_a_file_rewritten_under_its_name_is_ingested_again(lakehouse):
    events = simulate(254, seed=5, now=recent_now(), dirty_rates=CLEAN).events
    landing = lakehouse.landing_dir
    whole = write_landing_file(events_table(events), landing, "f.parquet").read_bytes()
    # The producer's first attempt was cut short: half a file under the final name.
    (landing / "f.parquet").write_bytes(whole[: len(whole) // 2])
    assert lakehouse.materialize([bronze_patient_events], checks=False).success
    [first] = _ledger(lakehouse, "f.parquet")
    assert first["status"] == "rejected" and "not a readable Parquet file" in first["reason"]
    assert _bronze_rows(lakehouse, "f.parquet") == 0

    # It retries and writes the complete file under the same name.
    write_landing_file(events_table(events), landing, "f.parquet")
    assert lakehouse.materialize([bronze_patient_events], checks=False).success
    rejected, ingested = _ledger(lakehouse, "f.parquet")
    assert rejected == first
    assert ingested["status"] == "ingested" and ingested["footer_rows"] == 254
    assert ingested["file_size"] == len(whole) and ingested["reason"] is None
    assert _bronze_rows(lakehouse, "f.parquet") == 254

    # A run with nothing new ingests nothing: the version is known.
    assert lakehouse.materialize([bronze_patient_events], checks=False).success
    assert len(_ledger(lakehouse, "f.parquet")) == 2
    assert lakehouse.count(t.BRONZE_EVENTS) == 254


def test_touching_a_file_reingests_it_and_silver_keeps_each_event_once(lakehouse):
    events = simulate(300, seed=6, now=recent_now(), dirty_rates=CLEAN).events
    path = write_landing_file(events_table(events), lakehouse.landing_dir, "g.parquet")
    assert lakehouse.materialize([bronze_patient_events, silver_patient_events]).success
    silver_before = lakehouse.count(t.SILVER_EVENTS)
    assert silver_before + lakehouse.count(t.QUARANTINE) == 300

    _later_mtime(path)  # what an operator does to re-ingest a file on purpose
    result = lakehouse.materialize([bronze_patient_events, silver_patient_events])
    assert result.success
    versions = _ledger(lakehouse, "g.parquet")
    assert [v["status"] for v in versions] == ["ingested", "ingested"]
    assert versions[1]["modified_us"] - versions[0]["modified_us"] == 60_000_000
    assert _bronze_rows(lakehouse, "g.parquet") == 600
    # The second copy's events are duplicates by event_id: silver and quarantine are unchanged.
    assert lakehouse.count(t.SILVER_EVENTS) == silver_before
    assert lakehouse.count(t.SILVER_EVENTS) + lakehouse.count(t.QUARANTINE) == 300
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["silver_reconciles_with_bronze"].passed
    assert checks["every_landing_file_ingested"].passed


def test_drifted_columns_are_kept_and_noted_and_nothing_is_lost(lakehouse):
    events = simulate(300, seed=7, now=recent_now(), dirty_rates=CLEAN).events
    extra, no_patient, plain = events[:100], events[100:200], events[200:]
    landing = lakehouse.landing_dir
    # A producer that added two columns the contract does not know.
    wide = events_table(extra)
    wide = wide.append_column("ward_note", pa.array([f"note {i}" for i in range(100)]))
    wide = wide.append_column("triage_level", pa.array(list(range(100)), pa.int32()))
    write_landing_file(wide, landing, "a-extra.parquet")
    # A producer that forgot patient_id.
    pq.write_table(events_table(no_patient).drop(["patient_id"]), landing / "b-no-patient.parquet")
    write_landing_file(events_table(plain), landing, "c-plain.parquet")

    result = lakehouse.materialize(
        [bronze_patient_events, silver_patient_events], raise_on_error=False
    )

    [a] = _ledger(lakehouse, "a-extra.parquet")
    assert a["status"] == "ingested"
    assert a["reason"] == "extra columns kept in rescued_data: ward_note, triage_level"
    [b] = _ledger(lakehouse, "b-no-patient.parquet")
    assert b["status"] == "ingested" and b["reason"] == "missing column patient_id"
    [c] = _ledger(lakehouse, "c-plain.parquet")
    assert c["status"] == "ingested" and c["reason"] is None

    bronze = lakehouse.table(t.BRONZE_EVENTS)
    rescued = {
        r.event_id: json.loads(r.rescued_data)
        for r in bronze.filter(F.col("source_file").endswith("/a-extra.parquet")).collect()
    }
    assert len(rescued) == 100
    expected = {
        e["event_id"]: {"ward_note": f"note {i}", "triage_level": i} for i, e in enumerate(extra)
    }
    assert rescued == expected
    assert (
        bronze.filter(
            ~F.col("source_file").endswith("/a-extra.parquet") & F.col("rescued_data").isNotNull()
        ).count()
        == 0
    )

    # Nothing lost, counted: each landed event once in bronze, once in silver or quarantine.
    landed = {e["event_id"] for e in events}
    bronze_ids = [r.event_id for r in bronze.select("event_id").collect()]
    assert sorted(bronze_ids) == sorted(landed)
    silver_ids = [r.event_id for r in lakehouse.table(t.SILVER_EVENTS).select("event_id").collect()]
    quarantine = lakehouse.table(t.QUARANTINE).collect()
    assert sorted(silver_ids + [r.event_id for r in quarantine]) == sorted(landed)
    assert {r.event_id for r in quarantine} == {e["event_id"] for e in no_patient}
    assert all("required_ids" in r.broken_rules for r in quarantine)

    [mat] = result.asset_materializations_for_node("bronze_patient_events")
    assert mat.metadata["drifted_files"].value == 2
    assert "missing column patient_id" in mat.metadata["rejected_file_reasons"].value

"""The hospital's own reference data: its hospitals (with time zones) and departments (bed
capacity, inpatient or not) from PATIENT_FLOW_REFERENCE_DIR, checked as a whole before a run
writes anything, landed in gold.dim_hospital and gold.dim_department, and read by the
known_department rule."""

import csv
import io
from pathlib import Path

import pytest

from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.model.reference import ReferenceDataError, packaged, parse
from patient_flow_dagster_tests.conftest import Lakehouse, recent_now

HOSPITALS = "hospital_id,name,time_zone\n1,North,America/New_York\n2,South,Asia/Kolkata\n"
DEPARTMENTS = (
    "hospital_id,department,bed_capacity,inpatient\n1,ED,30,false\n1,Ward A,20,true\n"
    "2,ED,10,false\n"
)


@pytest.mark.parametrize(
    "hospitals, departments, message",
    [
        (
            "hospital_id,name\n1,North\n",
            DEPARTMENTS,
            "hospitals.csv: missing column time_zone",
        ),
        (
            "hospital_id,name,time_zone\n1,North,America/New_York\n2,South,Asia/Calcutta_Old\n",
            DEPARTMENTS,
            "hospitals.csv row 3, column time_zone: 'Asia/Calcutta_Old' is not an IANA time "
            "zone (e.g. America/New_York)",
        ),
        (
            "hospital_id,name,time_zone\n1,North,UTC\n1,Again,UTC\n",
            DEPARTMENTS,
            "hospitals.csv row 3, column hospital_id: 1 appears twice",
        ),
        (
            HOSPITALS,
            "hospital_id,department,bed_capacity\n1,ED,30\n1,ED,12\n",
            "departments.csv row 3, column department: ED appears twice for hospital 1",
        ),
        (
            HOSPITALS,
            "hospital_id,department,bed_capacity\n1,ED,-4\n",
            "departments.csv row 2, column bed_capacity: -4 must be at least 0",
        ),
        (
            HOSPITALS,
            "hospital_id,department,bed_capacity\n1,ED,many\n",
            "departments.csv row 2, column bed_capacity: 'many' is not a whole number",
        ),
        (
            HOSPITALS,
            "hospital_id,department,bed_capacity\n9,ED,4\n",
            "departments.csv row 2, column hospital_id: 9 is not in hospitals.csv",
        ),
        (
            HOSPITALS,
            "hospital_id,department,bed_capacity,inpatient\n1,ED,4,maybe\n",
            "departments.csv row 2, column inpatient: 'maybe' is not true or false",
        ),
        (
            HOSPITALS,
            "hospital_id,bed_capacity\n1,4\n",
            "departments.csv: missing column department",
        ),
    ],
)
def test_a_malformed_reference_names_file_row_and_column(hospitals, departments, message):
    with pytest.raises(ReferenceDataError) as error:
        parse(io.StringIO(hospitals), io.StringIO(departments))
    assert str(error.value) == message


def test_the_packaged_sample_has_hospitals_in_several_zones_and_a_non_inpatient_emergency():
    sample = packaged()
    zones = {h.time_zone for h in sample.hospitals}
    assert {"America/New_York", "Europe/London", "Asia/Kolkata"} <= zones
    assert len(sample.hospitals) == 7 and len(sample.departments) == 49
    assert {d.inpatient for d in sample.departments if d.department == "Emergency"} == {False}


def own_reference(folder: Path, capacity: int = 50) -> Path:
    """The packaged departments renamed and moved to hospitals 11-17 (nothing of the sample's
    names is left), with hospital 13 in Asia/Kolkata."""
    folder.mkdir(parents=True, exist_ok=True)
    sample = packaged()
    with (folder / "hospitals.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["hospital_id", "name", "time_zone"])
        for h in sample.hospitals:
            zone = "Asia/Kolkata" if h.hospital_id == 3 else h.time_zone
            writer.writerow([h.hospital_id + 10, f"Own {h.name}", zone])
    with (folder / "departments.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["hospital_id", "department", "bed_capacity", "inpatient"])
        for d in sample.departments:
            writer.writerow([d.hospital_id + 10, f"Unit {d.department}", capacity, d.inpatient])
    return folder


def test_a_hospital_runs_on_its_own_reference_data(tmp_path, spark):
    house = Lakehouse(tmp_path, spark)
    house.landing_dir.mkdir(parents=True)
    house.reference_dir = str(own_reference(tmp_path / "reference"))
    sim = simulate(300, seed=81, now=recent_now(), span_days=5)
    events = sim.events
    for event in events:
        if event.get("hospital_id") is not None:
            event["hospital_id"] += 10
        if event.get("department"):
            event["department"] = f"Unit {event['department']}"
    write_events(events, house.landing_dir)
    assert house.materialize().success
    quarantine = house.table(t.QUARANTINE)
    unknown = quarantine.filter("array_contains(broken_rules, 'known_department')").count()
    # Only the simulator's deliberately unknown departments (the sample's rule would have
    # quarantined every row).
    expected = sum(1 for rule in sim.expected_rule.values() if rule == "known_department")
    assert unknown == expected > 0
    assert house.count(t.SILVER_EVENTS) > 0
    hospitals = {r.hospital_id: r for r in house.table(t.DIM_HOSPITAL).collect()}
    assert set(hospitals) == set(range(11, 18))
    assert hospitals[13].time_zone == "Asia/Kolkata" and hospitals[11].hospital_name.startswith(
        "Own"
    )
    departments = house.table(t.DIM_DEPARTMENT).collect()
    assert departments and all(d.bed_capacity == 50 for d in departments)
    assert {d.inpatient for d in departments if d.department == "Unit Emergency"} <= {False}
    # A new bed capacity reaches dim_department with no new event; unchanged files commit
    # nothing to dim_hospital.
    hospital_version = house.lake.version(spark, t.DIM_HOSPITAL)
    own_reference(tmp_path / "reference", capacity=64)
    assert house.materialize().success
    assert {d.bed_capacity for d in house.table(t.DIM_DEPARTMENT).collect()} == {64}
    assert house.lake.version(spark, t.DIM_HOSPITAL) == hospital_version


def test_a_malformed_reference_stops_the_run_before_anything_is_written(tmp_path, spark):
    house = Lakehouse(tmp_path, spark)
    house.landing_dir.mkdir(parents=True)
    folder = own_reference(tmp_path / "reference")
    (folder / "hospitals.csv").write_text("hospital_id,name,time_zone\n11,Own,Nowhere/City\n")
    house.reference_dir = str(folder)
    write_events(simulate(50, seed=82, now=recent_now()).events, house.landing_dir)
    result = house.materialize(raise_on_error=False)
    assert not result.success
    assert not house.lake.exists(spark, t.BRONZE_EVENTS)
    failure = next(e for e in result.all_events if e.is_failure)
    assert "hospitals.csv row 2, column time_zone: 'Nowhere/City' is not an IANA time zone" in str(
        failure.event_specific_data
    )

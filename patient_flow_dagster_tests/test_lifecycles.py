"""Stays as hospitals send them, through real Dagster runs on Spark + Delta: events of one stay
spread over runs, out of order, cancelled and corrected; each stay one fact row that they update.

One lake, three batches: what each batch must leave in gold is asserted after it."""

import pytest
from pyspark.sql import functions as F

from patient_flow_dagster.assets.checks import ALL_CHECKS
from patient_flow_dagster.definitions import FULL_REFRESH_STEPS, LAKE_ASSETS
from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.model import tables as t
from patient_flow_dagster_tests.leaks import scan_analytics

DAY = "2026-11-20"
AS_OF = {"ops": {"gold_kpis": {"config": {"as_of": "2026-11-21T00:00:00"}}}}
PATIENT = {"gender": "Female", "age": 60}


def event(encounter, kind, at, department, bed, hospital, **more):
    admitted = more.pop("admitted", "08:10")
    return {
        "event_id": f"{encounter}-{kind}-{at}",
        "encounter_id": encounter,
        "event_type": kind,
        "event_time": f"{DAY}T{at}:00",
        "patient_id": f"p-{encounter}",
        "admission_time": f"{DAY}T{admitted}:00",
        "department": department,
        "bed_id": bed,
        "hospital_id": hospital,
        **PATIENT,
        **more,
    }


def stay_record(discharged=None):
    """A v1 record (no event_type, no encounter_id) of one stay in hospital 4."""
    return {
        "event_id": f"S1-{discharged}",
        "patient_id": "p-S1",
        **PATIENT,
        "department": "Surgery",
        "bed_id": 4,
        "hospital_id": 4,
        "admission_time": f"{DAY}T09:00:00",
        "discharge_time": f"{DAY}T{discharged}:00" if discharged else None,
    }


# W1 and W2 live the same lifecycle (in hospitals 5 and 6) but arrive in different orders and
# runs; they must end identical.
LIFECYCLE = [
    ("ADMIT", "08:00", "Emergency", 1),
    ("TRANSFER", "09:30", "ICU", 2),
    ("TRANSFER", "12:00", "Cardiology", 3),
    ("UPDATE", "13:00", "Cardiology", 3),
    ("DISCHARGE", "18:00", "Cardiology", 3),
]


def lifecycle(encounter, hospital, indexes):
    events = []
    for i in indexes:
        kind, at, department, bed = LIFECYCLE[i]
        extra = {"age": 61} if kind == "UPDATE" else {}
        if kind == "DISCHARGE":
            extra["discharge_time"] = f"{DAY}T{at}:00"
        events.append(
            event(encounter, kind, at, department, bed, hospital, admitted="08:00", **extra)
        )
    return events


BATCHES = [
    [  # run 1
        stay_record(),  # open
        event("V1", "ADMIT", "08:10", "Emergency", 3, 7),
        event("V1", "TRANSFER", "10:30", "ICU", 9, 7),
        event("V2", "DISCHARGE", "14:00", "Emergency", 5, 3, discharge_time=f"{DAY}T14:00:00"),
        event("V3", "ADMIT", "08:10", "Oncology", 6, 3),
        event("V3", "DISCHARGE", "12:00", "Oncology", 6, 3, discharge_time=f"{DAY}T12:00:00"),
        event("V3", "CANCEL_DISCHARGE", "12:20", "Oncology", 6, 3),
        event("V4", "ADMIT", "08:10", "Emergency", 7, 2),
        event("V4", "TRANSFER", "10:00", "Surgery", 8, 2),
        event("V4", "CANCEL_TRANSFER", "10:15", "Surgery", 8, 2),
        event("V5", "ADMIT", "08:10", "Emergency", 9, 2),
        event("V5", "CANCEL_ADMIT", "08:40", "Emergency", 9, 2),
        *lifecycle("W1", 5, [4, 0, 2]),
        *lifecycle("W2", 6, [1, 3]),
    ],
    [  # run 2
        stay_record("21:00"),  # the same stay, now discharged
        event("V1", "DISCHARGE", "14:00", "ICU", 9, 7, discharge_time=f"{DAY}T14:00:00"),
        event("V2", "ADMIT", "09:00", "Emergency", 5, 3, admitted="09:00"),
        *lifecycle("W1", 5, [3, 1]),
        *lifecycle("W2", 6, [4, 2]),
    ],
    [  # run 3
        *lifecycle("W2", 6, [0]),
    ],
]


def utc_text(column):
    return F.date_format(column, "HH:mm").alias(column)


def fact(house) -> dict:
    rows = (
        house.reidentified(t.FACT_ADMISSIONS)
        .select(
            "encounter_id",
            "status",
            "transfers",
            "current_bed_id",
            "length_of_stay_hours",
            "is_currently_admitted",
            "event_count",
            utc_text("discharge_time_ts"),
        )
        .collect()
    )
    return {r.encounter_id: r for r in rows}


def segments(house, encounter) -> list[tuple]:
    fact_row = house.reidentified(t.FACT_ADMISSIONS).filter(F.col("encounter_id") == encounter)
    return [
        tuple(r)
        for r in house.table(t.FACT_MOVEMENTS)
        .join(fact_row.select("encounter_pseudonym"), "encounter_pseudonym", "left_semi")
        .orderBy("segment")
        .select(
            "segment", "bed_id", utc_text("start_ts"), utc_text("end_ts"), "length_of_stay_hours"
        )
        .collect()
    ]


def checks_of(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def house(tmp_path_factory, spark):
    from patient_flow_dagster_tests.conftest import Lakehouse

    house = Lakehouse(tmp_path_factory.mktemp("lifecycles"), spark)
    house.landing_dir.mkdir(parents=True)
    house.results = []
    for batch in BATCHES:
        write_events(batch, house.landing_dir)
        house.results.append(house.materialize(run_config=AS_OF))
        house.results[-1].fact = fact(house)
        house.results[-1].occupancy = {
            (r.hospital_id, r.department): r.present
            for r in house.table(t.CURRENT_OCCUPANCY).filter("scope = 'department'").collect()
        }
    return house


def test_every_run_succeeds_with_every_check_passing(house):
    for result in house.results:
        assert result.success
        failed = {n: c.metadata for n, c in checks_of(result).items() if not c.passed}
        assert failed == {}


def test_after_the_first_batch_each_encounter_holds_what_its_events_say(house):
    first = house.results[0].fact
    # The stay record's encounter is derived from its hospital, patient and admission time.
    assert len([key for key in first if key.startswith("derived-")]) == 1
    assert {key for key in first if not key.startswith("derived-")} == {
        "V1",
        "V3",
        "V4",
        "V5",
        "W1",
    }
    # V2's discharge waits for its admission; W2 has no admission yet either.
    waiting = checks_of(house.results[0])["encounters_waiting_for_admission"]
    assert waiting.metadata["encounters_waiting"].value == 2
    assert (first["V1"].status, first["V1"].transfers, first["V1"].current_bed_id) == (
        "admitted",
        1,
        9,
    )
    assert (first["V3"].status, first["V3"].discharge_time_ts) == ("admitted", None)  # reopened
    assert (first["V4"].transfers, first["V4"].current_bed_id) == (0, 7)  # transfer undone
    assert (first["V5"].status, first["V5"].is_currently_admitted) == ("cancelled", False)
    [stay] = [row for key, row in first.items() if key.startswith("derived-")]
    assert (stay.status, stay.is_currently_admitted) == ("admitted", True)
    # Current occupancy counts open segments: V1 in ICU, V3, V4, the open stay; not V5.
    assert house.results[0].occupancy[(7, "ICU")] == 1
    assert house.results[0].occupancy[(4, "Surgery")] == 1
    assert house.results[0].occupancy.get((2, "Emergency")) == 1  # V4 only, V5 cancelled


def test_a_later_discharged_record_updates_its_stay_instead_of_adding_one(house):
    second = house.results[1].fact
    [stay] = [row for key, row in second.items() if key.startswith("derived-")]
    assert (stay.status, stay.discharge_time_ts, stay.length_of_stay_hours, stay.event_count) == (
        "discharged",
        "21:00",
        12.0,
        2,
    )
    assert house.count(t.FACT_ADMISSIONS) == 8  # one row per encounter, V2 now included
    assert house.results[1].occupancy.get((4, "Surgery"), 0) == 0  # gone home


def test_the_transfer_example_gives_exact_segments_and_census(house):
    assert segments(house, "V1") == [(1, 3, "08:10", "10:30", 2.33), (2, 9, "10:30", "14:00", 3.5)]
    assert (
        house.results[1].fact["V1"].status,
        house.results[1].fact["V1"].length_of_stay_hours,
    ) == ("discharged", 5.83)
    hourly = (
        house.table(t.DEPARTMENT_CENSUS_HOURLY)
        .filter("hospital_id = 7")
        .select(
            "department",
            F.hour("hour_start").alias("hour"),
            "admissions",
            "discharges",
            "present_at_end",
        )
        .collect()
    )
    present = {(r.department, r.hour) for r in hourly if r.present_at_end}
    assert present == {
        ("Emergency", 8),
        ("Emergency", 9),
        ("ICU", 10),
        ("ICU", 11),
        ("ICU", 12),
        ("ICU", 13),
    }
    moves = {
        (r.department, r.hour): (r.admissions, r.discharges)
        for r in hourly
        if r.admissions or r.discharges
    }
    assert moves == {
        ("Emergency", 8): (1, 0),
        ("Emergency", 10): (0, 1),
        ("ICU", 10): (1, 0),
        ("ICU", 14): (0, 1),
    }


def test_a_discharge_that_came_first_is_applied_when_the_admission_arrives(house):
    assert house.results[1].fact["V2"].status == "discharged"
    assert segments(house, "V2") == [(1, 5, "09:00", "14:00", 5.0)]
    assert (
        checks_of(house.results[1])["encounters_waiting_for_admission"]
        .metadata["encounters_waiting"]
        .value
        == 1
    )  # W2, until the third batch


def test_cancels_undo_their_event_and_a_cancelled_admission_counts_nowhere(house):
    assert segments(house, "V4") == [(1, 7, "08:10", None, None)]
    assert segments(house, "V5") == []
    cube = house.table(t.CUBE_DEPARTMENT_HOSPITAL).filter("hospital_id = 2").collect()
    assert [(r.department, r.num_admissions) for r in cube] == [("Emergency", 1)]  # V4, not V5
    flow = house.table(t.DAILY_FLOW).filter("hospital_id = 2").collect()
    assert [(r.admissions, r.discharges) for r in flow] == [(1, 0)]


def test_the_same_events_in_any_arrival_order_and_runs_give_the_same_encounter(house):
    final = house.results[2].fact
    same = (
        "status",
        "transfers",
        "current_bed_id",
        "length_of_stay_hours",
        "event_count",
        "discharge_time_ts",
    )
    assert (
        [final["W1"][c] for c in same]
        == [final["W2"][c] for c in same]
        == ["discharged", 2, 3, 10.0, 5, "18:00"]
    )
    assert (
        segments(house, "W1")
        == segments(house, "W2")
        == [
            (1, 1, "08:00", "09:30", 1.5),
            (2, 2, "09:30", "12:00", 2.5),
            (3, 3, "12:00", "18:00", 6.0),
        ]
    )
    # UPDATE corrected the age from 13:00: a second version of the patient.
    versions = house.reidentified(t.DIM_PATIENT).filter("patient_id = 'p-W1'").orderBy("valid_from")
    assert [r.age for r in versions.collect()] == [60, 61]


def test_the_bed_meeting_figures_in_each_hospitals_own_time(house):
    """Hospitals 3 and 5 are in Europe/London, 6 in Asia/Kolkata, 7 in America/Denver."""
    boarding = house.table(t.ED_BOARDING).collect()
    assert sorted(
        (r.hospital_id, r.inpatient_department, r.boarding_minutes) for r in boarding
    ) == [
        (5, "ICU", 90.0),
        (6, "ICU", 90.0),
        (7, "ICU", 140.0),
    ]  # V4's transfer was cancelled: still in Emergency, not boarded
    timing = {
        (r.hospital_id, r.department, str(r.local_date)): (r.discharges, r.before_noon)
        for r in house.table(t.DISCHARGE_TIMING).collect()
    }
    assert timing == {
        (7, "ICU", "2026-11-20"): (1, 1),  # 14:00 UTC is 07:00 in Denver
        (5, "Cardiology", "2026-11-20"): (1, 0),
        (6, "Cardiology", "2026-11-20"): (1, 0),  # 18:00 UTC is 23:30 in Kolkata
        (3, "Emergency", "2026-11-20"): (1, 0),
        (4, "Surgery", "2026-11-20"): (1, 0),
    }
    # As of 00:00 UTC on 21 November, London's midnight ending the 20th has passed (V3 is still
    # in Oncology: its discharge was cancelled), Kolkata's too (W2 left at 23:30 local), Denver's
    # and Chicago's not yet.
    midnights = {
        (r.hospital_id, r.department, str(r.local_date)): r.present
        for r in house.table(t.MIDNIGHT_CENSUS).collect()
    }
    assert midnights[(3, "Oncology", "2026-11-20")] == 1
    assert midnights[(6, "Cardiology", "2026-11-20")] == 0
    assert {h for h, _, _ in midnights} == {3, 4, 5, 6}
    assert {h for h, *_ in timing} & {2} == set()  # V5 (cancelled) and V4 (open) discharged nowhere
    days = house.table(t.PATIENT_DAYS).filter("hospital_id = 3 AND department = 'Oncology'")
    assert [(r.patient_days, r.admissions, r.discharges) for r in days.collect()] == [(1, 1, 0)]
    assert house.count(t.READMISSIONS) == 5  # V1, V2, S1, W1, W2; nobody came back
    assert house.table(t.READMISSIONS).filter("readmitted_30d").count() == 0


def test_a_replayed_batch_and_a_full_refresh_change_nothing(house):
    tables = (t.FACT_ADMISSIONS, t.FACT_MOVEMENTS, t.DEPARTMENT_CENSUS_HOURLY)

    def contents():
        return {
            table: sorted(
                map(
                    tuple,
                    house.table(table)
                    .drop(*[c for c in house.table(table).columns if c.endswith("_run_id")])
                    .collect(),
                ),
                key=repr,
            )
            for table in tables
        }

    before = contents()
    versions = {table: house.lake.version(house.spark, table) for table in tables[:2]}
    # The last batch again, under a new name: its events are duplicates.
    write_events(BATCHES[2], house.landing_dir)
    assert house.materialize(run_config=AS_OF, checks=False).success
    assert {table: house.lake.version(house.spark, table) for table in tables[:2]} == versions
    refresh = {step: {"config": {"full_refresh": True}} for step in FULL_REFRESH_STEPS}
    refresh["gold_kpis"]["config"]["as_of"] = AS_OF["ops"]["gold_kpis"]["config"]["as_of"]
    result = house.materialize(run_config={"ops": refresh}, checks=False)
    assert result.success
    assert contents() == before


def test_every_check_of_the_facts_is_in_the_graph():
    names = {check.name for check in ALL_CHECKS}
    assert {
        "movements_belong_to_encounters",
        "segments_tile_encounters",
        "one_patient_per_bed",
        "encounters_waiting_for_admission",
        "census_matches_movements",
    } <= names
    assert {key for a in LAKE_ASSETS for key in a.keys} >= {t.FACT_MOVEMENTS.key}


def test_no_identifier_reaches_the_analytics_zone(house):
    found = scan_analytics(house)
    found.pop("_columns_scanned")
    assert found == {}

"""Encounters from their events, on small frames: the state, the segments, the census they give,
and order independence over every permutation of a lifecycle."""

import itertools
from datetime import datetime, timedelta

import pytest
from pyspark.sql import functions as F

from patient_flow_dagster.model.contract import LANDING_SCHEMA
from patient_flow_dagster.transforms import census
from patient_flow_dagster.transforms.encounters import (
    encounter_states,
    encounter_summary,
    segments,
)
from patient_flow_dagster.transforms.keys import pseudonymize
from patient_flow_dagster.transforms.silver import evaluate_rules, type_and_enrich

DAY = "2025-03-02"
BASE = {
    "patient_id": "p1",
    "gender": "Female",
    "age": 60,
    "hospital_id": 1,
    "admission_time": f"{DAY}T08:10:00",
    "encounter_id": "V1",
}
ARRIVED = datetime(2025, 3, 3)


def silver(spark, *events: dict):
    """Silver rows of `events`, arriving in the given order (one second apart) unless an
    event says `arrival` (seconds); event ids from their position unless given. Pseudonymized,
    as the gold steps hand them to the encounter transforms."""
    rows = []
    for position, event in enumerate(events):
        event = {**BASE, **event}
        arrival = ARRIVED + timedelta(seconds=event.pop("arrival", position))
        rows.append(
            (
                {
                    **{f.name: event.get(f.name) for f in LANDING_SCHEMA.fields},
                    "event_id": event.get("event_id", f"e{position}"),
                },
                arrival,
            )
        )
    frame = spark.createDataFrame([r for r, _ in rows], LANDING_SCHEMA)
    arrivals = spark.createDataFrame(
        [(r["event_id"], a) for r, a in rows], "event_id string, bronze_ingestion_ts timestamp"
    )
    bronze = (
        frame.join(arrivals, "event_id")
        .withColumn("source_file", F.lit("a.parquet"))
        .withColumn("ingest_run_id", F.lit("run"))
    )
    evaluated = evaluate_rules(type_and_enrich(bronze))
    assert [r.broken_rules for r in evaluated.collect()] == [[]] * len(events)
    return pseudonymize(evaluated, b"test key")


def admit(department="Emergency", bed=3, **more):
    return {"event_type": "ADMIT", "department": department, "bed_id": bed, **more}


def transfer(at, department, bed, **more):
    return {
        "event_type": "TRANSFER",
        "event_time": f"{DAY}T{at}:00",
        "department": department,
        "bed_id": bed,
        **more,
    }


def discharge(at, department="ICU", bed=9, **more):
    return {
        "event_type": "DISCHARGE",
        "discharge_time": f"{DAY}T{at}:00",
        "department": department,
        "bed_id": bed,
        **more,
    }


def cancel(kind, at, department="ICU", bed=9):
    return {
        "event_type": f"CANCEL_{kind}",
        "event_time": f"{DAY}T{at}:00",
        "department": department,
        "bed_id": bed,
    }


def utc_text(column: str):
    """Timestamps cross to Python as UTC text (collected datetimes are in the process's zone)."""
    return F.date_format(column, "yyyy-MM-dd HH:mm:ss").alias(column)


def state_and_segments(spark, *events):
    states = encounter_states(silver(spark, *events))
    stays = segments(states)
    summary = (
        encounter_summary(states, stays)
        .withColumn("discharge_time_ts", utc_text("discharge_time_ts"))
        .collect()
    )
    rows = [
        tuple(r)
        for r in stays.orderBy("encounter_pseudonym", "segment")
        .select(
            "department", "bed_id", utc_text("start_ts"), utc_text("end_ts"), "length_of_stay_hours"
        )
        .collect()
    ]
    return (summary[0] if summary else None), rows


def test_a_transfer_splits_the_stay_and_the_census_follows_the_patient(spark):
    state, stays = state_and_segments(
        spark, admit(), transfer("10:30", "ICU", 9), discharge("14:00")
    )
    assert stays == [
        ("Emergency", 3, f"{DAY} 08:10:00", f"{DAY} 10:30:00", 2.33),
        ("ICU", 9, f"{DAY} 10:30:00", f"{DAY} 14:00:00", 3.5),
    ]
    assert (
        state.status,
        state.transfers,
        state.current_department,
        state.current_bed_id,
        state.discharge_time_ts,
    ) == ("discharged", 1, "ICU", 9, f"{DAY} 14:00:00")

    states = encounter_states(
        silver(spark, admit(), transfer("10:30", "ICU", 9), discharge("14:00"))
    )
    placed = (
        segments(states)
        .withColumn("bed_capacity", F.lit(10))
        .withColumn("time_zone", F.lit("UTC"))
        .withColumnsRenamed({"start_ts": "admission_time_ts", "end_ts": "discharge_time_ts"})
    )
    hourly = census.hourly_census(placed, datetime(2025, 3, 2, 15, 30))
    present = {
        (r.department, r.hour): (r.admissions, r.discharges, r.present_at_end)
        for r in hourly.withColumn("hour", F.hour("hour_start")).collect()
    }
    assert {k: v for k, v in present.items() if v[2]} == {
        ("Emergency", 8): (1, 0, 1),
        ("Emergency", 9): (0, 0, 1),
        ("ICU", 10): (1, 0, 1),
        ("ICU", 11): (0, 0, 1),
        ("ICU", 12): (0, 0, 1),
        ("ICU", 13): (0, 0, 1),
    }
    assert present[("Emergency", 10)] == (0, 1, 0) and present[("ICU", 14)] == (0, 1, 0)


def test_an_open_stay_record_then_its_discharged_record_are_one_discharged_encounter(spark):
    record = {"encounter_id": None, "department": "Surgery", "bed_id": 4}
    state, stays = state_and_segments(
        spark, record, {**record, "discharge_time": f"{DAY}T20:10:00"}
    )
    assert (state.status, state.event_count, state.discharge_time_ts) == (
        "discharged",
        2,
        f"{DAY} 20:10:00",
    )
    assert stays == [("Surgery", 4, f"{DAY} 08:10:00", f"{DAY} 20:10:00", 12.0)]


def test_a_discharge_that_arrives_before_its_admission_is_applied_with_it(spark):
    waiting = encounter_states(silver(spark, discharge("14:00", "Emergency", 3))).first()
    assert not waiting.admitted  # no fact row yet: it waits for the admission
    state, stays = state_and_segments(
        spark, discharge("14:00", "Emergency", 3, arrival=0), admit(arrival=3600)
    )
    assert state.status == "discharged"
    assert stays == [("Emergency", 3, f"{DAY} 08:10:00", f"{DAY} 14:00:00", 5.83)]


def test_a_cancelled_discharge_reopens_the_stay(spark):
    state, stays = state_and_segments(
        spark, admit(), discharge("14:00", "Emergency", 3), cancel("DISCHARGE", "14:20")
    )
    assert (state.status, state.discharge_time_ts) == ("admitted", None)
    assert stays == [("Emergency", 3, f"{DAY} 08:10:00", None, None)]


def test_a_cancelled_transfer_restores_the_segment(spark):
    state, stays = state_and_segments(
        spark,
        admit(),
        transfer("10:30", "ICU", 9),
        cancel("TRANSFER", "10:45"),
        transfer("11:00", "Cardiology", 12),
    )
    assert state.transfers == 1 and state.current_department == "Cardiology"
    assert stays == [
        ("Emergency", 3, f"{DAY} 08:10:00", f"{DAY} 11:00:00", 2.83),
        ("Cardiology", 12, f"{DAY} 11:00:00", None, None),
    ]


def test_a_cancelled_admission_is_kept_flagged_with_no_segment(spark):
    state, stays = state_and_segments(
        spark, admit(), transfer("10:30", "ICU", 9), cancel("ADMIT", "11:00")
    )
    assert (state.status, stays) == ("cancelled", [])


@pytest.mark.parametrize(
    "changes, broken",
    [
        ({"event_type": "MOVE"}, ["known_event_type"]),
        ({"event_type": "TRANSFER", "event_time": "yesterday"}, ["valid_event_time"]),
        ({"event_type": "TRANSFER", "event_time": None}, ["valid_event_time"]),
        ({"event_type": "TRANSFER", "event_time": f"{DAY}T07:00:00"}, ["movement_after_admission"]),
        (
            {"event_type": "DISCHARGE", "event_time": f"{DAY}T07:00:00"},
            ["movement_after_admission"],
        ),
        (
            {"event_type": "TRANSFER", "event_time": f"{DAY}T09:00:00", "admission_time": None},
            [],
        ),  # the encounter_id identifies it; its admission comes from the ADMIT
        ({"event_type": "ADMIT", "admission_time": None}, ["valid_admission_time"]),
        ({"event_type": "discharge", "discharge_time": f"{DAY}T20:00:00"}, []),  # case folded
    ],
)
def test_each_v2_rule_names_its_defect(spark, changes, broken):
    event = {**BASE, "department": "ICU", "bed_id": 1, **changes}
    frame = spark.createDataFrame(
        [{f.name: event.get(f.name) for f in LANDING_SCHEMA.fields}], LANDING_SCHEMA
    ).withColumn("event_id", F.lit("e"))
    bronze = (
        frame.withColumn("bronze_ingestion_ts", F.lit(ARRIVED))
        .withColumn("source_file", F.lit("a"))
        .withColumn("ingest_run_id", F.lit("r"))
    )
    assert evaluate_rules(type_and_enrich(bronze)).first().broken_rules == broken


LIFECYCLE = [
    admit(),
    transfer("09:30", "ICU", 9),
    transfer("12:00", "Cardiology", 12),
    {
        "event_type": "UPDATE",
        "event_time": f"{DAY}T13:00:00",
        "age": 61,
        "department": "Cardiology",
        "bed_id": 12,
    },
    discharge("18:00", "Cardiology", 12),
]


def test_every_arrival_order_of_a_lifecycle_gives_the_same_encounter(spark):
    """All 120 orders at once: each permutation is its own encounter, arriving in its order."""
    events = []
    for number, order in enumerate(itertools.permutations(range(len(LIFECYCLE)))):
        for arrival, index in enumerate(order):
            events.append(
                {
                    **LIFECYCLE[index],
                    "encounter_id": f"V{number:03d}",
                    "event_id": f"V{number:03d}-{index}",
                    "arrival": arrival,
                }
            )
    states = encounter_states(silver(spark, *events))
    stays = segments(states)
    facts = {
        tuple(
            str(v)
            for k, v in r.asDict().items()
            if k not in ("encounter_pseudonym", "first_arrival")
        )
        for r in encounter_summary(states, stays).collect()
    }
    in_order = stays.orderBy("encounter_pseudonym", "segment").select(
        "encounter_pseudonym", "department", "bed_id", utc_text("start_ts"), utc_text("end_ts")
    )
    tilings = {
        tuple((s.department, s.bed_id, s.start_ts, s.end_ts) for s in group)
        for _, group in itertools.groupby(in_order.collect(), lambda s: s.encounter_pseudonym)
    }
    assert len(facts) == 1 and len(tilings) == 1
    [tiling] = tilings
    assert [(d, b, s[11:16], e[11:16]) for d, b, s, e in tiling] == [
        ("Emergency", 3, "08:10", "09:30"),
        ("ICU", 9, "09:30", "12:00"),
        ("Cardiology", 12, "12:00", "18:00"),
    ]
    [fact] = facts
    assert states.count() == 120 and "discharged" in fact and "2" in fact  # status, transfers

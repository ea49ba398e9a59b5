"""Checks as the quality report: severity thresholds, blocking gold, detecting lost rows."""

from datetime import datetime

import pytest
from dagster import (
    AssetCheckSeverity,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
)
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from patient_flow_dagster.alerting import alert_on_failed_run, alert_on_quality
from patient_flow_dagster.assets.silver_checks import rule_check_result
from patient_flow_dagster.definitions import build_definitions
from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.model.rules import RULES_BY_NAME
from patient_flow_dagster.quality.measures import Measure
from patient_flow_dagster.settings import Settings
from patient_flow_dagster_tests.alert_receivers import alert_receivers
from patient_flow_dagster_tests.conftest import SUITE_KEY, Lakehouse, project_instance, recent_now
from patient_flow_dagster_tests.test_alerts import channels, run_failure

CLEAN = {
    k: 0.0
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


@pytest.mark.parametrize(
    "rule, failed, passed, severity",
    [
        ("valid_age", 0, True, "WARN"),
        ("valid_age", 10, False, "WARN"),  # 10% exactly: still a warning
        ("valid_age", 11, False, "ERROR"),
        ("valid_pediatric_age", 90, False, "WARN"),  # warn rules never block
    ],
)
def test_severity_follows_the_failing_ratio(rule, failed, passed, severity):
    result = rule_check_result(RULES_BY_NAME[rule], Measure(100, failed, ["e1"]), 0.10)
    assert result.passed is passed
    assert result.severity == AssetCheckSeverity(severity)
    assert result.metadata["failed_ratio"].value == failed / 100


def gold_counts(house):
    return {table: house.count(table) for table in (t.DIM_PATIENT, t.FACT_ADMISSIONS)}


@pytest.fixture(scope="module")
def checked_lake(tmp_path_factory, spark):
    """One lake for the module, built from a clean batch, every check passing. The tests below
    run in order on it: a flood of bad ages (blocked before gold), then rows deleted behind the
    pipeline's back (found by the checks-only job)."""
    house = Lakehouse(tmp_path_factory.mktemp("checks"), spark)
    house.landing_dir.mkdir(parents=True)
    write_events(
        simulate(400, seed=21, now=recent_now(), span_days=20, dirty_rates=CLEAN).events,
        house.landing_dir,
    )
    built = house.materialize()
    assert built.success
    assert all(e.passed for e in built.get_asset_check_evaluations())
    return house


def test_a_flood_of_bad_ages_blocks_gold(checked_lake, tmp_path):
    lakehouse = checked_lake
    instance = project_instance(tmp_path)  # the shipped settings, run retries on
    before = gold_counts(lakehouse)

    flood = simulate(
        400, seed=22, now=recent_now(), span_days=20, dirty_rates={**CLEAN, "bad_age": 0.30}
    )
    bad = sum(1 for kind in flood.kinds.values() if kind == "bad_age")
    write_events(flood.events, lakehouse.landing_dir)
    with alert_receivers() as (received, smtp_port, webhook):
        alerts = {
            "alerts": channels(smtp_port, webhook),
            "landing": lakehouse.resources()["landing"],
        }
        watching = build_sensor_context(instance=instance, resources=alerts)
        alert_on_quality(watching)  # the first tick only marks where the event log stands
        result = lakehouse.materialize(raise_on_error=False, instance=instance)
        run = instance.get_run_by_id(result.run_id)
        alert_on_quality(
            build_sensor_context(instance=instance, cursor=watching.cursor, resources=alerts)
        )
        alert_on_failed_run(
            build_run_status_sensor_context(
                sensor_name="alert_on_failed_run",
                dagster_instance=instance,
                dagster_run=run,
                dagster_event=run_failure(instance, run.run_id),
                resources=alerts,
            ).for_run_failure()
        )

    assert not result.success
    # A failed ERROR check is deterministic: the run is not retried.
    assert run.tags["dagster/will_retry"] == "false"
    # Exactly one alert for the ERROR check and one for the failed run, by mail and webhook.
    assert sorted(mail["Subject"] for mail in received.mails) == [
        "[patient-flow ERROR] check valid_age on silver/patient_events failed",
        f"[patient-flow ERROR] run of {run.job_name} failed",
    ]
    assert sorted(post["title"] for post in received.posts) == [
        "[ERROR] check valid_age on silver/patient_events failed",
        f"[ERROR] run of {run.job_name} failed",
    ]
    [check_mail] = [m for m in received.mails if "valid_age" in m["Subject"]]
    assert f"failed {bad}, failed_ratio " in check_mail.get_content()
    assert f"/runs/{result.run_id}" in check_mail.get_content()
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert (
        checks["valid_age"].severity == AssetCheckSeverity.ERROR and not checks["valid_age"].passed
    )
    assert checks["valid_age"].metadata["failed"].value == bad
    assert checks["valid_age"].metadata["failed_ratio"].value > 0.2
    materialized = {
        m.asset_key.to_user_string()
        for m in result.asset_materializations_for_node("silver_patient_events")
    }
    assert "silver/patient_events_quarantine" in materialized
    # The checks ran in silver's own step, which wrote silver and then failed on the blocking
    # check; Dagster skipped every gold step: gold is exactly as before.
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "silver_patient_events"
    assert "blocking asset check" in failure.step_failure_data.error.message
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert started == {"bronze_patient_events", "silver_patient_events"}
    assert not [e for e in result.all_events if e.is_step_success and e.step_key.startswith("gold")]
    assert gold_counts(lakehouse) == before


def test_rows_deleted_behind_the_pipelines_back_fail_reconciliation(
    checked_lake, spark, monkeypatch
):
    lakehouse = checked_lake
    monkeypatch.setenv("PATIENT_FLOW_PSEUDONYM_KEY", SUITE_KEY)  # the key gold was written with
    victims = [r.event_id for r in lakehouse.table(t.SILVER_EVENTS).limit(3).collect()]
    DeltaTable.forPath(spark, lakehouse.lake.location(t.SILVER_EVENTS)).delete(
        F.col("event_id").isin(victims)
    )
    # A cube kept as totals that drifted: one group counts an admission too many.
    [group] = lakehouse.table(t.CUBE_GENDER_DEPARTMENT).limit(1).collect()
    DeltaTable.forPath(spark, lakehouse.lake.location(t.CUBE_GENDER_DEPARTMENT)).update(
        (F.col("gender") == group.gender) & (F.col("department") == group.department),
        {"num_admissions": F.col("num_admissions") + 1},
    )

    # The checks-only job re-checks the existing tables without materializing anything.
    settings = Settings.from_env(
        {
            "PATIENT_FLOW_LAKE": str(lakehouse.root / "lake"),
            "PATIENT_FLOW_LANDING": str(lakehouse.landing_dir),
        }
    )
    defs = build_definitions(settings)
    result = defs.resolve_job_def("patient_flow_checks").execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.get_asset_materialization_events()
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert len(checks) == len(defs.resolve_asset_graph().asset_check_keys)
    reconciliation = checks["silver_reconciles_with_bronze"]
    assert not reconciliation.passed
    assert reconciliation.metadata["missing_from_silver_and_quarantine"].value == 3
    # The rows still in the fact now point nowhere in silver, but gold keys are intact.
    assert checks["valid_patient_fk"].passed
    drift = checks["gender_department_cube_matches_fact"]
    assert not drift.passed
    assert (
        drift.metadata["admissions_actual"].value == drift.metadata["admissions_expected"].value + 1
    )
    assert checks["department_hospital_cube_matches_fact"].passed


def test_reconciliation_counts_each_kind_of_loss_on_small_frames(spark):
    """e1 duplicated in bronze, e2 lost, e3 in both silver and quarantine, x9 unknown to bronze."""
    from patient_flow_dagster.quality.measures import reconciliation

    def ids(*values):
        return spark.createDataFrame([(v,) for v in values], "event_id string")

    counts = reconciliation(
        bronze=ids("e1", "e1", "e2", "e3", "e4"),
        silver=ids("e1", "e3", "x9"),
        quarantine=ids("e3", "e4"),
    )
    assert counts == {
        "bronze_rows": 5,
        "bronze_distinct_event_ids": 4,
        "duplicates": 1,
        "silver_rows": 3,
        "quarantine_rows": 2,
        "missing_from_silver_and_quarantine": 1,
        "in_more_than_one_place": 1,
        "unknown_to_bronze": 1,
    }
    clean = reconciliation(bronze=ids("e1", "e1", "e2"), silver=ids("e1"), quarantine=ids("e2"))
    assert clean["missing_from_silver_and_quarantine"] == clean["in_more_than_one_place"] == 0
    assert clean["unknown_to_bronze"] == 0 and clean["duplicates"] == 1


def test_fact_integrity_finds_orphans_and_negative_stays_in_one_pass(spark):
    """e2 has no patient key, e3 a patient unknown to dim_patient and a negative stay, e4 an
    admitting department and e5 a current department unknown to dim_department. Samples are
    the encounters' pseudonyms (gold holds no visit number)."""
    from patient_flow_dagster.quality.measures import fact_integrity

    fact = spark.createDataFrame(
        [
            ("e1", "p1", "d1", "d1", 5.0),
            ("e2", None, "d1", "d1", 3.0),
            ("e3", "p9", "d2", "d2", -1.0),
            ("e4", "p1", "d9", "d1", None),
            ("e5", "p1", "d1", "d8", None),
        ],
        "encounter_pseudonym string, patient_sk string, department_sk string, "
        "current_department_sk string, length_of_stay_hours double",
    )
    patients = spark.createDataFrame([("p1",), ("p1",)], "patient_sk string")
    departments = spark.createDataFrame([("d1",), ("d2",)], "department_sk string")
    measured = fact_integrity(fact, patients, departments, sample_size=5)

    def pseudonyms(*ids):
        return sorted(ids)

    assert {name: (m.evaluated, m.failed, m.samples) for name, m in measured.items()} == {
        "valid_patient_fk": (5, 2, pseudonyms("e2", "e3")),
        "valid_department_fk": (5, 2, pseudonyms("e4", "e5")),
        "non_negative_stay": (5, 1, pseudonyms("e3")),
    }


def test_movement_integrity_finds_strays_overlaps_gaps_and_shared_beds(spark):
    """m1 tiles its stay; m2 overlaps its next segment; m3 leaves a gap and ends after the
    discharge; m4 is unknown to the fact; m5 belongs to a cancelled encounter. Two segments
    share bed 1 of hospital 1 at 09:00."""
    from patient_flow_dagster.quality.measures import beds_shared, movement_integrity

    def at(hour):
        return None if hour is None else datetime(2025, 1, 1, hour)

    rows = [
        ("m1", 1, 1, 8, 10),
        ("m1", 2, 2, 10, None),
        ("m2", 1, 1, 9, 12),
        ("m2", 2, 3, 11, 14),
        ("m3", 1, 4, 8, 9),
        ("m3", 2, 5, 10, 15),
        ("m4", 1, 6, 8, 9),
        ("m5", 1, 7, 8, 9),
    ]
    movements = spark.createDataFrame(
        [(e, s, 1, b, at(a), at(z)) for e, s, b, a, z in rows],
        "encounter_pseudonym string, segment int, hospital_id int, bed_id int, start_ts timestamp, "
        "end_ts timestamp",
    )
    fact = spark.createDataFrame(
        [
            ("m1", "admitted", at(8), None),
            ("m2", "discharged", at(9), at(14)),
            ("m3", "discharged", at(8), at(14)),
            ("m5", "cancelled", at(8), None),
        ],
        "encounter_pseudonym string, status string, admission_time_ts timestamp, "
        "discharge_time_ts timestamp",
    )
    measured = movement_integrity(movements, fact, sample_size=5)
    assert {name: (m.evaluated, m.failed) for name, m in measured.items()} == {
        "movements_belong_to_encounters": (8, 2),  # m4, m5
        "segments_tile_encounters": (8, 2),  # m2's second (overlap), m3's second (gap)
    }
    assert sorted(beds_shared(movements, 5).samples) == ["1/1"]


def test_patient_history_finds_broken_scd2_versions(spark):
    """a: a clean history; b: two current versions that overlap; c: no current version."""
    from datetime import datetime

    from patient_flow_dagster.quality.measures import patient_history

    t1, t2, t3 = (datetime(2026, 1, day) for day in (1, 2, 3))
    dim = spark.createDataFrame(
        [
            ("a1", "a", t1, t2, False),
            ("a2", "a", t2, None, True),
            ("b1", "b", t1, t3, True),
            ("b2", "b", t2, None, True),
            ("c1", "c", t1, None, False),
        ],
        "patient_sk string, patient_pseudonym string, valid_from timestamp, valid_to timestamp, "
        "is_current boolean",
    )
    measured = patient_history(dim, sample_size=5)
    current, overlap = measured["one_current_row_per_patient"], measured["non_overlapping_validity"]
    assert (current.evaluated, current.failed, current.samples) == (3, 2, ["b1", "c1"])
    assert (overlap.evaluated, overlap.failed, overlap.samples) == (5, 1, ["b1"])


def test_duplicate_department_keys():
    from patient_flow_dagster.quality.measures import duplicate_keys

    rows = [
        {"department": "ICU", "hospital_id": "H1"},
        {"department": "ICU", "hospital_id": "H1"},
        {"department": "ICU", "hospital_id": "H2"},
    ]
    assert duplicate_keys(rows, ["department", "hospital_id"], 5) == Measure(2, 1, ["ICU/H1"])

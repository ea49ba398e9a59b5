"""The whole graph on seeded dirty data: reconciliation, quarantine reasons, gold, idempotence."""

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from patient_flow_dagster.assets.dimensions import gold_dimensions
from patient_flow_dagster.assets.silver import SilverRunCounts
from patient_flow_dagster.ingestion.landing_writer import write_events
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.model.rules import RULES
from patient_flow_dagster.transforms.keys import pseudonym_of
from patient_flow_dagster_tests.conftest import SUITE_KEY, Lakehouse, recent_now
from patient_flow_dagster_tests.leaks import scan_analytics

GOLD_TABLES = (
    t.DIM_PATIENT,
    t.DIM_DEPARTMENT,
    t.FACT_ADMISSIONS,
    t.CUBE_GENDER_DEPARTMENT,
    t.CUBE_DEPARTMENT_HOSPITAL,
)


def snapshot(house: Lakehouse, table: t.Table) -> Counter:
    return Counter(
        tuple(tuple(v) if isinstance(v, list) else v for v in row)
        for row in house.table(table).collect()
    )


def metadata_of(result, key) -> dict:
    [mat] = [
        m
        for m in result.asset_materializations_for_node("silver_patient_events")
        if m.asset_key == key
    ]
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, spark):
    """Batch 1 (seeded, dirty), a re-run with no new files, then batch 2 with returning patients."""
    house = Lakehouse(tmp_path_factory.mktemp("pipeline"), spark)
    now = recent_now()
    first = simulate(1_000, seed=7, now=now, span_days=15)
    write_events(first.events, house.landing_dir, events_per_file=700)
    run1 = house.materialize()
    after1 = {table: snapshot(house, table) for table in (*GOLD_TABLES, t.SILVER_EVENTS)}
    versions1 = {table: house.lake.version(spark, table) for table in GOLD_TABLES}

    run2 = house.materialize()
    after2 = {table: snapshot(house, table) for table in GOLD_TABLES}
    versions2 = {table: house.lake.version(spark, table) for table in GOLD_TABLES}

    # Batch 2: new people, plus later stays of five batch-1 patients who are a year older.
    # seed 29: batch 2's valid events fall in (department, hospital) pairs batch 1 has
    second = simulate(600, seed=29, now=now, span_days=15, dirty_rates={"duplicate": 0})
    returning = [e for e in first.events if e["event_id"] not in first.kinds][:5]
    comebacks = [
        {
            **e,
            "event_id": f"comeback-{i}",
            "age": e["age"] + 1,
            "admission_time": (now - timedelta(hours=2 + i)).strftime("%Y-%m-%dT%H:%M:%S"),
            "discharge_time": None,
            "department": "Emergency",
        }
        for i, e in enumerate(returning)
    ]
    write_events(second.events + comebacks, house.landing_dir, events_per_file=1_000)
    run3 = house.materialize()
    versions3 = {table: house.lake.version(spark, table) for table in GOLD_TABLES}
    return dict(
        house=house,
        first=first,
        second=second,
        comebacks=comebacks,
        returning=returning,
        run1=run1,
        run2=run2,
        run3=run3,
        after1=after1,
        after2=after2,
        versions1=versions1,
        versions2=versions2,
        versions3=versions3,
    )


def test_runs_succeed(scenario):
    assert scenario["run1"].success and scenario["run2"].success and scenario["run3"].success


def test_first_batch_reconciles(scenario, spark):
    house, first = scenario["house"], scenario["first"]
    silver_meta = metadata_of(scenario["run1"], t.SILVER_EVENTS.key)
    assert silver_meta["bronze_rows_read"] == len(first.events) == 1_000
    assert silver_meta["duplicates_removed"] == first.duplicates > 0
    assert (
        silver_meta["silver_rows_added"] + silver_meta["quarantined_rows_added"]
        == first.distinct_event_ids
    )
    silver_ids = {
        r.event_id
        for r in house.table(t.SILVER_EVENTS)
        .filter(F.col("silver_run_id") == scenario["run1"].run_id)
        .collect()
    }
    quarantine_ids = {
        r.event_id
        for r in house.table(t.QUARANTINE)
        .filter(F.col("silver_run_id") == scenario["run1"].run_id)
        .collect()
    }
    assert not silver_ids & quarantine_ids
    assert silver_ids | quarantine_ids == {e["event_id"] for e in first.events}


def test_every_dirty_kind_is_quarantined_with_its_rule(scenario):
    house, first = scenario["house"], scenario["first"]
    broken = {r.event_id: set(r.broken_rules) for r in house.table(t.QUARANTINE).collect()}
    kinds = Counter(first.kinds[e] for e in first.expected_rule)
    assert set(kinds) == {
        "bad_age",
        "future_admission",
        "discharge_before_admission",
        "missing_field",
        "unknown_department",
    }
    for event_id, rule in first.expected_rule.items():
        assert rule in broken.get(event_id, set()), (first.kinds[event_id], rule)
    # Quarantine holds exactly the injected defects, nothing else.
    first_ids = {e["event_id"] for e in first.events}
    assert {e for e in broken if e in first_ids} == set(first.expected_rule)
    quarantine_meta = metadata_of(scenario["run1"], t.QUARANTINE.key)
    expected_per_rule = Counter(first.expected_rule.values())
    for rule, count in expected_per_rule.items():
        assert quarantine_meta[f"quarantined/{rule}"] == count


def test_valid_oddities_stay_in_silver(scenario):
    house, first = scenario["house"], scenario["first"]
    silver = {r.event_id: r for r in house.table(t.SILVER_EVENTS).collect()}
    late = [e for e, k in first.kinds.items() if k == "late"]
    adults = [e for e, k in first.kinds.items() if k == "adult_in_pediatrics"]
    assert late and all(e in silver for e in late)
    assert all(silver[e].quality_warnings == ["valid_pediatric_age"] for e in adults)


def test_gold_tables_are_consistent(scenario, spark):
    house = scenario["house"]
    silver = house.table(t.SILVER_EVENTS)
    fact = house.reidentified(t.FACT_ADMISSIONS)
    dim_patient = house.reidentified(t.DIM_PATIENT)
    assert fact.count() == silver.count()
    assert fact.filter("patient_sk IS NULL OR department_sk IS NULL").count() == 0
    assert fact.filter("length_of_stay_hours < 0").count() == 0
    current = dim_patient.filter("is_current").groupBy("patient_id").count()
    assert current.filter("count <> 1").count() == 0
    assert current.count() == silver.select("patient_id").distinct().count()
    departments = house.table(t.DIM_DEPARTMENT)
    assert departments.count() == silver.select("department", "hospital_id").distinct().count()
    assert departments.filter("bed_capacity IS NULL").count() == 0
    for cube in (t.CUBE_GENDER_DEPARTMENT, t.CUBE_DEPARTMENT_HOSPITAL):
        assert house.table(cube).agg(F.sum("num_admissions")).first()[0] == fact.count()
    # Stay records: one encounter each, keyed by the encounter derived from the record.
    assert silver.select("encounter_id").distinct().count() == fact.count()
    # The point-in-time key is the version holding the event's own gender and age.
    at_admission = (
        fact.select("encounter_id", "patient_sk")
        .join(
            silver.select(
                "encounter_id",
                F.col("age").alias("event_age"),
                F.col("gender").alias("event_gender"),
            ),
            "encounter_id",
        )
        .join(dim_patient.select("patient_sk", "age", "gender").distinct(), "patient_sk")
    )
    assert at_admission.count() == fact.count()
    assert at_admission.filter("NOT (event_age <=> age AND event_gender <=> gender)").count() == 0


def test_large_tables_keep_statistics_only_for_the_columns_read_by_them(scenario):
    lake = scenario["house"].lake
    large = [table for table in t.LAKE_TABLES if table.stats_columns]
    assert len(large) == 10
    for table in large:
        columns = table.stats_columns
        log = Path(lake.location(table)) / "_delta_log"
        adds = [
            json.loads(line)["add"]
            for commit in sorted(log.glob("*.json"))
            for line in commit.read_text().splitlines()
            if line.startswith('{"add"')
        ]
        assert adds or scenario["house"].count(table) == 0, table  # ED boarding: stay records
        for add in adds:
            stats = json.loads(add["stats"])
            assert stats["numRecords"] > 0, table  # row counts stay in the log
            assert set(stats["nullCount"]) == set(columns), table


def test_rerun_without_new_files_changes_nothing(scenario):
    for table in GOLD_TABLES:
        assert scenario["after2"][table] == scenario["after1"][table], table
    for table in (t.DIM_PATIENT, t.DIM_DEPARTMENT, t.FACT_ADMISSIONS):
        assert scenario["versions2"][table] == scenario["versions1"][table], table
    silver_meta = metadata_of(scenario["run2"], t.SILVER_EVENTS.key)
    assert silver_meta["bronze_rows_read"] == 0


def test_second_batch_adds_exactly_its_events(scenario):
    house, second, comebacks = scenario["house"], scenario["second"], scenario["comebacks"]
    new_valid = {e["event_id"] for e in second.events if e["event_id"] not in second.expected_rule}
    new_valid |= {e["event_id"] for e in comebacks}
    encounter_of = {
        r.event_id: pseudonym_of("encounter", r.encounter_id, SUITE_KEY.encode())
        for r in house.table(t.SILVER_EVENTS).select("event_id", "encounter_id").collect()
    }
    before = {row[0] for row in scenario["after1"][t.FACT_ADMISSIONS]}  # the pseudonym first
    after = {
        r.encounter_pseudonym
        for r in house.table(t.FACT_ADMISSIONS).select("encounter_pseudonym").collect()
    }
    assert after - before == {encounter_of[e] for e in new_valid}
    assert before <= after
    assert house.count(t.BRONZE_EVENTS) == 1_000 + len(second.events) + len(comebacks)


def test_a_batch_of_known_departments_commits_nothing_to_dim_department(scenario, spark):
    """Batch 2 only brings departments batch 1 already had: dim_department keeps its version,
    so the hourly census rewrites a recent range instead of its whole history."""
    house = scenario["house"]
    assert snapshot(house, t.DIM_DEPARTMENT) == scenario["after1"][t.DIM_DEPARTMENT]
    assert scenario["versions3"][t.DIM_DEPARTMENT] == scenario["versions1"][t.DIM_DEPARTMENT]
    last_census_write = house.lake.delta_table(spark, t.DEPARTMENT_CENSUS_HOURLY).history(1).first()
    assert last_census_write.operation == "WRITE"
    assert "hour_start >=" in last_census_write.operationParameters.get("predicate", "")


def test_returning_patients_get_a_new_current_version(scenario):
    house = scenario["house"]
    dim = house.reidentified(t.DIM_PATIENT)
    for stay, comeback in zip(scenario["returning"], scenario["comebacks"], strict=True):
        versions = (
            dim.filter(F.col("patient_id") == stay["patient_id"]).orderBy("valid_from").collect()
        )
        assert sum(v.is_current for v in versions) == 1
        assert versions[-1].is_current and versions[-1].age == comeback["age"]
        assert all(v.valid_to is not None for v in versions[:-1])
        assert len(versions) >= 2


def test_each_rule_check_reports_exactly_the_injected_defects(scenario):
    first = scenario["first"]
    evaluations = {e.check_name: e for e in scenario["run1"].get_asset_check_evaluations()}
    expected = Counter(first.expected_rule.values())
    by_id = {e["event_id"]: e for e in first.events}
    expected["valid_pediatric_age"] = sum(
        1
        for event_id in {e["event_id"] for e in first.events}
        if by_id[event_id]["department"] == "Pediatrics" and (by_id[event_id]["age"] or 0) > 18
    )
    for rule in (
        "valid_age",
        "valid_admission_time",
        "admission_not_in_future",
        "valid_discharge_time",
        "required_ids",
        "known_department",
        "valid_pediatric_age",
    ):
        evaluation = evaluations[rule]
        assert evaluation.metadata["evaluated"].value == first.distinct_event_ids
        assert evaluation.metadata["failed"].value == expected[rule] > 0, rule
        assert not evaluation.passed
        assert evaluation.severity.value == "WARN"  # 1-5% of the batch: under the 10% ratio
        samples = evaluation.metadata["sample_failing_event_ids"].value
        assert 0 < len(samples) <= 5 and all(s in by_id for s in samples)
    for name in (
        "silver_reconciles_with_bronze",
        "every_landing_file_ingested",
        "valid_patient_fk",
        "valid_department_fk",
        "non_negative_stay",
        "one_current_row_per_patient",
        "non_overlapping_validity",
        "unique_department_key",
    ):
        assert evaluations[name].passed, name
    reconciliation = evaluations["silver_reconciles_with_bronze"].metadata
    assert reconciliation["bronze_rows"].value == 1_000
    assert reconciliation["duplicates"].value == first.duplicates


def test_one_dimensions_step_reports_each_dimension_and_can_run_one(scenario, spark):
    """dim_patient, dim_department, dim_hospital and dim_date are one step, updated side by side:
    each still has its own materialization and figures, and any can be materialized alone."""
    house = scenario["house"]
    first = {
        m.asset_key: {k: v.value for k, v in m.metadata.items()}
        for m in scenario["run1"].asset_materializations_for_node("gold_dimensions")
    }
    assert set(first) == {
        t.DIM_PATIENT.key,
        t.DIM_DEPARTMENT.key,
        t.DIM_HOSPITAL.key,
        t.DIM_DATE.key,
    }
    assert first[t.DIM_HOSPITAL.key]["dagster/row_count"] == 7  # the packaged sample
    assert first[t.DIM_DATE.key]["dagster/row_count"] == 18_628  # 2000-01-01 to 2050-12-31
    patient = house.table(t.DIM_PATIENT).columns.index("patient_pseudonym")
    patients = len({row[patient] for row in scenario["after1"][t.DIM_PATIENT]})
    assert first[t.DIM_PATIENT.key]["current_patients"] == patients > 0
    assert first[t.DIM_PATIENT.key]["rows_inserted"] == sum(
        scenario["after1"][t.DIM_PATIENT].values()
    )
    assert (
        first[t.DIM_DEPARTMENT.key]["dagster/row_count"]
        == sum(scenario["after1"][t.DIM_DEPARTMENT].values())
        > 0
    )

    dimensions = (t.DIM_PATIENT, t.DIM_DEPARTMENT, t.DIM_HOSPITAL)
    versions = {table: house.lake.version(spark, table) for table in dimensions}
    alone = house.materialize([gold_dimensions], checks=False, selection=[t.DIM_DEPARTMENT.key])
    assert alone.success
    assert [m.asset_key for m in alone.asset_materializations_for_node("gold_dimensions")] == [
        t.DIM_DEPARTMENT.key
    ]
    assert {table: house.lake.version(spark, table) for table in versions} == versions


def test_full_refresh_rebuilds_the_same_tables(scenario, spark, monkeypatch):
    """Runs last in this module: the refresh job drops silver and gold and rebuilds them (with
    the key the scenario's runs had: the same pseudonyms)."""
    from dagster import DagsterInstance

    from patient_flow_dagster.definitions import build_definitions
    from patient_flow_dagster.settings import Settings

    house = scenario["house"]
    monkeypatch.setenv("PATIENT_FLOW_PSEUDONYM_KEY", SUITE_KEY)
    before = {table: snapshot(house, table) for table in GOLD_TABLES}
    ids_before = {
        table: {r.event_id for r in house.table(table).collect()}
        for table in (t.SILVER_EVENTS, t.QUARANTINE)
    }
    defs = build_definitions(
        Settings.from_env(
            {
                "PATIENT_FLOW_LAKE": str(house.root / "lake"),
                "PATIENT_FLOW_LANDING": str(house.landing_dir),
            }
        )
    )
    result = defs.resolve_job_def("patient_flow_full_refresh").execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert result.success
    silver_meta = metadata_of(result, t.SILVER_EVENTS.key)
    assert silver_meta["bronze_rows_read"] == house.count(t.BRONZE_EVENTS)
    for table in GOLD_TABLES:
        assert snapshot(house, table) == before[table], table
    for table, ids in ids_before.items():
        assert {r.event_id for r in house.table(table).collect()} == ids


def test_every_table_is_stored_as_the_registry_declares_it(scenario, spark):
    """Names and types of every column of every lake table match the registry, and the UI
    shows a description for each (in the materialization and in the asset's definition)."""
    house = scenario["house"]
    for table in t.LAKE_TABLES:
        stored = [(f.name, f.dataType.simpleString()) for f in house.table(table).schema.fields]
        assert stored == [(c.name, c.type) for c in table.columns], table
        assert all(c.description for c in table.columns), table
    for result in (scenario["run1"], scenario["run3"]):
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            columns = materialization.metadata["dagster/column_schema"].value.columns
            assert columns and all(c.description for c in columns), materialization.asset_key


def test_every_check_evaluation_is_in_the_quality_history(scenario):
    """quality.check_results: one row per check and run, with the figures the check reported
    and the Delta version of the table it read."""
    from patient_flow_dagster.assets.checks import ALL_CHECKS

    house = scenario["house"]
    history = house.table(t.CHECK_RESULTS)
    for run_name in ("run1", "run2", "run3"):
        result = scenario[run_name]
        rows = {
            (r.table_name, r.check_name): r
            for r in history.filter(F.col("check_run_id") == result.run_id).collect()
        }
        evaluations = {
            (e.asset_key.to_user_string(), e.check_name): e
            for e in result.get_asset_check_evaluations()
        }
        assert (
            set(rows)
            == set(evaluations)
            == {(check.asset.to_user_string(), check.name) for check in ALL_CHECKS}
        ), run_name
        for key, evaluation in evaluations.items():
            row = rows[key]
            assert row.passed == evaluation.passed and row.severity == evaluation.severity.value
            failed = evaluation.metadata.get("failed")
            assert row.failed == (failed.value if failed else None), key
    fact = t.FACT_ADMISSIONS.key.to_user_string()
    for run_name, versions in (("run1", "versions1"), ("run3", "versions3")):
        [row] = (
            history.filter(
                (F.col("check_run_id") == scenario[run_name].run_id) & (F.col("table_name") == fact)
            )
            .limit(1)
            .collect()
        )
        assert row.table_version == scenario[versions][t.FACT_ADMISSIONS], run_name


def test_silver_charts_the_quarantine_rate_per_rule_from_the_quality_history(scenario):
    from patient_flow_dagster.assets.silver import quarantine_rate_chart
    from patient_flow_dagster.quality.measures import rate_history

    house = scenario["house"]
    rules = [rule.name for rule in RULES if rule.quarantines]
    history = rate_history(
        house.table(t.CHECK_RESULTS), t.SILVER_EVENTS.key.to_user_string(), rules, runs=20
    )
    got = {(r.check_run_id, r.check_name): r.failed_ratio for r in history.collect()}
    compared = 0
    for name in ("run1", "run2", "run3"):
        evaluations = {e.check_name: e for e in scenario[name].get_asset_check_evaluations()}
        if not evaluations[rules[0]].metadata["evaluated"].value:
            continue  # a run without new rows is not on the chart
        compared += 1
        for rule in rules:
            assert got[(scenario[name].run_id, rule)] == pytest.approx(
                evaluations[rule].metadata["failed_ratio"].value
            ), (name, rule)
    assert compared >= 2 and any(ratio > 0 for ratio in got.values())
    chart = metadata_of(scenario["run3"], t.SILVER_EVENTS.key)["quarantine_rate_trend"]
    assert chart.startswith("![Quarantine rate per rule") and "data:image/png;base64," in chart
    # Without the history, the chart is this run's figures only; with no rows, a note.
    empty = quarantine_rate_chart(
        house.spark, Lakehouse(house.root / "none", house.spark).lake, SilverRunCounts()
    )
    assert "no data yet" in empty.value


def test_no_identifier_reaches_the_analytics_zone(scenario):
    found = scan_analytics(scenario["house"])
    found.pop("_columns_scanned")
    assert found == {}

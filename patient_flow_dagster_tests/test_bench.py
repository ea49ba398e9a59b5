"""Smoke test of the benchmark on 1,000 events: it runs, reconciles, and each figure is what its
parts say. (No timing assertions: speeds are reported by `patient-flow bench`, not tested.)"""

from datetime import datetime, timezone
from pathlib import Path

import pytest

from patient_flow_dagster.definitions import LAKE_ASSETS
from patient_flow_dagster.ingestion.landing_writer import events_table, write_landing_file
from patient_flow_devtools.bench import (
    BenchmarkError,
    land_events,
    landing_files,
    reconcile,
    run_benchmark,
)
from patient_flow_devtools.bench_stream import (
    KafkaArrivals,
    StreamBenchError,
    ingested_by,
    stream_batches,
    summary,
)
from patient_flow_devtools.engine_floor import EngineFloor, FloorError

EVENTS = 1_000


def test_benchmark_runs_and_reconciles(tmp_path, spark, monkeypatch):
    # The 1% increment is only 10 events: binomial noise alone can push one rule past the 10%
    # ERROR ratio and (rightly) block gold. The smoke test is about the benchmark's mechanics.
    monkeypatch.setenv("PATIENT_FLOW_QUARANTINE_ERROR_RATIO", "0.5")
    # The history-growth runs are two more runs of the same job: left to `patient-flow bench`.
    report = run_benchmark(
        EVENTS, tmp_path / "bench", latency=False, warmup=False, history_growth=False
    )
    counts = report["reconciled_counts"]
    assert counts["bronze.patient_events"] == report["events"] == EVENTS
    assert report["event_format"] == "lifecycles"
    # One fact row per admitted encounter, fewer than the events that built them.
    assert (
        0
        < counts["gold.fact_admissions"]
        == counts["silver_admitted_encounters"]
        < counts["silver.patient_events"]
    )
    assert (
        counts["silver.patient_events"] + counts["silver.patient_events_quarantine"]
        == counts["bronze_distinct_event_ids"]
        < EVENTS
    )  # the simulator's duplicates
    assert report["incremental_events"] == EVENTS // 100

    # Every step of the job is timed: one per asset step, which also evaluates its checks.
    asset_steps = {assets.node_def.name for assets in LAKE_ASSETS}
    for steps in (
        "dagster_seconds_per_step",
        "incremental_seconds_per_step",
        "no_new_files_seconds_per_step",
    ):
        assert set(report[steps]) == asset_steps and len(asset_steps) == 5, steps
    assert report["dagster_check_seconds"] > 0
    assert set(report["seconds_per_layer"]) == {"bronze", "silver", "gold"}
    assert sum(report["seconds_per_layer"].values()) == pytest.approx(
        sum(report["dagster_seconds_per_step"][step] for step in asset_steps), abs=0.5
    )

    # Each ratio is its parts' ratio (the parts are rounded to 0.1 s in the report).
    wall = report["dagster_run_wall_seconds"]
    assert report["events_per_second_end_to_end"] == pytest.approx(EVENTS / wall, abs=1)
    assert report["dagster_asset_seconds"] + report["dagster_check_seconds"] == pytest.approx(
        wall, abs=0.2
    )
    assert report["orchestration_overhead_ratio"] == pytest.approx(
        report["dagster_asset_seconds"] / report["bare_script_seconds"], rel=0.02
    )
    assert report["incremental_fraction_of_full_run"] == pytest.approx(
        report["incremental_run_wall_seconds"] / wall, rel=0.02
    )
    assert report["incremental_seconds_above_that"] == pytest.approx(
        report["incremental_run_wall_seconds"] - report["run_without_new_files_wall_seconds"],
        abs=0.2,
    )
    assert "incremental_growth_with_10x_history" not in report
    assert report["spark_jvm_peak_rss_mb"] > 200 and report["python_driver_peak_rss_mb"] > 50

    # bench-stream reads which run ingested each file from the ledger's Delta log, without a
    # JVM of its own beside dagster dev's: the same versions Spark reads.
    ledger = spark.read.format("delta").load(
        str(tmp_path / "bench" / "dagster_lake" / "bronze" / "landing_files")
    )
    expected = {r.file_name: r.audit_run_id for r in ledger.filter("status = 'ingested'").collect()}
    assert ingested_by(tmp_path / "bench" / "dagster_lake") == expected
    assert {Path(f).name for f in landing_files(tmp_path / "bench" / "landing")} == set(expected)
    assert summary([3.0, 1.0, 2.0, 10.0]) == {"p50": 2.5, "p95": 10.0, "max": 10.0}

    floor = report["engine_floor"]
    assert floor["events_per_second"] == pytest.approx(
        EVENTS / floor["full_run_seconds"], rel=0.02, abs=1
    )
    assert floor["increment_fraction_of_full_run"] == pytest.approx(
        floor["increment_seconds"] / floor["full_run_seconds"], rel=0.05
    )
    assert 0 < floor["one_row_delta_append_seconds"] < floor["full_run_seconds"]
    assert report["dagster_run_vs_engine_floor"] == pytest.approx(
        wall / floor["full_run_seconds"], rel=0.02
    )


def test_the_engine_floor_accounts_for_every_landed_event(tmp_path, spark):
    landing, now = tmp_path / "landing", datetime.now(timezone.utc)
    landed = land_events(2_000, 3, landing, now, 30, 1_000)
    history = landing_files(landing)
    new = land_events(300, 4, landing, now, 2, 1_000)
    floor = EngineFloor(spark, tmp_path / "floor")
    floor.full_run(history)
    first = floor.reconcile(landed)
    floor.increment(sorted(set(landing_files(landing)) - set(history)))
    after = floor.reconcile(landed + new)

    assert first["bronze"] == 2_000 and after["bronze"] == 2_300
    # the simulator's dirty data: duplicates, and rows without a patient or a valid age
    assert first["bronze_distinct_event_ids"] < 2_000 and first["quarantine"] > 0
    assert after["silver"] + after["quarantine"] == after["bronze_distinct_event_ids"]
    assert after["silver"] > first["silver"]
    assert after["fact_admissions"] == after["silver"]
    patients = floor.read("silver").select("patient_id").distinct().count()
    assert after["dim_patient"] == patients
    assert floor.read("kpi").agg({"count": "sum"}).first()[0] == after["fact_admissions"]

    properties = dict(spark.sql(f"SHOW TBLPROPERTIES delta.`{floor.path('bronze')}`").collect())
    assert properties["delta.dataSkippingStatsColumns"] == "event_id,batch"  # as it was created

    floor.read("silver").limit(5).write.format("delta").mode("overwrite").save(floor.path("silver"))
    with pytest.raises(FloorError, match="silver \\+ quarantine"):
        floor.reconcile(landed + new)


def test_a_wrong_count_stops_the_benchmark_before_any_speed():
    counts = {
        "bronze.patient_events": 10,
        "silver.patient_events": 5,
        "silver.patient_events_quarantine": 3,
        "bronze_distinct_event_ids": 9,
        "gold.fact_admissions": 5,
        "silver_admitted_encounters": 5,
    }
    with pytest.raises(BenchmarkError, match="silver \\+ quarantine = 8"):
        reconcile(counts, 10, "run")
    counts.update({"silver.patient_events_quarantine": 4, "gold.fact_admissions": 4})
    with pytest.raises(BenchmarkError, match="fact_admissions has 4 rows for 5 admitted"):
        reconcile(counts, 10, "run")


def test_bench_stream_maps_each_sent_batch_to_the_landing_files_holding_its_events(tmp_path):
    """With --from kafka the consumer decides the files: a batch's events may span two files
    and a file may hold two batches; a batch is in gold when its last file is."""
    batches = stream_batches(3, 4, seed=5)
    events = [event for batch in batches for event in batch]
    landing = tmp_path / "landing"
    # as a consumer flushing every 5 events would write them
    for i in range(0, len(events), 5):
        write_landing_file(events_table(events[i : i + 5]), landing, f"flush-{i:02d}.parquet")
    files = KafkaArrivals(batches, interval=1, batch_seconds=1).files_of(landing, timeout=5)
    assert files == {
        "batch-00000": {"flush-00.parquet"},
        "batch-00001": {"flush-00.parquet", "flush-05.parquet"},
        "batch-00002": {"flush-05.parquet", "flush-10.parquet"},
    }
    with pytest.raises(StreamBenchError, match="4 sent events never landed"):
        KafkaArrivals([*batches, stream_batches(1, 4, seed=6)[0]], 1, 1).files_of(landing, 1)

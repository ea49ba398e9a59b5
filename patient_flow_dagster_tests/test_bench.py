"""Smoke test of the benchmark on 10,000 events: it runs, reconciles, and reports every figure.
(No timing assertions: speeds are reported by `patient-flow bench`, not tested.)"""
from datetime import datetime, timezone

import pytest

from patient_flow_devtools.bench import (
    BenchmarkError,
    land_events,
    landing_files,
    reconcile,
    run_benchmark,
)
from patient_flow_devtools.engine_floor import EngineFloor, FloorError


def test_benchmark_runs_and_reconciles_on_10k_events(tmp_path, spark, monkeypatch):
    # The 1% increment is only 100 events: binomial noise alone can push one rule past the 10%
    # ERROR ratio and (rightly) block gold. The smoke test is about the benchmark's mechanics.
    monkeypatch.setenv("PATIENT_FLOW_QUARANTINE_ERROR_RATIO", "0.5")
    report = run_benchmark(10_000, tmp_path / "bench", latency=False, warmup=False)
    counts = report["reconciled_counts"]
    assert counts["bronze.patient_events"] == report["events"] == 10_000
    assert counts["gold.fact_admissions"] == counts["silver.patient_events"] > 0
    assert report["incremental_events"] == 100
    for key in ("events_per_second_end_to_end", "orchestration_overhead_ratio",
                "incremental_fraction_of_full_run", "run_without_new_files_wall_seconds",
                "incremental_growth_with_10x_history",
                "spark_jvm_peak_rss_mb",
                "python_driver_peak_rss_mb"):
        assert report[key] > 0, key
    assert set(report["seconds_per_layer"]) == {"bronze", "silver", "gold", "gold_kpis"}
    assert (set(report["incremental_seconds_per_step_on_a_tenth_of_the_history"])
            == set(report["incremental_seconds_per_step"]))
    floor = report["engine_floor"]
    for key in ("full_run_seconds", "events_per_second", "increment_seconds",
                "increment_fraction_of_full_run", "one_row_delta_append_seconds"):
        assert floor[key] > 0, key
    assert report["dagster_run_vs_engine_floor"] > 0


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

    floor.read("silver").limit(5).write.format("delta").mode("overwrite").save(
        floor.path("silver"))
    with pytest.raises(FloorError, match="silver \\+ quarantine"):
        floor.reconcile(landed + new)


def test_a_wrong_count_stops_the_benchmark_before_any_speed():
    counts = {"bronze.patient_events": 10, "silver.patient_events": 5,
              "silver.patient_events_quarantine": 3, "bronze_distinct_event_ids": 9,
              "gold.fact_admissions": 5}
    with pytest.raises(BenchmarkError, match="silver \\+ quarantine = 8"):
        reconcile(counts, 10, "run")

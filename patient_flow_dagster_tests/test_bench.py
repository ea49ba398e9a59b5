"""Smoke test of the benchmark on 10,000 events: it runs, reconciles, and reports every figure.
(No timing assertions: speeds are reported by `patient-flow bench`, not tested.)"""
import pytest

from patient_flow_dagster.bench import BenchmarkError, reconcile, run_benchmark


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


def test_a_wrong_count_stops_the_benchmark_before_any_speed():
    counts = {"bronze.patient_events": 10, "silver.patient_events": 5,
              "silver.patient_events_quarantine": 3, "bronze_distinct_event_ids": 9,
              "gold.fact_admissions": 5}
    with pytest.raises(BenchmarkError, match="silver \\+ quarantine = 8"):
        reconcile(counts, 10, "run")

"""`patient-flow bench`: throughput, orchestration overhead, incremental cost, latency, memory.

Every figure comes from one invocation on one machine. The benchmark reconciles its own results
(row counts per table, Dagster lake == bare lake) before it reports any speed: a fast wrong run
fails instead of scoring.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from patient_flow_dagster.settings import SparkSettings
from patient_flow_devtools.steps import (
    count_problems,
    lake_resources,
    land_events,
    run_bare,
    run_small_batch,
)


def layer_of_step() -> dict[str, str]:
    """Each asset step's layer: the group of its assets."""
    from patient_flow_dagster.definitions import LAKE_ASSETS

    return {assets.node_def.name: next(iter(assets.specs)).group_name for assets in LAKE_ASSETS}


class BenchmarkError(RuntimeError):
    """The pipeline produced wrong counts: no speed is reported."""


def table_counts(spark, lake) -> dict[str, int]:
    from pyspark.sql import functions as F

    from patient_flow_dagster.model import tables as t
    from patient_flow_dagster.model.contract import ADMITTING

    tables = (
        t.BRONZE_EVENTS,
        t.SILVER_EVENTS,
        t.QUARANTINE,
        t.DIM_PATIENT,
        t.DIM_DEPARTMENT,
        t.FACT_ADMISSIONS,
    )
    counts = {str(table): lake.read(spark, table).count() for table in tables}
    counts["bronze_distinct_event_ids"] = (
        lake.read(spark, t.BRONZE_EVENTS).select("event_id").distinct().count()
    )
    counts["silver_admitted_encounters"] = (
        lake.read(spark, t.SILVER_EVENTS)
        .filter(F.col("event_type").isin(*ADMITTING))
        .select("encounter_id")
        .distinct()
        .count()
    )
    return counts


def reconcile(counts: dict[str, int], landed_rows: int, label: str) -> None:
    problems = count_problems(
        landed_rows,
        counts["bronze.patient_events"],
        counts["bronze_distinct_event_ids"],
        counts["silver.patient_events"],
        counts["silver.patient_events_quarantine"],
        counts["gold.fact_admissions"],
        counts["silver_admitted_encounters"],
    )
    if problems:
        raise BenchmarkError(f"{label}: " + "; ".join(problems))


def peak_memory_mb(spark) -> dict[str, float]:
    """Peak RSS of this Python driver process and of the Spark JVM (VmHWM)."""
    python_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    jvm_mb = None
    for line in Path(f"/proc/{jvm_pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            jvm_mb = int(line.split()[1]) / 1024
    return {
        "python_driver_peak_rss_mb": round(python_mb, 1),
        "spark_jvm_peak_rss_mb": round(jvm_mb or 0, 1),
    }


def _dagster_run(lake_root: Path, landing: Path):
    from dagster import DagsterInstance

    from patient_flow_dagster.definitions import build_definitions
    from patient_flow_dagster.settings import Settings

    defs = build_definitions(Settings.from_env().at(str(lake_root), str(landing)))
    instance = DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = defs.resolve_job_def("patient_flow").execute_in_process(
        instance=instance, raise_on_error=False
    )
    wall = time.perf_counter() - started
    if not result.success:
        raise BenchmarkError(f"the Dagster run failed: {result.run_id}")
    return wall, *_split_steps(instance.all_logs(result.run_id))


def _split_steps(entries) -> tuple[dict[str, float], float]:
    """Seconds per step writing its tables, and the seconds all steps spent on their checks
    (which a step evaluates after its last materialization)."""
    written, ended = {}, {}
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "ASSET_MATERIALIZATION":
            written[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            ended[event.step_key] = (entry.timestamp, event.event_specific_data.duration_ms / 1000)
    checks = {step: end - written.get(step, end) for step, (end, _) in ended.items()}
    return (
        {step: duration - checks[step] for step, (_, duration) in ended.items()},
        sum(checks.values()),
    )


def measure_latency(
    workdir: Path, interval: int, timeout: float = 600, warm_driver: bool = True
) -> dict[str, float]:
    """Start `dagster dev` (daemon + webserver) with the landing sensor on, as `./run dev` does
    (with its warm Spark driver unless `warm_driver` is False), drop a file, and time until
    fact_admissions has a new MERGE commit. Twice: the first file meets an empty lake (the run
    also creates every table); the second, dropped once that run has finished, is the steady
    state of a live pipeline."""
    from patient_flow_dagster.ingestion.landing_writer import write_events
    from patient_flow_dagster.ingestion.simulator import simulate
    from patient_flow_devtools.bench_stream import dagster_dev

    def drop_and_wait(seed: int, merges_before: int) -> float:
        dropped = time.monotonic()
        write_events(simulate(2_000, seed=seed, now=datetime.now(timezone.utc)).events, landing)
        while _merge_commits(fact_log) <= merges_before:
            if time.monotonic() - dropped > timeout:
                raise BenchmarkError("gold was not updated within the latency timeout")
            time.sleep(0.5)
        return time.monotonic() - dropped

    with dagster_dev(workdir, interval, warm_driver, port=3917, timeout=timeout) as (
        home,
        lake,
        landing,
    ):
        fact_log = lake / "gold" / "fact_admissions" / "_delta_log"
        time.sleep(20)  # daemon and code server up; the sensor has ticked on the empty landing
        first = drop_and_wait(99, 0)
        _wait_for_runs_to_finish(home, timeout)
        steady = drop_and_wait(100, _merge_commits(fact_log))
        _wait_for_runs_to_finish(home, timeout)  # both runs succeed through the KPIs too
        return {"first_file": first, "steady_state": steady}


def _wait_for_runs_to_finish(dagster_home: Path, timeout: float) -> None:
    from dagster import DagsterInstance, DagsterRunStatus

    unfinished = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
    ]
    deadline = time.monotonic() + timeout
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        while instance.get_runs_count() == 0 or instance.get_runs(filters=_run_filter(unfinished)):
            if time.monotonic() > deadline:
                raise BenchmarkError("the first latency run did not finish within the timeout")
            time.sleep(0.5)
        failed = instance.get_runs(filters=_run_filter([DagsterRunStatus.FAILURE]))
        if failed:
            raise BenchmarkError(f"a latency run failed: {failed[0].run_id}")


def _run_filter(statuses):
    from dagster import RunsFilter

    return RunsFilter(statuses=statuses)


def _merge_commits(delta_log: Path) -> int:
    """MERGE commits in the table's log (creating the empty table does not count)."""
    if not delta_log.is_dir():
        return 0
    return sum('"operation":"MERGE"' in p.read_text() for p in delta_log.glob("*.json"))


def run_benchmark(
    events: int,
    workdir: Path,
    latency: bool = True,
    seed: int = 1,
    interval: int | None = None,
    warmup: bool = True,
    warm_driver: bool = True,
    lifecycles: bool = True,
    history_growth: bool = True,
) -> dict:
    from patient_flow_dagster.resources.spark import local_spark_session

    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    now = datetime.now(timezone.utc) - timedelta(minutes=10)
    per_file = max(1_000, events // 20)
    landing = workdir / "landing"
    simulate_seconds = time.perf_counter()
    landed = land_events(events, seed, landing, now, 365, per_file, lifecycles)
    simulate_seconds = time.perf_counter() - simulate_seconds
    history_files = landing_files(landing)

    if latency:  # first, while no Spark JVM of this process competes with `dagster dev`'s runs
        from patient_flow_dagster.settings import Settings

        interval = interval or Settings.from_env().sensor_interval
        latency_seconds = measure_latency(workdir / "latency", interval, warm_driver=warm_driver)

    spark = local_spark_session(SparkSettings.from_env())
    # Warm-up on a small separate batch, so neither contender pays JVM start-up and JIT alone.
    if warmup:
        run_small_batch(spark, workdir / "warmup", "warmup")

    bare_resources = lake_resources(workdir / "bare_lake", landing)
    bare_steps = run_bare(spark, bare_resources["lake"], bare_resources["landing"], "bare")
    bare_total = sum(bare_steps.values())
    bare_counts = table_counts(spark, bare_resources["lake"])
    reconcile(bare_counts, landed, "bare script")

    dagster_lake = workdir / "dagster_lake"
    wall, steps, check_seconds = _dagster_run(dagster_lake, landing)
    dagster_counts = table_counts(spark, lake_resources(dagster_lake, landing)["lake"])
    reconcile(dagster_counts, landed, "Dagster run")
    if dagster_counts != bare_counts:
        raise BenchmarkError(f"Dagster and bare lakes differ: {dagster_counts} vs {bare_counts}")
    layers = layer_of_step()
    asset_wall = wall - check_seconds
    per_layer: dict[str, float] = {}
    for step, seconds in steps.items():
        if step in layers:
            per_layer[layers[step]] = per_layer.get(layers[step], 0) + seconds

    increment = max(1, events // 100)
    land_events(increment, seed + 1, landing, now, 2, per_file, lifecycles)
    new_files = sorted(set(landing_files(landing)) - set(history_files))
    incremental_wall, incremental_steps, _ = _dagster_run(dagster_lake, landing)
    after = table_counts(spark, lake_resources(dagster_lake, landing)["lake"])
    reconcile(after, landed + increment, "incremental run")

    # The same job again with nothing new in landing: what any run costs whatever the data (its
    # steps, Delta snapshots and commits, the KPIs and checks over the whole lake). The
    # increment's cost above it is what the new events themselves cost.
    idle_wall, idle_steps, _ = _dagster_run(dagster_lake, landing)
    idle_counts = table_counts(spark, lake_resources(dagster_lake, landing)["lake"])
    if idle_counts != after:
        raise BenchmarkError(f"a run with no new files changed the lake: {after} -> {idle_counts}")

    # How the increment's cost grows with history: the same new events into a lake holding a
    # tenth of the events. A ratio near 1 means the run costs what is new, not what is stored.
    if history_growth:
        small_wall, small_steps = _increment_on_a_tenth_of_the_history(
            spark, workdir, events, seed, now, per_file, lifecycles, increment
        )

    # Last, on the warmest JVM (which flatters the floor, not the pipeline).
    from patient_flow_devtools import engine_floor

    floor = engine_floor.measure(
        spark, workdir / "engine_floor", history_files, new_files, landed, increment
    )

    report = {
        "events": landed,
        "event_format": "lifecycles" if lifecycles else "stays",
        "machine_cores": os.cpu_count(),
        "simulate_and_land_seconds": round(simulate_seconds, 1),
        "dagster_run_wall_seconds": round(wall, 1),
        "dagster_asset_seconds": round(asset_wall, 1),
        "dagster_check_seconds": round(check_seconds, 1),
        "events_per_second_end_to_end": round(landed / wall),
        "events_per_second_assets_only": round(landed / asset_wall),
        "events_per_second_per_layer": {k: round(landed / v) for k, v in sorted(per_layer.items())},
        "seconds_per_layer": {k: round(v, 1) for k, v in sorted(per_layer.items())},
        "bare_script_seconds": round(bare_total, 1),
        "bare_seconds_per_step": {k: round(v, 1) for k, v in bare_steps.items()},
        "orchestration_overhead_ratio": round(asset_wall / bare_total, 3),
        "incremental_events": increment,
        "incremental_run_wall_seconds": round(incremental_wall, 1),
        "incremental_fraction_of_full_run": round(incremental_wall / wall, 3),
        "run_without_new_files_wall_seconds": round(idle_wall, 1),
        "incremental_seconds_above_that": round(incremental_wall - idle_wall, 1),
        "dagster_seconds_per_step": {k: round(v, 1) for k, v in steps.items()},
        "incremental_seconds_per_step": {k: round(v, 1) for k, v in incremental_steps.items()},
        "no_new_files_seconds_per_step": {k: round(v, 1) for k, v in idle_steps.items()},
        "reconciled_counts": dagster_counts,
        "engine_floor": floor,
        "dagster_run_vs_engine_floor": round(wall / floor["full_run_seconds"], 2),
        **peak_memory_mb(spark),
    }
    if history_growth:
        report.update(
            {
                "incremental_run_on_a_tenth_of_the_history_wall_seconds": round(small_wall, 1),
                "incremental_growth_with_10x_history": round(incremental_wall / small_wall, 3),
                "incremental_seconds_per_step_on_a_tenth_of_the_history": {
                    k: round(v, 1) for k, v in small_steps.items()
                },
            }
        )
    if latency:
        report["file_to_gold_latency_seconds"] = round(latency_seconds["steady_state"], 1)
        report["file_to_gold_latency_first_file_seconds"] = round(latency_seconds["first_file"], 1)
        report["sensor_interval_seconds"] = interval
        report["latency_runs_on"] = "warm Spark driver" if warm_driver else "a new JVM per run"
    return report


def _increment_on_a_tenth_of_the_history(
    spark,
    workdir: Path,
    events: int,
    seed: int,
    now: datetime,
    per_file: int,
    lifecycles: bool,
    increment: int,
) -> tuple[float, dict]:
    """The increment's run (wall seconds, seconds per step) on a lake of a tenth of `events`."""
    small = workdir / "tenth_of_the_history"
    small_landing, small_lake = small / "landing", small / "lake"
    small_landed = land_events(
        max(1, events // 10), seed + 2, small_landing, now, 365, per_file, lifecycles
    )
    _dagster_run(small_lake, small_landing)
    land_events(increment, seed + 1, small_landing, now, 2, per_file, lifecycles)
    small_wall, small_steps, _ = _dagster_run(small_lake, small_landing)
    reconcile(
        table_counts(spark, lake_resources(small_lake, small_landing)["lake"]),
        small_landed + increment,
        "increment on a tenth of the history",
    )
    return small_wall, small_steps


def landing_files(landing: Path) -> list[str]:
    return sorted(str(path) for path in landing.glob("*.parquet"))


def format_table(report: dict, indent: int = 0) -> str:
    lines = []
    for key, value in report.items():
        if isinstance(value, dict):
            lines += [f"{' ' * indent}{key}:", format_table(value, indent + 4)]
        else:
            lines.append(f"{' ' * indent}{key:{44 - indent}s} {value}")
    return "\n".join(lines)


def main(args) -> int:
    report = run_benchmark(
        args.events,
        Path(args.workdir),
        latency=not args.no_latency,
        seed=args.seed,
        interval=args.sensor_interval,
        warm_driver=not args.no_warm_driver,
        lifecycles=args.format == "lifecycles",
    )
    text = json.dumps(report, indent=2, default=str)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    print()
    print(format_table(report))
    return 0

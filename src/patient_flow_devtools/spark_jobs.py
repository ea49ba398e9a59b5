"""`patient-flow bench-jobs`: where a run's time goes, step by step, in Spark jobs and seconds.

A lake of `--events` events, then `--increments` runs of one small file each, a run with no new
files and a run of the census clock's job, all in one process and one Spark session (warm after the
first run, like the warm driver). Per run and step: the step's seconds and Spark jobs, and of them
the seconds and jobs after its last materialization (its checks and quality history). Jobs are
counted from Spark's event log (`PATIENT_FLOW_SPARK_EVENT_LOG`), which this command sets to a folder
of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


def job_starts(event_log: Path) -> list[float]:
    """Submission times (epoch seconds) of every Spark job the event log holds."""
    starts = []
    for path in event_log.iterdir():
        with open(path) as handle:
            for line in handle:
                if '"SparkListenerJobStart"' in line:
                    starts.append(json.loads(line)["Submission Time"] / 1000)
    return starts


def step_windows(instance, run_id: str) -> dict[str, tuple[float, float, float]]:
    """Per step: (start, last materialization, end) from the run's event log."""
    windows: dict[str, list[float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue  # events planned for every step at the run's start carry its key too
        if event.event_type_value == "STEP_START":
            windows[event.step_key] = [entry.timestamp] * 3
        elif event.step_key not in windows:
            continue
        elif event.event_type_value == "ASSET_MATERIALIZATION":
            windows[event.step_key][1] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            windows[event.step_key][2] = entry.timestamp
    return {step: tuple(window) for step, window in windows.items()}


def profile_run(job, instance, event_log: Path) -> dict:
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed")
    time.sleep(1.0)  # the event log's last lines
    starts = job_starts(event_log)

    def jobs(first: float, last: float) -> int:
        return sum(first <= at <= last for at in starts)

    steps = {}
    for step, (begun, written, ended) in step_windows(instance, result.run_id).items():
        steps[step] = {
            "seconds": round(ended - begun, 1),
            "spark_jobs": jobs(begun, ended),
            "check_seconds": round(ended - written, 1),
            "check_spark_jobs": jobs(written, ended),
        }
    return {
        "seconds": round(sum(s["seconds"] for s in steps.values()), 1),
        "spark_jobs": sum(s["spark_jobs"] for s in steps.values()),
        "steps": steps,
    }


def run(events: int, increments: int, increment_events: int, workdir: Path, seed: int) -> dict:
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    event_log = workdir / "spark-events"
    event_log.mkdir(parents=True)
    os.environ["PATIENT_FLOW_SPARK_EVENT_LOG"] = str(event_log)

    from dagster import DagsterInstance

    from patient_flow_dagster.definitions import build_definitions
    from patient_flow_dagster.settings import Settings
    from patient_flow_devtools.steps import land_events

    landing = workdir / "landing"
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    land_events(events, seed, landing, now, 30, max(1_000, events // 10), True)
    defs = build_definitions(Settings.from_env().at(str(workdir / "lake"), str(landing)))
    job, instance = defs.resolve_job_def("patient_flow"), DagsterInstance.ephemeral()
    report = {"events": events, "full_run": profile_run(job, instance, event_log)}
    for i in range(increments):
        land_events(
            increment_events,
            seed + 100 + i,
            landing,
            datetime.now(timezone.utc) - timedelta(minutes=1),
            0.1,
            1_000,
            True,
        )
        report[f"increment_{i + 1}"] = profile_run(job, instance, event_log)
    report["no_new_files"] = profile_run(job, instance, event_log)
    report["census_clock"] = profile_run(
        defs.resolve_job_def("patient_flow_clock"), instance, event_log
    )
    return report


def main(args) -> int:
    report = run(args.events, args.increments, args.increment_events, Path(args.workdir), args.seed)
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0

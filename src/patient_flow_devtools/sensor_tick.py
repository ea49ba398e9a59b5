"""`patient-flow bench-sensor`: what a landing sensor tick costs with a large archive beside the
landing zone, and with the same files still in it.

Three landing zones, each with the same few new files: an empty archive, `--archived` files in
the archive, and those files left in the landing zone (no archive). A tick is the sensor's own
evaluation (list, compare with the cursor, ask for a run); the median of `--ticks` is reported
on stdout (each tick also logs its "new landing files" line on stderr).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from patient_flow_dagster.ingestion.landing_writer import (
    events_table,
    write_landing_file,
)
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.resources.landing import LocalLandingZone
from patient_flow_dagster.sensors import build_landing_sensor


def _fill(folder: Path, count: int, template: bytes, stamp: float) -> None:
    """`count` ingested-looking files (a real Parquet file's bytes), modified at `stamp`."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = folder / f"old-{index:06d}.parquet"
        path.write_bytes(template)
        os.utime(path, (stamp, stamp))


def tick_seconds(landing: LocalLandingZone, cursor: str, ticks: int) -> tuple[float, int]:
    sensor = build_landing_sensor(10)
    instance = DagsterInstance.ephemeral()
    times, new = [], 0
    for _ in range(ticks):
        context = build_sensor_context(
            instance=instance, cursor=cursor, resources={"landing": landing}
        )
        started = time.perf_counter()
        result = sensor.evaluate_tick(context)
        times.append(time.perf_counter() - started)
        new = int(result.run_requests[0].tags["patient_flow/new_files"])
    return statistics.median(times), new


def main(args) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-sensor-"))
    sample = workdir / "sample"
    write_landing_file(events_table(simulate(20, seed=1).events), sample, "sample.parquet")
    template = (sample / "sample.parquet").read_bytes()
    old, now = time.time() - 3 * 86_400, time.time()
    # The cursor has seen everything up to a day ago: only the new files are new.
    cursor = json.dumps({"mtime": now - 86_400, "names": []})
    report = {"archived_files": args.archived, "new_files": args.new, "ticks": args.ticks}
    for case, archived, in_landing in (
        ("empty archive", 0, 0),
        (f"{args.archived} archived", args.archived, 0),
        ("no archive", 0, args.archived),
    ):
        landing_dir = workdir / case.replace(" ", "-") / "landing"
        _fill(landing_dir, in_landing, template, old)
        _fill(Path(f"{landing_dir}_archive") / "batch-00000001", archived, template, old)
        for index in range(args.new):
            write_landing_file(
                events_table(simulate(5, seed=index).events),
                landing_dir,
                f"new-{index:03d}.parquet",
            )
        seconds, new = tick_seconds(LocalLandingZone(path=str(landing_dir)), cursor, args.ticks)
        assert new == args.new, (case, new)
        report[case] = {"tick_ms": round(seconds * 1000, 2), "files_listed": in_landing + new}
        print(
            f"{case:>20}: tick {seconds * 1000:8.2f} ms, landing holds "
            f"{in_landing + new} files, archive {archived}"
        )
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0

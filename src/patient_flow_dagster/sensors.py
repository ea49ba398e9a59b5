"""The landing sensor: new files in the landing zone start a run of the whole graph.

The sensor only decides *when* to run; *what* gets ingested is decided by bronze's ledger, which
picks up every file version not ingested before. So a file the sensor somehow missed is still
ingested by the next run, a file it reports twice is still ingested once, and a run takes every
file landed until it starts, including those that landed while it was queued.

Why the sensor targets the whole `patient_flow` job rather than bronze alone with declarative
automation for the layers below: one run per landing batch means one Spark session start, the
blocking checks gate gold inside that same run, and the file-to-gold delay is one run instead of
a bronze run followed by an automation tick and a second run.
"""

from __future__ import annotations

import hashlib
import json

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from patient_flow_dagster.resources.landing import LandingFile, LandingZone

MAX_FILES_LISTED_IN_TAGS = 20
PIPELINE_JOB = "patient_flow"
CLOCK_JOB = "patient_flow_clock"


def load_cursor(cursor: str | None) -> dict:
    """{"mtime": newest modification time seen, "names": identities seen at that mtime}."""
    if not cursor:
        return {"mtime": 0.0, "names": []}
    return json.loads(cursor)


def new_files(files: list[LandingFile], cursor: dict) -> list[LandingFile]:
    """Files modified after the high-water mark, or at it but not seen yet."""
    mark, seen = cursor["mtime"], set(cursor["names"])
    return [f for f in files if f.modified > mark or (f.modified == mark and f.version not in seen)]


def advance_cursor(cursor: dict, fresh: list[LandingFile]) -> dict:
    mark = max([cursor["mtime"], *(f.modified for f in fresh)])
    names = [f.version for f in fresh if f.modified == mark]
    if mark == cursor["mtime"]:
        names = sorted(set(cursor["names"]) | set(names))
    return {"mtime": mark, "names": names}


def run_key_for(fresh: list[LandingFile]) -> str:
    """Stable for the same set of files (name + size + mtime): a re-evaluated tick that sees the
    same new files asks for the same run, which Dagster starts only once."""
    digest = hashlib.sha256("\n".join(sorted(f.version for f in fresh)).encode()).hexdigest()
    return f"landing-{digest[:24]}"


# A run in these states has not listed the landing zone yet: it will take every file landed
# until it starts, so asking for another run behind it would only queue a run with nothing to do.
NOT_YET_STARTED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]


def waiting_run(
    context: SensorEvaluationContext | ScheduleEvaluationContext, job_name: str
) -> str | None:
    """The id of a run of `job_name` that is queued or starting, if any."""
    runs = context.instance.get_run_records(
        filters=RunsFilter(job_name=job_name, statuses=NOT_YET_STARTED), limit=1
    )
    return runs[0].dagster_run.run_id if runs else None


def evaluate_landing(context: SensorEvaluationContext):
    landing: LandingZone = context.resources.landing
    cursor = load_cursor(context.cursor)
    fresh = new_files(landing.list_files(), cursor)
    if not fresh:
        return SkipReason(f"no new files in {landing.describe()}")
    waiting = waiting_run(context, PIPELINE_JOB)
    if waiting:
        # The cursor stays: these files go with the next request, once that run has started.
        return SkipReason(
            f"{len(fresh)} new landing files wait for run {waiting}, which is "
            "queued or starting and will ingest them"
        )
    names = sorted(f.name for f in fresh)
    listed = ", ".join(names[:MAX_FILES_LISTED_IN_TAGS])
    if len(names) > MAX_FILES_LISTED_IN_TAGS:
        listed += f" (+{len(names) - MAX_FILES_LISTED_IN_TAGS} more)"
    context.log.info(f"{len(fresh)} new landing files: {listed}")
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=run_key_for(fresh),
                tags={
                    "patient_flow/new_files": str(len(fresh)),
                    "patient_flow/files": listed[:4000],
                },
            )
        ],
        cursor=json.dumps(advance_cursor(cursor, fresh)),
    )


def build_landing_sensor(interval_seconds: int) -> SensorDefinition:
    """The landing sensor, checking every `interval_seconds` (PATIENT_FLOW_SENSOR_INTERVAL): a
    listing is cheap, and the wait for the next tick is part of the file-to-gold latency.

    Runs never pile up: while a pipeline run is queued or starting, new files wait for the
    request after it (the run queue lets one lake writer execute), so at most one run executes
    and one waits, however fast files land."""
    return sensor(
        name="landing_sensor",
        job_name=PIPELINE_JOB,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        required_resource_keys={"landing"},
        description="Starts the patient_flow job when new Parquet files land "
        f"(every {interval_seconds} s: PATIENT_FLOW_SENSOR_INTERVAL).",
    )(evaluate_landing)

"""The clock's schedules: the census moves on the hour turn even when nothing arrives, and the
whole-table audits run once a night instead of in every batch."""

from __future__ import annotations

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from patient_flow_dagster.sensors import PIPELINE_JOB, waiting_run

# A few minutes after midnight UTC, the quietest time for a lake writer; move it in the UI or
# in code, the audit's results land in the quality history whenever it runs.
AUDIT_CRON = "15 2 * * *"


def build_census_clock(job) -> ScheduleDefinition:
    """On every hour turn, bring the hourly census and current occupancy up to the new hour
    (only the KPI step's census, a few small Spark jobs): on a quiet night the board still
    shows the hour it is. Skipped while a pipeline run waits to start, which does the same."""

    @schedule(
        name="census_clock",
        cron_schedule="0 * * * *",
        job=job,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="The hourly census and current occupancy follow the clock.",
    )
    def census_clock(context: ScheduleEvaluationContext):
        waiting = waiting_run(context, PIPELINE_JOB)
        if waiting:
            return SkipReason(f"run {waiting} is queued or starting and moves the census too")
        return RunRequest()

    return census_clock


def build_nightly_audit(job) -> ScheduleDefinition:
    """Every check over its whole table, once a night: the pipeline's runs check what their
    batch touched, the audit what every earlier batch left (docs/operations.md)."""
    return ScheduleDefinition(
        name="nightly_audit",
        cron_schedule=AUDIT_CRON,
        job=job,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every quality check over its whole table (the patient_flow_checks job).",
    )

"""The clock's schedules: the census and the day's figures move on the hour turn even when
nothing arrives, and the whole-table audits run once a night instead of in every batch."""

from __future__ import annotations

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from patient_flow_dagster.sensors import CLOCK_JOB, waiting_run

# A few minutes after midnight UTC, the quietest time for a lake writer; move it in the UI or
# in code, the audit's results land in the quality history whenever it runs.
AUDIT_CRON = "15 2 * * *"


def build_census_clock(job) -> ScheduleDefinition:
    """On every hour turn, bring the hourly census and current occupancy up to the new hour and
    the figures per local day up to the batches landed (only the KPI step): on a quiet night
    the board still shows the hour it is, and the day's figures are never more than an hour
    behind. Skipped while an earlier clock run still waits to start: it will do the same."""

    @schedule(
        name="census_clock",
        cron_schedule="0 * * * *",
        job=job,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="The hourly census, current occupancy and the day's figures follow the clock.",
    )
    def census_clock(context: ScheduleEvaluationContext):
        waiting = waiting_run(context, CLOCK_JOB)
        if waiting:
            return SkipReason(f"the clock's run {waiting} is queued or starting")
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

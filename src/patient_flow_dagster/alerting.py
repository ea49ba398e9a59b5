"""Sensors that turn a failed run, an ERROR check or a failing freshness policy into one alert.

A freshness FAIL alerts only while landing files newer than the table's last update wait (a
table that is old because nothing arrived is not news); it alerts when such files appear.

The run-failure sensor is Dagster's own (`run_failure_sensor`). Failed check executions (the
instance's check history) and freshness changes (the event log) are read after the sensor's
cursor, so each yields at most one alert. On its first tick the sensor starts at the newest,
so switching it on does not replay history.
"""

from __future__ import annotations

import json
import time

from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    DagsterEventType,
    DefaultSensorStatus,
    EventRecordsFilter,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from patient_flow_dagster.assets.checks import ALL_CHECKS
from patient_flow_dagster.resources.alerts import Alert, AlertChannels
from patient_flow_dagster.resources.landing import LandingZone

CHECK_KEYS = [AssetCheckKey(check.asset, check.name) for check in ALL_CHECKS]
RECENT = 25  # executions read per check and tick
STALE_PLAN_SECONDS = 6 * 3600  # a check planned this long ago and never evaluated never will be


@run_failure_sensor(
    name="alert_on_failed_run",
    default_status=DefaultSensorStatus.RUNNING,
    description="A failed run of any job of this code location: one alert.",
)
def alert_on_failed_run(context: RunFailureSensorContext, alerts: AlertChannels):
    run = context.dagster_run
    failures = context.get_step_failure_events()
    steps = sorted({event.step_key for event in failures if event.step_key})
    # Error classes, not messages: a message may quote the data a step was reading.
    errors = sorted(
        {
            event.step_failure_data.error.cls_name
            for event in failures
            if event.step_failure_data
            and event.step_failure_data.error
            and event.step_failure_data.error.cls_name
        }
    )
    details = (
        f"failed steps: {', '.join(steps)}; errors: {', '.join(errors) or 'see the run'}"
        if steps
        else "the run failed outside its steps (see the run)"
    )
    alerts.send(
        Alert(
            severity="ERROR",
            title=f"run of {run.job_name} failed",
            job=run.job_name,
            run_id=run.run_id,
            subject=", ".join(steps) or run.job_name,
            details=details,
            link=alerts.run_link(run.run_id),
        )
    )


def _check_alert(alerts: AlertChannels, record) -> Alert | None:
    evaluation = record.event.dagster_event.event_specific_data
    if evaluation.passed or evaluation.severity != AssetCheckSeverity.ERROR:
        return None
    figures = {
        key: value.value
        for key, value in evaluation.metadata.items()
        if key in ("evaluated", "failed", "failed_ratio")
    }
    details = ", ".join(f"{key} {value}" for key, value in figures.items()) or "see the run"
    asset = evaluation.asset_key.to_user_string()
    job = record.event.dagster_event.job_name
    return Alert(
        severity="ERROR",
        title=f"check {evaluation.check_name} on {asset} failed",
        job=job,
        run_id=record.run_id,
        subject=f"{asset}:{evaluation.check_name}",
        details=details,
        link=alerts.run_link(record.run_id),
    )


def _freshness_alert(alerts: AlertChannels, asset: str) -> Alert:
    return Alert(
        severity="ERROR",
        title=f"{asset} is stale",
        job=None,
        run_id=None,
        subject=asset,
        details="not updated within its freshness policy's fail window "
        "while new landing files wait",
        link=alerts.asset_link(asset),
    )


def _stale_assets(records, stale: set[str]) -> set[str]:
    """The assets whose freshness is FAIL after the state changes in `records`."""
    stale = set(stale)
    for record in records:
        change = record.event_log_entry.dagster_event.event_specific_data
        asset = change.key.to_user_string()
        if getattr(change.new_state, "value", str(change.new_state)) == "FAIL":
            stale.add(asset)
        else:
            stale.discard(asset)
    return stale


def _waited_on(instance, landing: LandingZone, stale: set[str]) -> list[str]:
    """The stale assets that files landed after their last update are waiting on: a table that
    is old because nothing arrived (a quiet night) is not an alert."""
    if not stale:
        return []
    newest = max((f.modified for f in landing.list_files()), default=None)
    if newest is None:
        return []
    waiting = []
    for asset in sorted(stale):
        latest = instance.get_latest_materialization_event(AssetKey.from_user_string(asset))
        if newest > (latest.timestamp if latest else 0.0):
            waiting.append(asset)
    return waiting


def _failed_checks(instance, cursor: dict, now: float) -> tuple[list, dict]:
    """Check executions that failed since the cursor, and the cursor after them.

    Executions are rows numbered when a run plans its checks and completed when each is
    evaluated, not in number order; the mark stays below the lowest still-planned row, and the
    rows above it already alerted are remembered, so each failure alerts exactly once."""
    mark, sent = cursor.get("checks", 0), set(cursor.get("sent", []))
    storage = instance.event_log_storage
    records = [
        record
        for key in CHECK_KEYS
        for record in storage.get_asset_check_execution_history(key, limit=RECENT)
        if record.id > mark
    ]
    # A record's status is an enum Dagster does not export: compared by its value.
    failed = [
        record
        for record in records
        if record.status.value == "FAILED" and record.id not in sent and record.event is not None
    ]
    planned = [
        record.id
        for record in records
        if record.status.value == "PLANNED" and now - record.create_timestamp < STALE_PLAN_SECONDS
    ]
    new_mark = min(planned) - 1 if planned else max([mark, *(record.id for record in records)])
    still_sent = sorted(i for i in sent | {record.id for record in failed} if i > new_mark)
    return failed, {"checks": new_mark, "sent": still_sent}


def _freshness_failures(instance, cursor: dict) -> tuple[list, dict]:
    after = cursor.get("freshness", 0)
    records = instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=after),
        limit=RECENT * 20,
        ascending=True,
    )
    return records, {"freshness": records[-1].storage_id if records else after}


@sensor(
    name="alert_on_quality",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="An ERROR check evaluation, or a freshness policy at FAIL while new landing "
    "files wait: one alert.",
)
def alert_on_quality(context: SensorEvaluationContext, alerts: AlertChannels, landing: LandingZone):
    instance = context.instance
    now = time.time()
    if context.cursor is None:  # first tick: from now on
        _, checks = _failed_checks(instance, {}, now)
        context.update_cursor(
            json.dumps({**checks, "sent": [], "freshness": _newest_freshness(instance)})
        )
        return SkipReason("watching check evaluations and freshness from now on")
    cursor = json.loads(context.cursor)
    failed, checks = _failed_checks(instance, cursor, now)
    changes, freshness = _freshness_failures(instance, cursor)
    stale = _stale_assets(changes, set(cursor.get("stale", [])))
    waited_on = _waited_on(instance, landing, stale)
    made = [_check_alert(alerts, record) for record in failed]
    made += [_freshness_alert(alerts, asset) for asset in waited_on]
    sent = [alerts.send(alert) for alert in made if alert]
    # A stale asset alerts once: when files wait on it, now or on a later tick.
    quiet = sorted(stale - set(waited_on))
    context.update_cursor(json.dumps({**checks, **freshness, "stale": quiet}))
    return SkipReason(
        f"{len(failed)} failed checks and {len(changes)} freshness changes read, "
        f"{len(sent)} alerts sent, {len(quiet)} stale tables with no files waiting"
    )


def _newest_freshness(instance) -> int:
    newest = instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.FRESHNESS_STATE_CHANGE),
        limit=1,
        ascending=False,
    )
    return newest[0].storage_id if newest else 0

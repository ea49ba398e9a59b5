"""Operating it: freshness policies evaluated by Dagster's own freshness daemon (a FAIL alerts),
run retries for crashed runs only, on the instance settings the project ships
(config/dagster.yaml)."""

import json
import os
from datetime import timedelta
from pathlib import Path

from dagster import AssetMaterialization, DagsterInstance, build_sensor_context
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.freshness import FreshnessDaemon
from dagster._time import get_current_datetime

from patient_flow_dagster.alerting import alert_on_quality
from patient_flow_dagster.definitions import build_definitions
from patient_flow_dagster.ingestion.landing_writer import (
    events_table,
    write_landing_file,
)
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources.alerts import AlertChannels
from patient_flow_dagster.resources.landing import LocalLandingZone
from patient_flow_dagster.settings import Settings
from patient_flow_dagster_tests.alert_receivers import alert_receivers
from patient_flow_dagster_tests.conftest import INSTANCE_SETTINGS, project_instance
from patient_flow_dagster_tests.test_alerts import channels

FRESH_TABLES = [
    table
    for table in t.LAKE_TABLES
    if table.layer in ("silver", "gold") and table is not t.QUARANTINE
]


def freshness_windows(defs) -> dict:
    graph = defs.resolve_asset_graph()
    windows = {}
    for key in graph.get_all_asset_keys():
        policy = graph.get(key).freshness_policy
        windows[key] = policy and (
            policy.fail_window.to_timedelta(),
            policy.warn_window.to_timedelta(),
        )
    return windows


def test_silver_gold_and_kpis_carry_freshness_policies_from_the_settings():
    windows = freshness_windows(
        build_definitions(
            Settings.from_env(
                {
                    "PATIENT_FLOW_FRESHNESS_FAIL_MINUTES": "45",
                    "PATIENT_FLOW_FRESHNESS_WARN_MINUTES": "20",
                }
            )
        )
    )
    expected = (timedelta(minutes=45), timedelta(minutes=20))
    assert {key for key, window in windows.items() if window} == {
        table.key for table in FRESH_TABLES
    }
    assert all(windows[table.key] == expected for table in FRESH_TABLES)
    assert windows[t.BRONZE_EVENTS.key] is None and windows[t.QUARANTINE.key] is None


def test_the_freshness_daemon_turns_the_census_warn_then_fail(tmp_path):
    """Dagster's freshness daemon, on the shipped instance settings and the default windows
    (warn after 15 minutes without an update, fail after 30). The FAIL alerts once, and only
    when landing files wait on the census: after a quiet spell, when the next file lands."""
    instance = project_instance(tmp_path / "home")
    assert instance.freshness_enabled
    census = t.DEPARTMENT_CENSUS_HOURLY.key
    updated = get_current_datetime()
    instance.report_runless_asset_event(AssetMaterialization(census))
    landing = LocalLandingZone(path=str(tmp_path / "landing"))
    origin = LoadableTargetOrigin(module_name="patient_flow_dagster.definitions", attribute="defs")
    target = InProcessTestWorkspaceLoadTarget(InProcessCodeLocationOrigin(origin))
    states = []
    quiet = {"alerts": AlertChannels(), "landing": landing}
    watching = build_sensor_context(instance=instance, resources=quiet)
    alert_on_quality(watching)  # the alert sensor's first tick: from here on
    with WorkspaceProcessContext(instance, target) as workspace:
        for minutes in (5, 16, 31):
            with freeze_time(updated + timedelta(minutes=minutes)):
                list(FreshnessDaemon().run_iteration(workspace))
            [record] = instance.get_freshness_state_records([census]).values()
            states.append(record.freshness_state)
    assert states == [FreshnessState.PASS, FreshnessState.WARN, FreshnessState.FAIL]
    with alert_receivers() as (received, smtp_port, webhook):
        alerts = {"alerts": channels(smtp_port, webhook), "landing": landing}
        # Nothing landed since the census's update: stale, but nothing waits on it.
        write_landing_file(events_table(simulate(3, seed=1).events), landing.path, "old.parquet")
        os.utime(Path(landing.path) / "old.parquet", (updated.timestamp() - 60,) * 2)
        quiet_tick = build_sensor_context(
            instance=instance, cursor=watching.cursor, resources=alerts
        )
        alert_on_quality(quiet_tick)
        assert received.mails == [] and received.posts == []
        assert json.loads(quiet_tick.cursor)["stale"] == ["gold/department_census_hourly"]
        # A file lands: the next tick alerts once; the one after stays silent.
        write_landing_file(events_table(simulate(3, seed=2).events), landing.path, "new.parquet")
        waiting_tick = build_sensor_context(
            instance=instance, cursor=quiet_tick.cursor, resources=alerts
        )
        alert_on_quality(waiting_tick)
        alert_on_quality(
            build_sensor_context(instance=instance, cursor=waiting_tick.cursor, resources=alerts)
        )
    [mail] = received.mails
    assert mail["Subject"] == "[patient-flow ERROR] gold/department_census_hourly is stale"
    assert "/assets/gold/department_census_hourly" in mail.get_content()
    assert [post["title"] for post in received.posts] == [
        "[ERROR] gold/department_census_hourly is stale"
    ]


def test_a_crashed_run_is_retried_from_its_failure_and_a_failed_step_is_not(tmp_path):
    """The shipped instance settings: two retries at most, resuming from the failed steps, for
    a run whose worker died; none for a run that failed because a step did (an ERROR check)."""
    instance: DagsterInstance = project_instance(tmp_path)
    assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 2)
    job = build_definitions(Settings.from_env({})).resolve_job_def("patient_flow")
    assert job.tags["dagster/retry_strategy"] == "FROM_FAILURE"
    outcomes = {}
    for reason in (RunFailureReason.UNEXPECTED_TERMINATION, RunFailureReason.STEP_FAILURE):
        run = instance.create_run_for_job(job, tags=job.tags)
        instance.report_run_failed(
            run, f"failed: {reason.value}", JobFailureData(error=None, failure_reason=reason)
        )
        outcomes[reason] = instance.get_run_by_id(run.run_id).tags["dagster/will_retry"]
    assert outcomes == {
        RunFailureReason.UNEXPECTED_TERMINATION: "true",
        RunFailureReason.STEP_FAILURE: "false",
    }


def test_dagster_plus_alert_policies_cover_the_same_rules():
    """alert_policies.yaml (Dagster+) alerts on what the open-source sensors alert on, for
    asset groups and job tags that exist."""
    import yaml

    from patient_flow_dagster.definitions import WRITES_LAKE, defs

    policies = yaml.safe_load((INSTANCE_SETTINGS.parents[1] / "alert_policies.yaml").read_text())
    events = {event for policy in policies["alert_policies"] for event in policy["event_types"]}
    assert events == {"JOB_FAILURE", "ASSET_CHECK_SEVERITY_ERROR", "ASSET_FRESHNESS_FAIL"}
    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()} - {"landing"}
    targeted = {
        target["asset_group_target"]["asset_group"]
        for policy in policies["alert_policies"]
        for target in policy.get("alert_targets", [])
    }
    assert targeted == groups
    for policy in policies["alert_policies"]:
        if "JOB_FAILURE" in policy["event_types"]:
            assert {(tag["key"], tag["value"]) for tag in policy["tags"]} == set(
                WRITES_LAKE.items()
            )
